//! What a kubernetes_events receiver has shipped, so that a restart or a
//! new leader does not ship it again: the events acknowledged (uid →
//! count and time), a horizon before which everything counts as shipped,
//! and per watched stream the resourceVersion up to which every change was
//! handled.
//!
//! The set is bounded ([`MAX_SHIPPED`]): past it, the oldest events (by
//! their time) are forgotten and the horizon moves up to them. An event
//! not in the set at or before the horizon is taken as shipped: only an
//! event older than the [`MAX_SHIPPED`] newest could be wrongly skipped,
//! and each such skip is counted.
//!
//! Two states merge into one that claims what either claims (the larger
//! count of an event, the later horizon): each claim was true when it was
//! written, so two leaders' states, or the ConfigMap's and the local
//! file's, can always be combined.
//!
//! The text form (the file under `data_dir` and the ConfigMap's `state`
//! key), one record per line:
//!
//! ```text
//! # ferro kubernetes_events state 1
//! horizon 1718000000123456
//! version * 48213
//! shipped 7b0c…-uid 3 1718000001000000
//! ```
//!
//! `version KEY RV`: `*` for the all-namespaces watch, else the namespace.
//! Times are microseconds since the epoch.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Events remembered at most: about 64 bytes each in the text form, so
/// the ConfigMap stays well under the API server's 1 MiB.
pub const MAX_SHIPPED: usize = 10_000;

const HEADER: &str = "# ferro kubernetes_events state 1";

/// One shipped event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub count: i32,
    pub time_us: i64,
}

/// Why an event is not shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// This event, with this count or a larger one, was shipped.
    Shipped,
    /// It is not remembered, and no later than the horizon.
    BeforeHorizon,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shipped {
    seen: HashMap<String, Seen>,
    /// Everything at or before this time (µs) counts as shipped; 0: nothing.
    horizon_us: i64,
    /// Per watch (`*` or a namespace): the resourceVersion to resume from.
    versions: BTreeMap<String, String>,
}

impl Shipped {
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.horizon_us == 0 && self.versions.is_empty()
    }

    pub fn horizon_us(&self) -> i64 {
        self.horizon_us
    }

    /// Whether the event `uid` with `count`, at `time_us`, was shipped.
    pub fn skip(&self, uid: &str, count: i32, time_us: i64) -> Option<Skip> {
        match self.seen.get(uid) {
            Some(seen) if seen.count >= count => Some(Skip::Shipped),
            Some(_) => None,
            None if self.horizon_us > 0 && time_us <= self.horizon_us => Some(Skip::BeforeHorizon),
            None => None,
        }
    }

    /// The event `uid` was shipped with `count`.
    pub fn record(&mut self, uid: &str, count: i32, time_us: i64) {
        match self.seen.get_mut(uid) {
            Some(seen) => {
                seen.count = seen.count.max(count);
                seen.time_us = seen.time_us.max(time_us);
            }
            None => {
                self.seen.insert(uid.to_string(), Seen { count, time_us });
            }
        }
        self.trim(MAX_SHIPPED);
    }

    /// The event `uid` is gone from the API server: it cannot come back.
    pub fn forget(&mut self, uid: &str) {
        self.seen.remove(uid);
    }

    pub fn version(&self, key: &str) -> Option<&str> {
        self.versions.get(key).map(String::as_str)
    }

    pub fn set_version(&mut self, key: &str, version: &str) {
        if self.versions.get(key).map(String::as_str) != Some(version) {
            self.versions.insert(key.to_string(), version.to_string());
        }
    }

    /// Only the watches in `keys` (the config's namespaces may have changed).
    pub fn keep_versions(&mut self, keys: &[String]) {
        self.versions.retain(|k, _| keys.contains(k));
    }

    /// Adds what `other` claims. Versions already known here stay.
    pub fn merge(&mut self, other: &Shipped) {
        for (uid, seen) in &other.seen {
            match self.seen.get_mut(uid) {
                Some(mine) => {
                    mine.count = mine.count.max(seen.count);
                    mine.time_us = mine.time_us.max(seen.time_us);
                }
                None => {
                    self.seen.insert(uid.clone(), *seen);
                }
            }
        }
        self.horizon_us = self.horizon_us.max(other.horizon_us);
        for (key, version) in &other.versions {
            self.versions
                .entry(key.clone())
                .or_insert_with(|| version.clone());
        }
        self.trim(MAX_SHIPPED);
    }

    /// Keeps at most `max` events: past it, forgets the oldest down to
    /// nine tenths (so that this runs rarely) and moves the horizon up to
    /// the newest forgotten.
    pub fn trim(&mut self, max: usize) {
        if self.seen.len() <= max {
            return;
        }
        let keep = max - max / 10;
        let mut times: Vec<i64> = self.seen.values().map(|s| s.time_us).collect();
        let cut = times.len() - keep;
        let (_, nth, _) = times.select_nth_unstable(cut - 1);
        let cut_at = *nth;
        self.seen.retain(|_, s| s.time_us > cut_at);
        self.horizon_us = self.horizon_us.max(cut_at);
    }

    /// The text form.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + self.seen.len() * 60);
        out.push_str(HEADER);
        out.push('\n');
        out.push_str(&format!("horizon {}\n", self.horizon_us));
        for (key, version) in &self.versions {
            out.push_str(&format!("version {key} {version}\n"));
        }
        // Sorted, so that the same state is the same text.
        let mut seen: Vec<_> = self.seen.iter().collect();
        seen.sort_unstable_by(|a, b| (a.1.time_us, a.0).cmp(&(b.1.time_us, b.0)));
        for (uid, s) in seen {
            out.push_str(&format!("shipped {uid} {} {}\n", s.count, s.time_us));
        }
        out
    }

    /// Reads the text form; the error names the line.
    pub fn parse(text: &str) -> Result<Shipped, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(format!("the first line is not `{HEADER}`")),
        }
        let mut state = Shipped::default();
        for (i, line) in lines {
            let bad = || format!("line {}: cannot read `{}`", i + 1, truncate(line));
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                [""] => {}
                ["horizon", t] => state.horizon_us = t.parse().map_err(|_| bad())?,
                ["version", key, version] if !key.is_empty() && !version.is_empty() => {
                    state.versions.insert(key.to_string(), version.to_string());
                }
                ["shipped", uid, count, time] if !uid.is_empty() => {
                    let seen = Seen {
                        count: count.parse().map_err(|_| bad())?,
                        time_us: time.parse().map_err(|_| bad())?,
                    };
                    state.seen.insert(uid.to_string(), seen);
                }
                _ => return Err(bad()),
            }
        }
        state.trim(MAX_SHIPPED);
        Ok(state)
    }

    /// The file at `path`; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Shipped>, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Shipped::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn truncate(line: &str) -> &str {
    match line.char_indices().nth(80) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// The state file of receiver `name` under `data_dir`.
