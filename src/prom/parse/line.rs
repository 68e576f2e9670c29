//! The grammar of one line: samples with their labels, values, timestamps
//! and exemplars, and the `#` lines of each format.

use super::lexer::{self, Cursor, LineError};
use super::{Entry, ExemplarParts, Format, Label, MetricType, Parsed, Parser, SampleParts};

/// Above this many labels, duplicates are found by sorting rather than by
/// comparing every pair.
const PAIRWISE_DUPLICATE_CHECK_MAX: usize = 16;

impl<'a> Parser<'a> {
    /// What one line (without its `\n`) means.
    pub(super) fn parse_line(&mut self, line: &'a str) -> Result<Parsed<'a>, LineError> {
        let mut cur = Cursor::new(line);
        match self.format {
            Format::Text004 => {
                cur.skip_blanks();
                match cur.peek() {
                    None => Ok(Parsed::Nothing),
                    Some(b'#') => text004_comment(cur),
                    Some(_) => self.sample(cur).map(Parsed::Sample),
                }
            }
            Format::OpenMetrics => match cur.peek() {
                None => Err("empty line: OpenMetrics allows none".into()),
                Some(b'#') => openmetrics_comment(cur),
                Some(_) => self.sample(cur).map(Parsed::Sample),
            },
        }
    }

    /// `name{labels} value [timestamp] [# {labels} value [timestamp]]`.
    fn sample(&mut self, mut cur: Cursor<'a>) -> Result<SampleParts<'a>, LineError> {
        let om = self.format == Format::OpenMetrics;
        self.labels.clear();
        self.exemplar_labels.clear();

        let mut name = None;
        if cur.peek() != Some(b'{') {
            name = Some(cur.bare_metric_name()?);
        }
        let mut separated = !om && cur.skip_blanks();
        if cur.peek() == Some(b'{') {
            cur.advance();
            label_set(&mut cur, &mut self.labels, Some(&mut name), om)?;
            // 0.0.4 lets the value follow the brace directly.
            separated = !om;
        }
        let Some(name) = name else {
            return Err(cur.at("metric name missing: no bare name and no quoted one in braces"));
        };
        check_label_names(&self.labels, &mut self.names, true)?;

        if om {
            cur.expect(b' ', "a space before the value")?;
        } else if !cur.skip_blanks() && !separated && !cur.at_end() {
            return Err(cur.unexpected("a space or '{' after the metric name"));
        }
        let value = number(&mut cur, "value", lexer::value)?;

        let (timestamp_ms, exemplar) = if om {
            self.openmetrics_tail(&mut cur)?
        } else {
            (text004_tail(&mut cur)?, None)
        };
        Ok(SampleParts {
            name,
            value,
            timestamp_ms,
            exemplar,
        })
    }

    /// What may follow an OpenMetrics value: ` timestamp`, ` # exemplar`,
    /// or both, each after exactly one space.
    #[allow(
        clippy::type_complexity,
        reason = "private, and named by its fields' docs"
    )]
    fn openmetrics_tail(
        &mut self,
        cur: &mut Cursor<'a>,
    ) -> Result<(Option<i64>, Option<ExemplarParts>), LineError> {
        if cur.at_end() {
            return Ok((None, None));
        }
        cur.expect(b' ', "a space or end of line after the value")?;
        let mut timestamp_ms = None;
        if cur.peek() != Some(b'#') {
            timestamp_ms = Some(number(cur, "timestamp", lexer::seconds_as_ms)?);
            if cur.at_end() {
                return Ok((timestamp_ms, None));
            }
            cur.expect(b' ', "a space or end of line after the timestamp")?;
        }
        Ok((timestamp_ms, Some(self.exemplar(cur)?)))
    }

    /// `# {labels} value [timestamp]` at the end of an OpenMetrics sample.
    fn exemplar(&mut self, cur: &mut Cursor<'a>) -> Result<ExemplarParts, LineError> {
        if !cur.eat("# {") {
            return Err(cur.unexpected("an exemplar starting with \"# {\""));
        }
        label_set(cur, &mut self.exemplar_labels, None, true)?;
        check_label_names(&self.exemplar_labels, &mut self.names, false)?;
        cur.expect(b' ', "a space before the exemplar value")?;
        let value = number(cur, "exemplar value", lexer::value)?;
        let mut timestamp_ms = None;
        if !cur.at_end() {
            cur.expect(b' ', "a space or end of line after the exemplar value")?;
            timestamp_ms = Some(number(cur, "exemplar timestamp", lexer::seconds_as_ms)?);
            if !cur.at_end() {
                return Err(cur.unexpected("end of line after the exemplar timestamp"));
            }
        }
        Ok((value, timestamp_ms))
    }
}

/// What may follow a 0.0.4 value: blanks and an optional timestamp.
fn text004_tail(cur: &mut Cursor<'_>) -> Result<Option<i64>, LineError> {
    cur.skip_blanks();
    if cur.at_end() {
        return Ok(None);
    }
    let timestamp_ms = number(cur, "timestamp", lexer::timestamp_ms)?;
    cur.skip_blanks();
    if !cur.at_end() {
        return Err(cur.unexpected("end of line after the timestamp"));
    }
    Ok(Some(timestamp_ms))
}

