//! Parsing of the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.
//!
//! A scrape body is read line by line, without copying: names, label values
//! and help texts are slices of the body unless they hold escape sequences.
//! [`Parser::next`] is a lending iterator: the [`Entry`] it returns borrows a
//! label buffer that the parser reuses, so a sample costs no allocation.
//!
//! The formats, and the behaviour of Prometheus' own parser
//! (`model/textparse`) that this one follows where the specs leave room:
//! - 0.0.4: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.
//!   Tokens are separated by any run of spaces and tabs; empty lines and
//!   `#` lines other than `# HELP` and `# TYPE` are comments.
//! - OpenMetrics 1.0: <https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>
//!   (the ABNF under "Text format"). Stricter: single spaces, no empty lines
//!   or comments, `# UNIT`, exemplars, timestamps in seconds, and a closing
//!   `# EOF`.
//! - Both: the quoted names of Prometheus 3 (`{"my.metric", "my.label"="v"}`,
//!   `# HELP "my.metric" ...`), so long as they hold no escape sequence.
//!
//! Any input gives entries or a [`ParseError`] naming the line, never a
//! panic. The first error ends the parse: OpenMetrics holds a partial or
//! invalid exposition to be erroneous in its entirety, and so does a scrape.
//! Beyond syntax little is checked: families, suffixes such as `_total` or
//! `_created`, and the order of lines are the caller's business. Duplicate
//! label names within one sample are an error.
//!
//! ```
//! use ferro::prom::parse::{Entry, Format, Parser};
//!
//! let body = b"# TYPE up gauge\nup{job=\"node\"} 1\n";
//! let mut parser = Parser::new(body, Format::Text004);
//! while let Some(entry) = parser.next() {
//!     if let Entry::Sample(sample) = entry? {
//!         assert_eq!((sample.name, sample.value), ("up", 1.0));
//!         assert_eq!(sample.labels[0].0, "job");
//!     }
//! }
//! # Ok::<(), ferro::prom::parse::ParseError>(())
//! ```

mod lexer;
mod line;

use lexer::LineError;
use std::borrow::Cow;

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    #[default]
    Text004,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// The format of a scrape response by its `Content-Type`: OpenMetrics
    /// for `application/openmetrics-text` of any version, as Prometheus
    /// decides; 0.0.4 for anything else, including no header at all.
    pub fn from_content_type(content_type: &str) -> Format {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text004
        }
    }
}

/// The type a `# TYPE` line gives a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// OpenMetrics' `unknown`, and 0.0.4's `untyped`.
    Unknown,
}

impl MetricType {
    /// The type's name as OpenMetrics writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn parse(word: &str, format: Format) -> Result<MetricType, LineError> {
        Ok(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text004) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            (_, Format::Text004) => {
                return Err(format!(
                    "invalid metric type {word:?}: 0.0.4 has counter, gauge, histogram, summary and untyped"
                ));
            }
            (_, Format::OpenMetrics) => {
                return Err(format!(
                    "invalid metric type {word:?}: OpenMetrics has counter, gauge, histogram, \
                     gaugehistogram, summary, info, stateset and unknown"
                ));
            }
        })
    }
}

/// A label as written: name, and value with escapes resolved.
pub type Label<'p> = (&'p str, Cow<'p, str>);

/// One line of meaning in an exposition. Comments and empty lines are
/// skipped, and so is OpenMetrics' `# EOF`, which ends the iteration.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'p> {
    /// `# HELP family text`, the text unescaped.
    Help {
        family: &'p str,
        text: Cow<'p, str>,
    },
    /// `# TYPE family type`.
    Type {
        family: &'p str,
        kind: MetricType,
    },
    /// `# UNIT family unit` (OpenMetrics only); the unit may be empty.
    Unit {
        family: &'p str,
        unit: &'p str,
    },
    Sample(SampleRef<'p>),
}

/// A sample line, borrowing the body and the parser's label buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRef<'p> {
    /// The metric name as written, suffix included (`http_requests_total`,
    /// `x_bucket`, `x_created`).
    pub name: &'p str,
    /// In the order written.
    pub labels: &'p [Label<'p>],
    pub value: f64,
    /// Milliseconds since the epoch; OpenMetrics' seconds are converted.
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics only: `... # {trace_id="abc"} 1.0 1600000000.123`.
    pub exemplar: Option<ExemplarRef<'p>>,
}

