//! Request bodies for Pyroscope: `push.v1.PushRequest` written straight from
//! ferro's profiles (no intermediate structs; the pprof bytes are copied
//! once, into the body), the `/ingest` query, and the label checks
//! Pyroscope's distributor makes (`pkg/validation/validate.go`), so that a
//! profile it would refuse is dropped here with a reason instead of failing
//! the whole request it travels in.

use bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::signal::Labels;
use crate::signal::names::{is_dotted_label_name, is_metric_name};
use crate::signal::profiles::Profile;

/// Pyroscope's default `max_label_names_per_series`.
pub const MAX_LABEL_NAMES: usize = 30;
/// Pyroscope's default `max_label_name_length`.
pub const MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Pyroscope's default `max_label_value_length`.
pub const MAX_LABEL_VALUE_LENGTH: usize = 2048;

/// Whether Pyroscope takes a profile with these labels; the error is the
/// counter reason.
pub fn check_labels(labels: &Labels) -> Result<(), &'static str> {
    if labels.is_empty() {
        return Err("missing_labels");
    }
    if labels.len() > MAX_LABEL_NAMES {
        return Err("max_label_names_per_series");
    }
    if !labels.get("__name__").is_some_and(is_metric_name) {
        return Err("invalid_profile_name");
    }
    if labels.get("service_name").is_none() {
        return Err("missing_service_name");
    }
    for (name, value) in labels.iter() {
        if name.len() > MAX_LABEL_NAME_LENGTH {
            return Err("label_name_too_long");
        }
        if value.len() > MAX_LABEL_VALUE_LENGTH {
            return Err("label_value_too_long");
        }
        if !is_dotted_label_name(name) {
            return Err("invalid_labels");
        }
    }
    Ok(())
}

/// A random id in UUID v4 form for `RawSample.ID`: written once per request,
/// so a retried request carries the same ids.
fn profile_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn len_field(tag: u32, len: usize) -> usize {
    encoded_len_varint(u64::from(tag << 3)) + encoded_len_varint(len as u64) + len
}

fn put_len(buf: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// A `push.v1.PushRequest` for `profiles`: one series per distinct label
/// set, in order of first appearance, each with its profiles as samples.
pub fn push_request(profiles: &[Profile]) -> Bytes {
    // Group by label set without hashing every set twice: few distinct sets
    // per request is the common case (one per target and profile type).
    let mut series: Vec<(&Labels, Vec<&Profile>)> = Vec::new();
    for profile in profiles {
        match series
            .iter_mut()
            .find(|(labels, _)| **labels == profile.labels)
        {
            Some((_, members)) => members.push(profile),
            None => series.push((&profile.labels, vec![profile])),
        }
    }
    let ids: Vec<String> = profiles.iter().map(|_| profile_id()).collect();
    let mut ids = ids.iter();
    let pair_len = |name: &str, value: &str| len_field(1, name.len()) + len_field(2, value.len());
    let sample_len = |p: &Profile| len_field(1, p.pprof.len()) + len_field(2, 36);
    let series_len = |labels: &Labels, members: &[&Profile]| {
        labels
            .iter()
            .map(|(n, v)| len_field(1, pair_len(n, v)))
            .sum::<usize>()
            + members
                .iter()
                .map(|p| len_field(2, sample_len(p)))
                .sum::<usize>()
    };
    let total: usize = series
        .iter()
        .map(|(l, m)| len_field(1, series_len(l, m)))
        .sum();
    let mut buf = Vec::with_capacity(total);
    for (labels, members) in &series {
        put_len(&mut buf, 1, series_len(labels, members));
        for (name, value) in labels.iter() {
            put_len(&mut buf, 1, pair_len(name, value));
            put_len(&mut buf, 1, name.len());
            buf.put_slice(name.as_bytes());
            put_len(&mut buf, 2, value.len());
            buf.put_slice(value.as_bytes());
        }
        for profile in members {
            let id = ids.next().map_or("", String::as_str);
            put_len(&mut buf, 2, sample_len(profile));
            put_len(&mut buf, 1, profile.pprof.len());
            buf.put_slice(&profile.pprof);
            put_len(&mut buf, 2, id.len());
            buf.put_slice(id.as_bytes());
        }
    }
    debug_assert_eq!(buf.len(), total);
    Bytes::from(buf)
}

/// The query of an `/ingest` request for `profile`: `name` is
/// `service_name{label=value,...}` (Pyroscope's application key) without
/// the reserved `__` labels, `from` and `until` whole seconds,
/// `format=pprof`, `spyName` the `pyroscope_spy` label (Pyroscope adds it
/// back as that label) or `ferro`. `Err` with a reason when a label value
/// cannot be written in a key (it holds `,`, `{`, `}` or `=`).
pub fn ingest_query(profile: &Profile) -> Result<String, &'static str> {
    let service = profile
        .labels
        .get("service_name")
        .ok_or("missing_service_name")?;
    let mut key = String::with_capacity(64);
    key.push_str(service);
    key.push('{');
    let mut first = true;
    for (name, value) in profile.labels.iter() {
        if name == "service_name" || name == SPY_LABEL || name.starts_with("__") {
            continue;
        }
        if value.contains([',', '{', '}', '=']) || service.contains(['{', '}']) {
            return Err("label_not_representable_in_ingest_key");
        }
        if !first {
            key.push(',');
        }
        first = false;
        key.push_str(name);
        key.push('=');
        key.push_str(value);
    }
    key.push('}');
    let seconds = |ns: i64| ns.div_euclid(1_000_000_000);
    let until = seconds(profile.end_ns).max(seconds(profile.start_ns) + 1);
    let spy = profile.labels.get(SPY_LABEL).unwrap_or("ferro");
    Ok(format!(
        "name={}&from={}&until={}&format=pprof&spyName={}",
        percent(&key),
        seconds(profile.start_ns),
        until,
        percent(spy),
    ))
}

