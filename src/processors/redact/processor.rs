//! The redactor: the rules run over every field a batch exposes, in place,
//! counting what each rule redacts.

use super::config::RedactConfig;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use prometheus_client::metrics::counter::Counter;
use regex::{Regex, RegexSet};

use super::config::UserRule;
use super::prefilter::Prefilter;
use super::rules::{BUILTINS, Matcher};
use crate::config::ComponentId;
use crate::delivery::Batch;
use crate::signal::{FieldVisitor, Fields, Signal};
use crate::telemetry::Telemetry;

/// A compiled redaction config, shared by every pipeline that runs it.
pub struct Redactor {
    replacement: String,
    deny_keys: Vec<String>,
    allow_keys: Option<Vec<String>>,
    keys_rule: Option<usize>,
    json_fields: bool,
    /// Anchors of every active rule, lower-cased, in SIMD (Teddy) searchers
    /// run over a lower-cased copy of each region: whether to look closer.
    pub(super) prefilter: Option<Prefilter>,
    /// The same anchors, case ignored, for finding which rules to run on a
    /// region that passed; pattern `i` belongs to the rules `anchor_rules[i]`.
    pub(super) anchors: Option<AhoCorasick>,
    anchor_rules: Vec<Vec<usize>>,
    /// Compiled value rules, indexed like `names`; `None` for key-only rules.
    rules: Vec<Option<ValueRule>>,
    /// Rules with no anchor: they run on every region looked at.
    unanchored: Vec<usize>,
    cards_rule: Option<usize>,
    /// The PEM private key rule, which also follows a key across the lines
    /// of a log stream.
    private_key_rule: Option<usize>,
    /// Operator rules on keys, and their indexes in `names`.
    user_keys: Option<(RegexSet, Vec<usize>)>,
    /// Operator rules on values, and their indexes in `names`.
    user_values: Option<(RegexSet, Vec<usize>)>,
    /// Whether every region must be walked (allow-list or operator key rules).
    always: bool,
    pub(super) names: Vec<String>,
    replacements: Vec<Option<String>>,
    /// Per rule, per signal.
    pub(super) counters: Vec<[Counter; 4]>,
}

pub(super) struct ValueRule {
    regex: Regex,
    group: usize,
    accept: fn(&str) -> bool,
}

/// Index of `signal` in a rule's counters.
pub(super) fn signal_slot(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
        Signal::Profiles => 3,
    }
}

