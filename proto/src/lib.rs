//! Protobuf types ferro needs beyond the OTLP ones that `opentelemetry-proto` carries.
//!
//! Generated at build time from the files under `proto/` by prost-build, with
//! protox as the compiler so that no `protoc` binary is needed. Later signals add
//! their wire formats here: remote-write, Loki push, pprof, Pyroscope push.

/// `google.rpc`: the error model of gRPC and of OTLP/HTTP error bodies.
pub mod google {
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

/// Prometheus remote-write 1.0: `prometheus.WriteRequest`.
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Prometheus remote-write 2.0: `io.prometheus.write.v2.Request`.
pub mod write_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// Loki's push API: `logproto.PushRequest`.
pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// pprof's profile format: `perftools.profiles.Profile`.
pub mod perftools {
    pub mod profiles {
        include!(concat!(env!("OUT_DIR"), "/perftools.profiles.rs"));
    }
}

/// Pyroscope's shared types (`types.v1.LabelPair`).
pub mod types {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/types.v1.rs"));
    }
}

/// Pyroscope's push API: `push.v1.PushRequest`.
pub mod push {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/push.v1.rs"));
    }
}

pub use prost_types;

/// Zipkin's v2 span model: `zipkin.proto3.ListOfSpans`.
pub mod zipkin {
    include!(concat!(env!("OUT_DIR"), "/zipkin.proto3.rs"));
}
