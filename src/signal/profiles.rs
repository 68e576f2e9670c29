//! Profiles as Pyroscope takes them: pprof bytes (gzip-compressed or not, as
//! received) with the series labels Pyroscope's push API carries (`__name__`
//! = the profile type such as `process_cpu`, `memory`, `goroutine`, `mutex`,
//! `block`; `service_name`; target labels), the time range the profile
//! covers and its sample types. Receivers check the bytes decode as pprof
//! before a profile is made (`crate::pprof`), so exporters send them as they
//! are: no profile is decoded twice or re-encoded on the way through.

use bytes::Bytes;
use std::sync::Arc;

use super::fields::{self, FieldVisitor, Fields, Group, LabelsGroup, Naming};
use super::{Labels, Signal, SignalData};

/// A batch of profiles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profiles {
    pub profiles: Vec<Profile>,
}

/// One profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Series labels: `__name__`, `service_name` and the target's labels.
    pub labels: Labels,
    /// A `perftools.profiles.Profile`, gzip-compressed or plain.
    pub pprof: Bytes,
    /// When the profile starts and ends, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    pub end_ns: i64,
    /// What each sample value measures (`cpu`/`nanoseconds`, `inuse_space`/`bytes`).
    pub sample_types: Arc<[SampleType]>,
}

/// One `ValueType` of a profile, resolved through its string table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleType {
    pub kind: String,
    pub unit: String,
}

impl Profile {
    /// The profile type (`__name__`), empty if unset.
    pub fn name(&self) -> &str {
        self.labels.get("__name__").unwrap_or("")
    }

    fn wire_size(&self) -> usize {
        // The bytes dominate; labels and framing are what a push request adds.
        self.pprof.len() + self.labels.heap_size() + 16
    }
}

impl Profiles {
    pub fn new(profiles: Vec<Profile>) -> Self {
        Self { profiles }
    }
}

impl SignalData for Profiles {
    const SIGNAL: Signal = Signal::Profiles;

    /// Profiles: one scrape of one profile type, or one pushed sample.
    fn item_count(&self) -> usize {
        self.profiles.len()
    }

    /// The pprof bytes plus their labels: what a push request carries.
    fn encoded_len(&self) -> usize {
        self.profiles.iter().map(Profile::wire_size).sum()
    }

    fn merge(&mut self, other: Self) {
        self.profiles.extend(other.profiles);
    }

    fn split_to(&mut self, n: usize) -> Self {
        let n = n.min(self.profiles.len());
        Profiles {
            profiles: self.profiles.drain(..n).collect(),
        }
    }
}

/// For processors a profile is one group, identified by its labels. The
/// pprof bytes hold no free text ferro could redact without decoding and
/// re-encoding every profile (function names and file paths are code, not
/// data); the labels are where secrets could travel, and they are walked.
impl Fields for Profiles {
    const NAMING: Naming = Naming::Labels;

    fn visit_fields(&mut self, visitor: &mut dyn FieldVisitor) {
        for profile in &mut self.profiles {
            if let Some(labels) = fields::visit_labels(&profile.labels, visitor) {
                profile.labels = labels;
            }
        }
    }

    fn retain_groups(&mut self, keep: &mut dyn FnMut(&mut dyn Group) -> bool) {
        self.profiles.retain_mut(|profile| {
            let bytes = profile.wire_size();
            keep(&mut LabelsGroup {
                labels: &mut profile.labels,
                items: 1,
                bytes,
            })
        });
    }

    fn partition(self, key: &mut dyn FnMut(&mut dyn Group) -> u64) -> Vec<(u64, Self)> {
        fields::partition_vec(self.profiles, |profile| {
            let bytes = profile.wire_size();
            key(&mut LabelsGroup {
                labels: &mut profile.labels,
                items: 1,
                bytes,
            })
        })
        .into_iter()
        .map(|(k, profiles)| (k, Profiles { profiles }))
        .collect()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A profile of `len` bytes (not pprof: for batching tests only).
    pub fn profile(service: &str, len: usize) -> Profile {
        Profile {
            labels: Labels::from_pairs([("__name__", "process_cpu"), ("service_name", service)]),
            pprof: Bytes::from(vec![0u8; len]),
            start_ns: 1,
            end_ns: 2,
            sample_types: Arc::from(vec![SampleType {
                kind: "cpu".into(),
                unit: "nanoseconds".into(),
            }]),
        }
    }

    struct Redact;

    impl FieldVisitor for Redact {
        fn may_change(&self, bytes: &[u8]) -> bool {
            bytes.windows(5).any(|w| w == b"token")
        }
        fn pair(&mut self, key: &str, _value: &str) -> Option<String> {
            (key == "token").then(|| "[REDACTED]".to_string())
        }
        fn text(&mut self, _text: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn processors_see_labels_as_the_group_and_never_touch_pprof_bytes() {
        let mut secret = profile("api", 10);
        secret.labels = Labels::from_pairs([("service_name", "api"), ("token", "s3cr3t")]);
        let mut profiles = Profiles::new(vec![secret, profile("db", 20), profile("api", 30)]);
        profiles.visit_fields(&mut Redact);
        assert_eq!(profiles.profiles[0].labels.get("token"), Some("[REDACTED]"));
        assert_eq!(profiles.profiles[0].pprof.len(), 10);
        let mut seen = Vec::new();
        profiles.retain_groups(&mut |g| {
            seen.push((g.items(), g.bytes()));
            g.get("service_name") != Some("db")
        });
        assert_eq!(profiles.item_count(), 2);
        assert_eq!(seen[1].0, 1);
        let parts =
            profiles.partition(&mut |g| g.get("service_name").map_or(0, |s| s.len() as u64));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1.item_count(), 2);
    }

    #[test]
    fn split_and_merge_keep_order_and_sizes() {
        let mut profiles = Profiles::new((0..5).map(|i| profile(&format!("s{i}"), 100)).collect());
        let total = profiles.encoded_len();
        assert_eq!(profiles.item_count(), 5);
        let head = profiles.split_to(2);
        assert_eq!(head.item_count(), 2);
        assert_eq!(profiles.item_count(), 3);
        assert_eq!(head.profiles[1].labels.get("service_name"), Some("s1"));
        assert_eq!(profiles.profiles[0].labels.get("service_name"), Some("s2"));
        assert_eq!(head.encoded_len() + profiles.encoded_len(), total);
        let mut merged = head;
        merged.merge(profiles);
        assert_eq!(merged.encoded_len(), total);
        assert_eq!(merged.profiles[4].name(), "process_cpu");
        assert_eq!(merged.split_to(10).item_count(), 5);
    }
}