pub fn state_path(data_dir: &Path, name: &str) -> std::path::PathBuf {
    data_dir
        .join("kubernetes_events")
        .join(format!("{name}.state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_skipped_only_when_shipped_with_its_count_or_before_the_horizon() {
        let mut s = Shipped::default();
        assert_eq!(s.skip("a", 1, 10), None);
        s.record("a", 1, 10);
        assert_eq!(s.skip("a", 1, 10), Some(Skip::Shipped));
        assert_eq!(s.skip("a", 2, 20), None, "it happened again");
        s.record("a", 2, 20);
        assert_eq!(s.skip("a", 1, 10), Some(Skip::Shipped), "an older view");
        s.forget("a");
        assert_eq!(s.skip("a", 2, 20), None);
        s.horizon_us = 15;
        assert_eq!(s.skip("b", 1, 15), Some(Skip::BeforeHorizon));
        assert_eq!(s.skip("b", 1, 16), None);
    }

    #[test]
    fn the_set_stays_bounded_and_the_horizon_covers_what_was_forgotten() {
        let mut s = Shipped::default();
        for i in 0..(MAX_SHIPPED as i64 + 1) {
            s.record(&format!("uid-{i}"), 1, 1_000 + i);
        }
        assert!(s.len() <= MAX_SHIPPED);
        assert!(s.len() >= MAX_SHIPPED - MAX_SHIPPED / 10);
        let forgotten = (MAX_SHIPPED as i64 + 1) - s.len() as i64;
        assert_eq!(s.horizon_us(), 1_000 + forgotten - 1);
        // Every event recorded still counts as shipped.
        for i in 0..(MAX_SHIPPED as i64 + 1) {
            assert!(s.skip(&format!("uid-{i}"), 1, 1_000 + i).is_some(), "{i}");
        }
        // A new one is not.
        assert_eq!(s.skip("new", 1, 1_000_000), None);
        // The text form of a full set fits a ConfigMap with room to spare.
        assert!(s.encode().len() < 800 * 1024, "{}", s.encode().len());
    }

    #[test]
    fn merging_claims_what_either_claims() {
        let mut a = Shipped::default();
        a.record("x", 1, 10);
        a.record("y", 5, 30);
        a.set_version("*", "100");
        let mut b = Shipped::default();
        b.record("x", 3, 12);
        b.record("z", 1, 40);
        b.horizon_us = 5;
        b.set_version("*", "90");
        b.set_version("dev", "95");
        a.merge(&b);
        assert_eq!(a.skip("x", 3, 12), Some(Skip::Shipped));
        assert_eq!(a.skip("z", 1, 40), Some(Skip::Shipped));
        assert_eq!(a.skip("y", 5, 30), Some(Skip::Shipped));
        assert_eq!(a.horizon_us(), 5);
        assert_eq!(a.version("*"), Some("100"), "ours stays");
        assert_eq!(a.version("dev"), Some("95"));
    }

    #[test]
    fn the_text_form_reads_back_and_bad_text_is_refused_with_its_line() {
        let mut s = Shipped::default();
        s.record("0b6f-1", 2, 1_718_000_001_000_000);
        s.record("0b6f-2", 0, 1_718_000_002_000_000);
        s.horizon_us = 1_718_000_000_000_000;
        s.set_version("*", "48213");
        s.set_version("kube-system", "48200");
        let text = s.encode();
        assert_eq!(
            text,
            "# ferro kubernetes_events state 1\nhorizon 1718000000000000\nversion * 48213\nversion kube-system 48200\nshipped 0b6f-1 2 1718000001000000\nshipped 0b6f-2 0 1718000002000000\n"
        );
        assert_eq!(Shipped::parse(&text).unwrap(), s);
        assert!(Shipped::parse("").unwrap_err().contains("first line"));
        let bad = format!("{HEADER}\nhorizon 1\nshipped a b 3\n");
        assert!(Shipped::parse(&bad).unwrap_err().starts_with("line 3:"));
        let bad = format!("{HEADER}\nsomething else\n");
        assert!(Shipped::parse(&bad).unwrap_err().starts_with("line 2:"));
    }
}
