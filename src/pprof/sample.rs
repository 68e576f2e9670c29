//! Synthetic profiles shaped like Go's: for unit tests, the pprof end-to-end
//! tests' misbehaving targets and the load harness, where a real Go program
//! is not at hand.

use ferro_proto::perftools::profiles::{
    Function, Line, Location, Mapping, Profile, Sample, ValueType,
};

/// The kinds of profile Go's `net/http/pprof` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/debug/pprof/profile`: `samples`/count and `cpu`/nanoseconds.
    Cpu,
    /// `/debug/pprof/heap` and `/allocs`: alloc and inuse objects and space.
    Heap,
    /// `/debug/pprof/goroutine`: `goroutine`/count.
    Goroutine,
    /// `/debug/pprof/mutex` and `/block`: contentions and delay.
    Contention,
}

/// A profile of `kind` with `samples` stacks over `functions` functions,
/// starting at `time_ns`; the same arguments give the same profile.
pub fn profile(kind: Kind, functions: usize, samples: usize, time_ns: i64) -> Profile {
    let mut strings: Vec<String> = vec![String::new()];
    let mut string = |s: &str| -> i64 {
        strings.push(s.to_string());
        strings.len() as i64 - 1
    };
    let (types, period_type, period): (&[(&str, &str)], (&str, &str), i64) = match kind {
        Kind::Cpu => (
            &[("samples", "count"), ("cpu", "nanoseconds")],
            ("cpu", "nanoseconds"),
            10_000_000,
        ),
        Kind::Heap => (
            &[
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes"),
            ],
            ("space", "bytes"),
            524_288,
        ),
        Kind::Goroutine => (&[("goroutine", "count")], ("goroutine", "count"), 1),
        Kind::Contention => (
            &[("contentions", "count"), ("delay", "nanoseconds")],
            ("contentions", "count"),
            1,
        ),
    };
    let sample_type: Vec<ValueType> = types
        .iter()
        .map(|(t, u)| ValueType {
            r#type: string(t),
            unit: string(u),
        })
        .collect();
    let period_type = Some(ValueType {
        r#type: string(period_type.0),
        unit: string(period_type.1),
    });
    let binary = string("/usr/local/bin/app");
    let build_id = string("9f3c1e2a7b");
    let mut function = Vec::with_capacity(functions);
    let mut location = Vec::with_capacity(functions);
    for i in 0..functions {
        let id = i as u64 + 1;
        let name = string(&format!(
            "github.com/example/app/internal/pkg{}.(*Handler{}).Serve{}",
            i % 17,
            i % 5,
            i
        ));
        let file = string(&format!("/src/app/internal/pkg{}/handler.go", i % 17));
        function.push(Function {
            id,
            name,
            system_name: name,
            filename: file,
            start_line: 10 + i as i64,
        });
        location.push(Location {
            id,
            mapping_id: 1,
            address: 0x40_0000 + 0x40 * id,
            line: vec![Line {
                function_id: id,
                line: 20 + i as i64,
                column: 0,
            }],
            is_folded: false,
        });
    }
    // A cheap deterministic generator: stacks of 8–31 frames.
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ samples as u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let sample = (0..samples)
        .map(|_| {
            let depth = 8 + (next() % 24) as usize;
            let location_id = (0..depth)
                .map(|_| 1 + next() % functions.max(1) as u64)
                .collect();
            let value = (0..types.len())
                .map(|i| (1 + next() % 100) as i64 * if i == 0 { 1 } else { period })
                .collect();
            Sample {
                location_id,
                value,
                label: Vec::new(),
            }
        })
        .collect();
    Profile {
        sample_type,
        sample,
        mapping: vec![Mapping {
            id: 1,
            memory_start: 0x40_0000,
            memory_limit: 0x80_0000,
            file_offset: 0,
            filename: binary,
            build_id,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: false,
        }],
        location,
        function,
        string_table: strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: time_ns,
        duration_nanos: if kind == Kind::Cpu { 10_000_000_000 } else { 0 },
        period_type,
        period,
        comment: Vec::new(),
        default_sample_type: 0,
    }
}
