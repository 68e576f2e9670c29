//! One Kubernetes event as one log line, in the format of Grafana Alloy's
//! `loki.source.kubernetes_events`, so that queries and dashboards written
//! for Alloy's lines read ferro's unchanged.
//!
//! The fields, in this order, each only when not empty (`name` and `msg`
//! always): `name`, `kind`, `action`, `objectAPIversion`, `objectRV`,
//! `eventRV`, `reportinginstance`, `reportingcontroller`,
//! `sourcecomponent`, `sourcehost`, `reason`, `type`, `count` (when not
//! 0), `msg`.
//!
//! - logfmt (the default): `key=value ` for each field, values as they
//!   are except `msg`, which is quoted as Go's `%q` quotes; the line ends
//!   with a space, as Alloy's does.
//! - JSON: an object with the keys sorted, `count` a number, and `<`, `>`,
//!   `&`, U+2028 and U+2029 escaped as Go's encoder escapes them.
//!
//! Alloy reads core/v1 Events; ferro reads the same objects through
//! `events.k8s.io/v1`, whose names differ: `regarding` is
//! `involvedObject`, `note` is `message`, `deprecatedSource` is `source`,
//! and the count is `series.count` (else `deprecatedCount`).

use k8s_openapi::api::events::v1::Event;

/// What a line is made of, taken from an event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFields {
    pub name: String,
    pub kind: String,
    pub action: String,
    pub object_api_version: String,
    pub object_rv: String,
    pub event_rv: String,
    pub reporting_instance: String,
    pub reporting_controller: String,
    pub source_component: String,
    pub source_host: String,
    pub reason: String,
    pub type_: String,
    pub count: i32,
    pub msg: String,
}

impl EventFields {
    /// The fields of an `events.k8s.io/v1` event.
    pub fn of(event: &Event) -> EventFields {
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        let regarding = event.regarding.clone().unwrap_or_default();
        let source = event.deprecated_source.clone().unwrap_or_default();
        EventFields {
            name: text(&regarding.name),
            kind: text(&regarding.kind),
            action: text(&event.action),
            object_api_version: text(&regarding.api_version),
            object_rv: text(&regarding.resource_version),
            event_rv: text(&event.metadata.resource_version),
            reporting_instance: text(&event.reporting_instance),
            reporting_controller: text(&event.reporting_controller),
            source_component: text(&source.component),
            source_host: text(&source.host),
            reason: text(&event.reason),
            type_: text(&event.type_),
            count: event
                .series
                .as_ref()
                .map(|s| s.count)
                .or(event.deprecated_count)
                .unwrap_or(0),
            msg: text(&event.note),
        }
    }

    /// The fields present, in Alloy's order (`count` apart).
    fn texts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("name", self.name.as_str()),
            ("kind", &self.kind),
            ("action", &self.action),
            ("objectAPIversion", &self.object_api_version),
            ("objectRV", &self.object_rv),
            ("eventRV", &self.event_rv),
            ("reportinginstance", &self.reporting_instance),
            ("reportingcontroller", &self.reporting_controller),
            ("sourcecomponent", &self.source_component),
            ("sourcehost", &self.source_host),
            ("reason", &self.reason),
            ("type", &self.type_),
        ]
        .into_iter()
        .filter(|(key, value)| *key == "name" || !value.is_empty())
    }

    /// The logfmt line.
    pub fn logfmt(&self) -> String {
        let mut line = String::with_capacity(128 + self.msg.len());
        for (key, value) in self.texts() {
            line.push_str(key);
            line.push('=');
            line.push_str(value);
            line.push(' ');
        }
        if self.count != 0 {
            line.push_str("count=");
            line.push_str(&self.count.to_string());
            line.push(' ');
        }
        line.push_str("msg=");
        go_quote(&self.msg, &mut line);
        line.push(' ');
        line
    }

    /// The JSON line.
    pub fn json(&self) -> String {
        // serde_json's map keeps its keys sorted, as Go's encoder writes them.
        let mut object = serde_json::Map::new();
        for (key, value) in self.texts() {
            object.insert(key.into(), value.into());
        }
        if self.count != 0 {
            object.insert("count".into(), self.count.into());
        }
        object.insert("msg".into(), self.msg.clone().into());
        let text = serde_json::Value::Object(object).to_string();
        // Go's encoder escapes these too (for HTML and JavaScript).
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
        out
    }
}

/// The entry's time, in microseconds since the epoch: when the event last
/// happened (`deprecatedLastTimestamp`, core/v1's `lastTimestamp`, which
/// Alloy uses), else its series' last observation, else `eventTime`, else
/// when the object was created (Alloy drops an event with neither of its
/// two; ferro ships it at its creation). 0 if it has none of these.
pub fn event_time_us(event: &Event) -> i64 {
    event
        .deprecated_last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.series.as_ref().map(|s| s.last_observed_time.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map_or(0, |t| t.as_microsecond())
}

/// `text` quoted as Go's `strconv.Quote` (`%q`) quotes it: in double
/// quotes, `"` and `\` escaped, printable characters as they are, the
/// usual control escapes (`\n`, `\t`, …), and other non-printable
/// characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn go_quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
}