/// The label Pyroscope's `/ingest` makes of `spyName`.
const SPY_LABEL: &str = "pyroscope_spy";

/// The body of an `/ingest` request for `profile`, and its content type: a
/// `multipart/form-data` form, as the Go SDK sends, with the pprof as the
/// `profile` part and, for the built-in profile types, a
/// `sample_type_config` part that says in `/ingest`'s words what
/// `__name__` says: display names (Pyroscope tells a mutex profile from a
/// block profile by them, their sample types being the same; a goroutine
/// profile keeps ferro's name), units and aggregation. Every sample type
/// is listed (Pyroscope before 1.0 reads only listed ones), none as
/// cumulative: `/ingest` subtracts nothing across requests (Pyroscope
/// before 1.0 stores nothing of a type so marked without a `prev_profile`;
/// 1.x ignores the mark), so profiles go as they are (see the README).
pub fn ingest_form(profile: &Profile) -> (String, Bytes) {
    let name = profile.labels.get("__name__").unwrap_or("");
    let built_in = matches!(
        name,
        "process_cpu" | "memory" | "goroutine" | "goroutines" | "mutex" | "block"
    );
    let mut config = serde_json::Map::new();
    for st in profile.sample_types.iter().filter(|_| built_in) {
        let entry = match (name, st.kind.as_str()) {
            ("process_cpu", "samples") => {
                serde_json::json!({"display-name": "cpu", "units": "samples", "sampled": true})
            }
            ("memory", "alloc_objects") => serde_json::json!({"units": "objects"}),
            ("memory", "alloc_space") => serde_json::json!({"units": "bytes"}),
            ("memory", "inuse_objects") => {
                serde_json::json!({"units": "objects", "aggregation": "average"})
            }
            ("memory", "inuse_space") => {
                serde_json::json!({"units": "bytes", "aggregation": "average"})
            }
            ("goroutine", "goroutine") => {
                serde_json::json!({"units": "goroutines", "aggregation": "average"})
            }
            ("goroutines", "goroutine") => serde_json::json!({
                "display-name": "goroutines",
                "units": "goroutines",
                "aggregation": "average",
            }),
            ("mutex" | "block", "contentions") => serde_json::json!({
                "display-name": format!("{name}_count"),
                "units": "lock_samples",
            }),
            ("mutex" | "block", "delay") => serde_json::json!({
                "display-name": format!("{name}_duration"),
                "units": "lock_nanoseconds",
            }),
            _ => serde_json::json!({}),
        };
        config.insert(st.kind.clone(), entry);
    }
    // A type named as another's display name would be stored in the same
    // series by Pyroscope before 1.0 (`cpu` beside `samples` shown as
    // `cpu`): leave it out, as the default mapping does.
    let shown: Vec<String> = config
        .values()
        .filter_map(|entry| entry["display-name"].as_str().map(str::to_string))
        .collect();
    config.retain(|kind, _| !shown.contains(kind));
    let config = serde_json::Value::Object(config).to_string();
    // A boundary that occurs in neither part.
    let mut boundary = String::from("ferro-profile-form");
    let finder = |b: &str| {
        memchr::memmem::find(&profile.pprof, b.as_bytes()).is_some() || config.contains(b)
    };
    while finder(&boundary) {
        boundary.push_str(&format!("{:x}", boundary.len()));
    }
    let mut body = Vec::with_capacity(profile.pprof.len() + config.len() + 400);
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(&profile.pprof);
    if built_in {
        body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"sample_type_config\"; filename=\"sample_type_config.json\"\r\nContent-Type: application/json\r\n\r\n").as_bytes());
        body.extend_from_slice(config.as_bytes());
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Bytes::from(body),
    )
}

fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