/// The exemplar attached to a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarRef<'p> {
    pub labels: &'p [Label<'p>],
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// Why a body is not a valid exposition, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Reads the entries of one scrape body. See the module docs.
#[derive(Debug)]
pub struct Parser<'a> {
    format: Format,
    /// The body, or when it holds invalid UTF-8, the lines before the first
    /// line that does: validating once up front lets every slice below be a
    /// `&str` without checking each one.
    text: &'a str,
    /// Where in its line the first invalid UTF-8 byte is, if any.
    invalid_utf8: Option<usize>,
    /// Start of the next line in `text`.
    pos: usize,
    /// The line last read, 1-based.
    line: usize,
    /// Set after the last entry, an error, or `# EOF`.
    finished: bool,
    labels: Vec<Label<'a>>,
    exemplar_labels: Vec<Label<'a>>,
    /// Label names sorted for the duplicate check of a large label set.
    names: Vec<&'a str>,
}

/// A line's meaning before the label buffer is lent out.
enum Parsed<'a> {
    Nothing,
    Meta(Entry<'a>),
    Sample(SampleParts<'a>),
    Eof,
}

/// A sample but for its labels, which are in the parser's buffers.
struct SampleParts<'a> {
    name: &'a str,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<ExemplarParts>,
}

/// An exemplar's value and timestamp; its labels are in the parser's buffer.
type ExemplarParts = (f64, Option<i64>);

impl<'a> Parser<'a> {
    /// A parser over a whole scrape body in `format`.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        let (text, invalid_utf8) = match std::str::from_utf8(body) {
            Ok(text) => (text, None),
            Err(e) => {
                let valid = &body[..e.valid_up_to()];
                let line_start = memchr::memrchr(b'\n', valid).map_or(0, |i| i + 1);
                let text = std::str::from_utf8(&body[..line_start]).unwrap_or_default();
                (text, Some(e.valid_up_to() - line_start))
            }
        };
        Parser {
            format,
            text,
            invalid_utf8,
            pos: 0,
            line: 0,
            finished: false,
            labels: Vec::new(),
            exemplar_labels: Vec::new(),
            names: Vec::new(),
        }
    }

    /// The number (1-based) of the line the entry last returned came from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The next entry, an error (after which there are no more entries), or
    /// `None` at the end. The entry borrows the parser until the next call.
    #[allow(
        clippy::should_implement_trait,
        reason = "a lending iterator: Iterator cannot lend the label buffer"
    )]
    pub fn next(&mut self) -> Option<Result<Entry<'_>, ParseError>> {
        loop {
            if self.finished {
                return None;
            }
            let Some(line) = self.next_line() else {
                self.finished = true;
                return self.end_of_body().map(Err);
            };
            match self.parse_line(line) {
                Ok(Parsed::Nothing) => {}
                Ok(Parsed::Meta(entry)) => return Some(Ok(entry)),
                Ok(Parsed::Sample(parts)) => return Some(Ok(Entry::Sample(self.lend(parts)))),
                Ok(Parsed::Eof) => {
                    self.finished = true;
                    if self.pos < self.text.len() || self.invalid_utf8.is_some() {
                        return Some(Err(ParseError {
                            line: self.line + 1,
                            message: "unexpected content after # EOF".into(),
                        }));
                    }
                    return None;
                }
                Err(message) => {
                    self.finished = true;
                    return Some(Err(ParseError {
                        line: self.line,
                        message,
                    }));
                }
            }
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        let rest = self.text.get(self.pos..).filter(|rest| !rest.is_empty())?;
        let len = memchr::memchr(b'\n', rest.as_bytes()).unwrap_or(rest.len());
        self.pos = (self.pos + len + 1).min(self.text.len());
        self.line += 1;
        Some(&rest[..len])
    }

    /// What the end of the lines means: the invalid UTF-8 that cut them
    /// short, a missing `# EOF`, or nothing wrong.
    fn end_of_body(&self) -> Option<ParseError> {
        let line = self.line + 1;
        if let Some(byte) = self.invalid_utf8 {
            return Some(ParseError {
                line,
                message: format!("invalid UTF-8 at byte {} of the line", byte + 1),
            });
        }
        (self.format == Format::OpenMetrics).then(|| ParseError {
            line,
            message: "missing # EOF: an OpenMetrics exposition must end with it".into(),
        })
    }

    fn lend(&self, parts: SampleParts<'a>) -> SampleRef<'_> {
        SampleRef {
            name: parts.name,
            labels: &self.labels,
            value: parts.value,
            timestamp_ms: parts.timestamp_ms,
            exemplar: parts.exemplar.map(|(value, timestamp_ms)| ExemplarRef {
                labels: &self.exemplar_labels,
                value,
                timestamp_ms,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