impl Redactor {
    pub fn new(id: &ComponentId, config: &RedactConfig, telemetry: &Telemetry) -> Self {
        let mut names = Vec::new();
        let mut replacements = Vec::new();
        let mut rules = Vec::new();
        let mut anchor_patterns: Vec<String> = Vec::new();
        let mut anchor_rules: Vec<Vec<usize>> = Vec::new();
        let mut add_anchor = |anchor: &str, rule: usize| {
            let anchor = anchor.to_ascii_lowercase();
            match anchor_patterns.iter().position(|a| *a == anchor) {
                Some(i) => anchor_rules[i].push(rule),
                None => {
                    anchor_patterns.push(anchor);
                    anchor_rules.push(vec![rule]);
                }
            }
        };
        let mut unanchored = Vec::new();
        let mut cards_rule = None;
        let mut keys_rule = None;
        for &b in &config.builtins {
            let builtin = &BUILTINS[b];
            let index = names.len();
            names.push(builtin.name.to_string());
            replacements.push(None);
            rules.push(match &builtin.matcher {
                Matcher::Regex {
                    pattern,
                    group,
                    accept,
                } => Some(ValueRule {
                    // The built-in patterns are constants checked by a test.
                    regex: Regex::new(pattern).expect("built-in redaction pattern"),
                    group: *group,
                    accept: *accept,
                }),
                Matcher::Keys | Matcher::Cards => None,
            });
            match builtin.matcher {
                Matcher::Keys => keys_rule = Some(index),
                Matcher::Cards => cards_rule = Some(index),
                Matcher::Regex { .. } if builtin.anchors.is_empty() => unanchored.push(index),
                Matcher::Regex { .. } => {}
            }
            for anchor in builtin.anchors {
                add_anchor(anchor, index);
            }
        }
        if let Some(keys) = keys_rule {
            for key in &config.deny_keys {
                add_anchor(super::rules::key_anchor(key), keys);
            }
        }
        let mut user_key_patterns = Vec::new();
        let mut user_key_rules = Vec::new();
        let mut user_value_patterns = Vec::new();
        let mut user_value_rules = Vec::new();
        for UserRule {
            name,
            key,
            value,
            replacement,
        } in &config.rules
        {
            let index = names.len();
            names.push(name.clone());
            replacements.push(replacement.clone());
            rules.push(value.as_ref().map(|regex| ValueRule {
                group: if regex.capture_names().any(|n| n == Some("secret")) {
                    usize::MAX
                } else {
                    0
                },
                regex: regex.clone(),
                accept: |_| true,
            }));
            if let Some(key) = key {
                user_key_patterns.push(key.as_str().to_string());
                user_key_rules.push(index);
            }
            if let Some(value) = value {
                user_value_patterns.push(value.as_str().to_string());
                user_value_rules.push(index);
            }
        }
        let set = |patterns: Vec<String>, indexes: Vec<usize>| {
            (!patterns.is_empty()).then(|| {
                // Each pattern compiled alone during validation.
                (
                    RegexSet::new(patterns).expect("validated redaction rules"),
                    indexes,
                )
            })
        };
        let user_keys = set(user_key_patterns, user_key_rules);
        let user_values = set(user_value_patterns, user_value_rules);
        let prefilter = Prefilter::new(&anchor_patterns);
        let anchors = (!anchor_patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                // Past 100 patterns the builder would pick an NFA, twice as
                // slow over a line; the DFA of ~160 anchors is a few
                // hundred KiB, once per redaction config.
                .kind(Some(AhoCorasickKind::DFA))
                .build(&anchor_patterns)
                .expect("redaction anchors are plain literals")
        });
        let allow_list = config.allow_keys.is_some();
        if allow_list {
            names.push("allow_list".to_string());
            replacements.push(None);
            rules.push(None);
        }
        let processor = id.to_string();
        let counters = names
            .iter()
            .map(|rule| {
                [
                    Signal::Traces,
                    Signal::Metrics,
                    Signal::Logs,
                    Signal::Profiles,
                ]
                .map(|signal| {
                    telemetry
                        .redactions
                        .get_or_create(&crate::telemetry::RuleLabels {
                            processor: processor.clone(),
                            signal: signal.as_str(),
                            rule: rule.clone(),
                        })
                        .clone()
                })
            })
            .collect();
        Self {
            replacement: config.replacement.clone(),
            deny_keys: config.deny_keys.clone(),
            allow_keys: config.allow_keys.clone(),
            keys_rule,
            json_fields: config.json_fields,
            prefilter,
            anchors,
            anchor_rules,
            rules,
            unanchored,
            cards_rule,
            private_key_rule: config
                .builtins
                .iter()
                .position(|&b| BUILTINS[b].name == super::rules::PRIVATE_KEY),
            always: allow_list || user_keys.is_some() || user_values.is_some(),
            user_keys,
            user_values,
            names,
            replacements,
            counters,
        }
    }

    /// Redacts a batch in place, on its own: a private key logged a line at
    /// a time is followed within the batch only.
    pub fn process<T: Fields>(&self, batch: &mut Batch<T>) {
        self.process_stream(batch, &mut OpenKeys::default());
    }

    /// Redacts a batch in place, one of a pipeline's sequence: `open_keys`
    /// carries private keys still being logged from one batch to the next.
    pub fn process_stream<T: Fields>(&self, batch: &mut Batch<T>, open_keys: &mut OpenKeys) {
        let mut pass = Pass::new(self, open_keys);
        batch.data.visit_fields(&mut pass);
        if pass.hits.iter().any(|&h| h > 0) {
            batch.bytes = batch.data.encoded_len();
            let slot = signal_slot(T::SIGNAL);
            for (rule, &hits) in pass.hits.iter().enumerate() {
                if hits > 0 {
                    self.counters[rule][slot].inc_by(hits);
                }
            }
        }
    }

    pub(super) fn may_change(&self, bytes: &[u8]) -> bool {
        self.may_change_any(&mut std::iter::once(bytes))
    }

    fn may_change_any(&self, regions: &mut dyn Iterator<Item = &[u8]>) -> bool {
        if self.always || !self.unanchored.is_empty() {
            return true;
        }
        let cards = self.cards_rule.is_some();
        match (&self.prefilter, &self.anchors) {
            (Some(prefilter), _) => prefilter.is_match_any(regions, cards),
            (None, anchors) => {
                for region in regions {
                    if (cards && super::rules::has_digit_run(region))
                        || anchors.as_ref().is_some_and(|a| a.is_match(region))
                    {
                        return true;
                    }
                }
                false
            }
        }
    }

    pub(super) fn replacement_for(&self, rule: usize) -> &str {
        self.replacements[rule]
            .as_deref()
            .unwrap_or(&self.replacement)
    }

    /// The rule that redacts the value under `key` whole, if any.
    pub(super) fn key_rule(&self, key: &str) -> Option<usize> {
        if let Some(allow) = &self.allow_keys
            && key != "__name__"
            && !allow.iter().any(|a| a == key)
        {
            return Some(self.names.len() - 1);
        }
        if let Some(rule) = self.keys_rule
            && super::rules::key_denied(key, &self.deny_keys)
        {
            return Some(rule);
        }
        if let Some((set, indexes)) = &self.user_keys {
            return set.matches(key).iter().next().map(|i| indexes[i]);
        }
        None
    }

    /// Byte ranges of `text` to replace, with the rule of each, sorted and
    /// without overlaps.
    fn find(&self, text: &str, out: &mut Vec<(usize, usize, usize)>) {
        let mut wanted = vec![false; self.rules.len()];
        if let Some(anchors) = &self.anchors {
            for m in anchors.find_overlapping_iter(text) {
                for &rule in &self.anchor_rules[m.pattern().as_usize()] {
                    wanted[rule] = true;
                }
            }
        }
        for &rule in &self.unanchored {
            wanted[rule] = true;
        }
        if let Some((set, indexes)) = &self.user_values {
            for i in set.matches(text).iter() {
                wanted[indexes[i]] = true;
            }
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let Some(rule) = rule else { continue };
            if !wanted[index] {
                continue;
            }
            // A rule that replaces its whole match needs no capture groups,
            // which the regex engine finds more cheaply.
            let matches: Box<dyn Iterator<Item = regex::Match<'_>>> = match rule.group {
                0 => Box::new(rule.regex.find_iter(text)),
                usize::MAX => Box::new(
                    rule.regex
                        .captures_iter(text)
                        .filter_map(|c| c.name("secret")),
                ),
                group => Box::new(
                    rule.regex
                        .captures_iter(text)
                        .filter_map(move |c| c.get(group)),
                ),
            };
            for m in matches {
                if m.is_empty() || !(rule.accept)(m.as_str()) {
                    continue;
                }
                let (mut start, mut end) = (m.start(), m.end());
                // A quoted value keeps its quotes.
                let quoted = m.as_str();
                if quoted.len() >= 2
                    && ((quoted.starts_with('"') && quoted.ends_with('"'))
                        || (quoted.starts_with('\'') && quoted.ends_with('\'')))
                {
                    start += 1;
                    end -= 1;
                    if start == end {
                        continue;
                    }
                }
                // Already redacted (a value class may stop inside the
                // replacement, as at the `]` of `[REDACTED]`).
                if text[start..].starts_with(self.replacement_for(index)) {
                    continue;
                }
                out.push((start, end, index));
            }
        }
        if let Some(rule) = self.cards_rule {
            let mut cards = Vec::new();
            super::rules::find_cards(text, &mut cards);
            out.extend(cards.into_iter().map(|(s, e)| (s, e, rule)));
        }
        out.sort_unstable();
        // Merge overlaps: the earliest range wins and grows to cover the rest.
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(out.len());
        for &(start, end, rule) in out.iter() {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end, rule)),
            }
        }
        *out = merged;
    }

    /// `text` with its secrets replaced, or `None` if it has none.
    pub(super) fn redact_text(&self, text: &str, hits: &mut [u64]) -> Option<String> {
        let mut ranges = Vec::new();
        self.find(text, &mut ranges);
        if ranges.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, rule) in ranges {
            let replacement = self.replacement_for(rule);
            if &text[start..end] == replacement {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(replacement);
            at = end;
            hits[rule] += 1;
        }
        if at == 0 {
            return None;
        }
        out.push_str(&text[at..]);
        Some(out)
    }
}

