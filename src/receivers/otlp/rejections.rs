//! The tally a converter keeps of what it refused: counts by reason (for
//! `ferro_dropped_items`) and the first few distinct problems spelled out
//! (for the OTLP `partial_success` error message).

/// At most this many distinct problems are spelled out in the message.
const MAX_ISSUES: usize = 5;

/// Counts of rejected items, with the first few problems spelled out.
#[derive(Default)]
pub(super) struct Rejections {
    by_reason: Vec<(&'static str, u64)>,
    /// Distinct problems and their item counts, first met first.
    issues: Vec<(String, u64)>,
    /// Items rejected for problems beyond `MAX_ISSUES`.
    unlisted: u64,
    total: u64,
}

impl Rejections {
    /// Counts `items` rejected for `reason`, described by `message`.
    pub(super) fn add(&mut self, reason: &'static str, items: u64, message: String) {
        if items == 0 {
            return;
        }
        self.total += items;
        match self.by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += items,
            None => self.by_reason.push((reason, items)),
        }
        if let Some((_, count)) = self.issues.iter_mut().find(|(m, _)| *m == message) {
            *count += items;
        } else if self.issues.len() < MAX_ISSUES {
            self.issues.push((message, items));
        } else {
            self.unlisted += items;
        }
    }

    /// The total, the counts by reason in the order the reasons were first
    /// met, and the message (empty if nothing was rejected). `item` names one
    /// item in the summary (`data point`), `short` in the per-problem counts
    /// (`point`).
    pub(super) fn finish(self, item: &str, short: &str) -> (u64, Vec<(&'static str, u64)>, String) {
        let message = self.message(item, short);
        (self.total, self.by_reason, message)
    }

    fn message(&self, item: &str, short: &str) -> String {
        if self.total == 0 {
            return String::new();
        }
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let mut message = format!("{} {item}{} rejected: ", self.total, plural(self.total));
        for (i, (issue, count)) in self.issues.iter().enumerate() {
            if i > 0 {
                message.push_str("; ");
            }
            message.push_str(&format!("{issue} ({count} {short}{})", plural(*count)));
        }
        if self.unlisted > 0 {
            message.push_str(&format!("; and {} more for other reasons", self.unlisted));
        }
        message
    }
}