/// Go's `unicode.IsPrint`, as far as it can be told without Unicode's
/// category tables: not a control character, no space but U+0020, not a
/// format character (the ranges of category Cf) or a private-use one.
/// Unassigned code points, which Go also escapes, are kept.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    const FORMAT: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
        // Private use.
        (0xE000, 0xF8FF),
        (0xF0000, 0xFFFFD),
        (0x100000, 0x10FFFD),
    ];
    !FORMAT.iter().any(|(lo, hi)| (*lo..=*hi).contains(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> EventFields {
        EventFields {
            name: "web-0".into(),
            kind: "Pod".into(),
            object_api_version: "v1".into(),
            object_rv: "4711".into(),
            event_rv: "9001".into(),
            reporting_instance: "node-1".into(),
            reporting_controller: "kubelet".into(),
            source_component: "kubelet".into(),
            source_host: "node-1".into(),
            reason: "Pulled".into(),
            type_: "Normal".into(),
            count: 3,
            msg: "Successfully pulled image \"nginx:1.27\"".into(),
            ..Default::default()
        }
    }

    #[test]
    fn logfmt_as_alloy_writes_it() {
        assert_eq!(
            fields().logfmt(),
            r#"name=web-0 kind=Pod objectAPIversion=v1 objectRV=4711 eventRV=9001 reportinginstance=node-1 reportingcontroller=kubelet sourcecomponent=kubelet sourcehost=node-1 reason=Pulled type=Normal count=3 msg="Successfully pulled image \"nginx:1.27\"" "#
        );
        // Alloy's own test: only a name and a message.
        let minimal = EventFields {
            name: "alloy".into(),
            msg: "configuration reloaded".into(),
            ..Default::default()
        };
        assert_eq!(
            minimal.logfmt(),
            "name=alloy msg=\"configuration reloaded\" "
        );
        assert_eq!(
            EventFields {
                name: "n".into(),
                ..Default::default()
            }
            .logfmt(),
            "name=n msg=\"\" "
        );
    }

    #[test]
    fn json_as_alloy_writes_it() {
        let minimal = EventFields {
            name: "alloy".into(),
            msg: "configuration reloaded".into(),
            ..Default::default()
        };
        assert_eq!(
            minimal.json(),
            r#"{"msg":"configuration reloaded","name":"alloy"}"#
        );
        let mut f = fields();
        f.msg = "Back-off <pulling> a & b".into();
        assert_eq!(
            f.json(),
            r#"{"count":3,"eventRV":"9001","kind":"Pod","msg":"Back-off \u003cpulling\u003e a \u0026 b","name":"web-0","objectAPIversion":"v1","objectRV":"4711","reason":"Pulled","reportingcontroller":"kubelet","reportinginstance":"node-1","sourcecomponent":"kubelet","sourcehost":"node-1","type":"Normal"}"#
        );
    }

    #[test]
    fn messages_are_quoted_as_go_quotes_them() {
        let quote = |s: &str| {
            let mut out = String::new();
            go_quote(s, &mut out);
            out
        };
        assert_eq!(quote("a \"b\" \\c"), r#""a \"b\" \\c""#);
        assert_eq!(quote("line\nnext\ttab\r"), r#""line\nnext\ttab\r""#);
        assert_eq!(
            quote("\u{7}\u{8}\u{c}\u{b}\u{0}\u{1b}\u{7f}"),
            r#""\a\b\f\v\x00\x1b\x7f""#
        );
        assert_eq!(quote("päd ✓ 日本"), "\"päd ✓ 日本\"");
        assert_eq!(
            quote("zero\u{200b}width\u{feff}"),
            r#""zero\u200bwidth\ufeff""#
        );
        assert_eq!(quote("\u{85}\u{a0}\u{2028}"), r#""\u0085\u00a0\u2028""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn an_events_k8s_io_event_gives_alloys_fields() {
        let event: Event = serde_json::from_value(serde_json::json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web-0.17f", "namespace": "shop", "resourceVersion": "9001"},
            "eventTime": null,
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "action": "Pulling",
            "reason": "Pulled",
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-0", "apiVersion": "v1", "resourceVersion": "4711", "fieldPath": "spec.containers{web}"},
            "note": "Successfully pulled image \"nginx:1.27\"",
            "type": "Normal",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedCount": 2,
            "series": {"count": 3, "lastObservedTime": "2026-12-07T10:00:00.000000Z"}
        }))
        .unwrap();
        let mut want = fields();
        want.action = "Pulling".into();
        assert_eq!(EventFields::of(&event), want);
    }
}