/// Log streams in the middle of a PEM private key logged one line per
/// record (as a container's output is): the stream's identity and how many
/// of the key's lines it has logged. One per pipeline, since a pipeline sees
/// each stream's batches in order.
#[derive(Debug, Default)]
pub struct OpenKeys {
    pub(super) streams: std::collections::HashMap<u64, u16>,
}

impl OpenKeys {
    /// Streams followed at once, at most; past it the oldest-looking entry
    /// makes room (a stream that stopped logging in the middle of a key).
    const MAX: usize = 4096;

    fn insert(&mut self, stream: u64, lines: u16) {
        if self.streams.len() >= Self::MAX
            && !self.streams.contains_key(&stream)
            && let Some(&any) = self.streams.keys().next()
        {
            self.streams.remove(&any);
        }
        self.streams.insert(stream, lines);
    }
}

/// One batch's walk: the redactor and what it replaced, per rule.
pub(super) struct Pass<'a> {
    redactor: &'a Redactor,
    pub(super) hits: Vec<u64>,
    /// The last pair found clean: pairs repeat (every entry of a file has
    /// the same `filename`), and a repeat costs one comparison.
    clean_key: String,
    clean_value: String,
    open_keys: &'a mut OpenKeys,
    /// The log stream whose lines are being walked, and, while it is in the
    /// middle of a private key, how many of the key's lines came so far.
    stream: Option<(u64, Option<u16>)>,
}