/// A `#` line in 0.0.4: `# HELP`, `# TYPE`, or a comment.
fn text004_comment(mut cur: Cursor<'_>) -> Result<Parsed<'_>, LineError> {
    cur.advance();
    if !cur.skip_blanks() {
        return Ok(Parsed::Nothing);
    }
    let help = if cur.eat("HELP") {
        true
    } else if cur.eat("TYPE") {
        false
    } else {
        return Ok(Parsed::Nothing);
    };
    // `# HELP` alone, or `# HELPFUL note`, is still a comment.
    if !cur.skip_blanks() {
        return Ok(Parsed::Nothing);
    }
    let family = cur.metric_name()?;
    if !cur.skip_blanks() && !cur.at_end() {
        return Err(cur.unexpected("a space after the metric name"));
    }
    Ok(Parsed::Meta(if help {
        Entry::Help {
            family,
            text: lexer::help_text(cur.rest(), false),
        }
    } else {
        let word = cur.rest().trim_end_matches([' ', '\t']);
        Entry::Type {
            family,
            kind: MetricType::parse(word, Format::Text004)?,
        }
    }))
}

/// A `#` line in OpenMetrics: `# HELP`, `# TYPE`, `# UNIT` or `# EOF`, and
/// nothing else.
fn openmetrics_comment(mut cur: Cursor<'_>) -> Result<Parsed<'_>, LineError> {
    if cur.rest() == "# EOF" {
        return Ok(Parsed::Eof);
    }
    enum Keyword {
        Help,
        Type,
        Unit,
    }
    let keyword = if cur.eat("# HELP ") {
        Keyword::Help
    } else if cur.eat("# TYPE ") {
        Keyword::Type
    } else if cur.eat("# UNIT ") {
        Keyword::Unit
    } else {
        return Err(
            "invalid line: in OpenMetrics only # HELP, # TYPE, # UNIT and # EOF start with '#'"
                .into(),
        );
    };
    let family = cur.metric_name()?;
    cur.expect(b' ', "a space after the metric name")?;
    Ok(Parsed::Meta(match keyword {
        Keyword::Help => Entry::Help {
            family,
            text: lexer::help_text(cur.rest(), true),
        },
        Keyword::Type => Entry::Type {
            family,
            kind: MetricType::parse(cur.rest(), Format::OpenMetrics)?,
        },
        Keyword::Unit => {
            let unit = cur.metric_name_chars();
            if !cur.at_end() {
                return Err(cur.unexpected("a unit of [a-zA-Z0-9_:] characters"));
            }
            let suffixed = family
                .strip_suffix(unit)
                .is_some_and(|stem| stem.ends_with('_'));
            if !unit.is_empty() && !suffixed {
                return Err(format!(
                    "unit {unit:?} is not a suffix of metric family {family:?} \
                     (OpenMetrics wants the name to end in \"_{unit}\")"
                ));
            }
            Entry::Unit { family, unit }
        }
    }))
}

/// The labels after `{`, through the closing `}`. A quoted string standing
/// alone rather than before `=` is the metric name (Prometheus 3's syntax);
/// `name` is where it goes, `None` where no name may appear (exemplars).
fn label_set<'a>(
    cur: &mut Cursor<'a>,
    labels: &mut Vec<Label<'a>>,
    mut name: Option<&mut Option<&'a str>>,
    om: bool,
) -> Result<(), LineError> {
    let skip_blanks = |cur: &mut Cursor<'a>| {
        if !om {
            cur.skip_blanks();
        }
    };
    loop {
        skip_blanks(cur);
        let label = match cur.peek() {
            Some(b'}') => {
                cur.advance();
                return Ok(());
            }
            Some(b'"') => {
                let quoted = cur.quoted_name("name")?;
                skip_blanks(cur);
                if matches!(cur.peek(), Some(b',' | b'}')) {
                    match name.as_deref_mut() {
                        Some(slot @ None) => *slot = Some(quoted),
                        Some(Some(_)) => {
                            return Err(cur.at("metric name given twice"));
                        }
                        None => {
                            return Err(cur.at("an exemplar's labels cannot name a metric"));
                        }
                    }
                    if cur.peek() == Some(b',') {
                        cur.advance();
                    }
                    continue;
                }
                quoted
            }
            Some(_) => cur.label_name()?,
            None => return Err(cur.unexpected("a label name or '}'")),
        };
        skip_blanks(cur);
        cur.expect(b'=', "'=' after the label name")?;
        skip_blanks(cur);
        let value = cur.label_value()?;
        labels.push((label, value));
        skip_blanks(cur);
        match cur.peek() {
            Some(b',') => cur.advance(),
            Some(b'}') => {}
            _ => return Err(cur.unexpected("',' or '}' after the label value")),
        }
    }
}

/// Refuses a label name given twice, and on a sample a `__name__` label,
/// which would be a second metric name.
fn check_label_names<'a>(
    labels: &[Label<'a>],
    names: &mut Vec<&'a str>,
    sample: bool,
) -> Result<(), LineError> {
    let duplicate = |name: &str| format!("duplicate label name {name:?}");
    if sample && labels.iter().any(|(name, _)| *name == "__name__") {
        return Err("label \"__name__\" duplicates the metric name".into());
    }
    if labels.len() <= PAIRWISE_DUPLICATE_CHECK_MAX {
        for (i, (name, _)) in labels.iter().enumerate().skip(1) {
            if labels[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(duplicate(name));
            }
        }
        return Ok(());
    }
    names.clear();
    names.extend(labels.iter().map(|(name, _)| *name));
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(duplicate(pair[0])),
        None => Ok(()),
    }
}

/// Reads the token at the cursor as a number with `parse`, naming `what`
/// in the error.
fn number<T>(
    cur: &mut Cursor<'_>,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, LineError> {
    let start = cur.clone();
    let token = cur.token();
    if token.is_empty() {
        return Err(cur.unexpected(&format!("a {what}")));
    }
    parse(token).ok_or_else(|| start.at(&format!("invalid {what} {token:?}")))
}
