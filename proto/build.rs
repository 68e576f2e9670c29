//! Compiles the .proto files under `proto/` with protox (pure Rust, no protoc).

fn main() {
    let files = [
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "prometheus/types.proto",
        "prometheus/remote.proto",
        "io/prometheus/write/v2/types.proto",
        "logproto/push.proto",
        "perftools/profiles/profile.proto",
        "types/v1/types.proto",
        "push/v1/push.proto",
        "zipkin/zipkin.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let descriptors =
        protox::compile(files, ["proto"]).expect("the .proto files under proto/ compile");
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("prost-build generates Rust from the descriptors");
}