impl<'a> Pass<'a> {
    pub(super) fn new(redactor: &'a Redactor, open_keys: &'a mut OpenKeys) -> Self {
        Self {
            redactor,
            hits: vec![0; redactor.names.len()],
            clean_key: String::new(),
            clean_value: String::new(),
            open_keys,
            stream: None,
        }
    }

    /// A line of a stream in the middle of a private key: its key material
    /// replaced, or `Err` when the line is not the key's (the key is over).
    fn key_line(&mut self, line: &[u8], rule: usize) -> Result<Option<String>, ()> {
        let Some((_, Some(lines))) = &mut self.stream else {
            return Err(());
        };
        let Ok(text) = std::str::from_utf8(line) else {
            return Err(());
        };
        let (start, end, open) = match super::rules::key_continues(text) {
            super::rules::KeyLine::Blank => return Ok(None),
            super::rules::KeyLine::Other => return Err(()),
            super::rules::KeyLine::Body(start, end) => (start, end, true),
            super::rules::KeyLine::End(start, end) => (start, end, false),
        };
        *lines += 1;
        if !open || *lines >= super::rules::MAX_KEY_LINES {
            self.stream = self.stream.map(|(id, _)| (id, None));
        }
        self.hits[rule] += 1;
        let replacement = self.redactor.replacement_for(rule);
        let mut out = String::with_capacity(text.len() - (end - start) + replacement.len());
        out.push_str(&text[..start]);
        out.push_str(replacement);
        out.push_str(&text[end..]);
        Ok(Some(out))
    }
}

impl FieldVisitor for Pass<'_> {
    fn may_change(&self, bytes: &[u8]) -> bool {
        self.redactor.may_change(bytes)
    }

    fn may_change_any(&self, regions: &mut dyn Iterator<Item = &[u8]>) -> bool {
        self.redactor.may_change_any(regions)
    }

    fn pair(&mut self, key: &str, value: &str) -> Option<String> {
        if key == self.clean_key && value == self.clean_value && !key.is_empty() {
            return None;
        }
        let changed = self.check_pair(key, value);
        if changed.is_none() {
            self.clean_key.clear();
            self.clean_key.push_str(key);
            self.clean_value.clear();
            self.clean_value.push_str(value);
        }
        changed
    }

    fn begin_lines(&mut self, stream: u64) -> bool {
        let open = if self.open_keys.streams.is_empty() {
            None
        } else {
            self.open_keys.streams.remove(&stream)
        };
        self.stream = Some((stream, open));
        open.is_some()
    }

    fn line(&mut self, line: &[u8]) -> Option<String> {
        let rule = self.redactor.private_key_rule;
        if let Some(rule) = rule
            && matches!(self.stream, Some((_, Some(_))))
        {
            match self.key_line(line, rule) {
                Ok(replaced) => return replaced,
                Err(()) => self.stream = self.stream.map(|(id, _)| (id, None)),
            }
        }
        if !self.may_change(line) {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        let replaced = self.text(text);
        if rule.is_some()
            && let Some((_, open)) = &mut self.stream
            && super::rules::opens_private_key(text)
        {
            *open = Some(0);
        }
        replaced
    }

    fn end_lines(&mut self) {
        if let Some((stream, Some(lines))) = self.stream.take() {
            self.open_keys.insert(stream, lines);
        }
    }

    fn text(&mut self, text: &str) -> Option<String> {
        let r = self.redactor;
        // A line that is not valid JSON after all is treated as plain text.
        if r.json_fields
            && text.trim_start().starts_with('{')
            && let Some(result) = super::json::redact(text, r, &mut self.hits)
        {
            return result;
        }
        r.redact_text(text, &mut self.hits)
    }
}

impl Pass<'_> {
    fn check_pair(&mut self, key: &str, value: &str) -> Option<String> {
        let r = self.redactor;
        if let Some(rule) = r.key_rule(key) {
            let replacement = r.replacement_for(rule);
            if value == replacement {
                return None;
            }
            self.hits[rule] += 1;
            return Some(replacement.to_string());
        }
        if value.is_empty() || !r.may_change(value.as_bytes()) {
            return None;
        }
        self.text(value)
    }
}
