# Multi-stage build: a Rust toolchain builds ferro; the runtime image holds
# the binary, CA certificates, Debian's journalctl (the journald receiver
# reads the host's journal through it) and a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY src src
COPY config config
RUN cargo build --release --locked --bin ferro

# Debian 12, as the build: journalctl comes with its systemd package (only
# journalctl is used; no init runs). The DaemonSet runs the image as root
# with every capability dropped, to read the node's logs and journal.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates systemd \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 65532 --user-group --no-create-home nonroot
COPY --from=build /src/target/release/ferro /usr/local/bin/ferro
COPY config/daemonset.toml /etc/ferro/ferro.toml
USER 65532:65532
EXPOSE 4317 4318 8888
ENTRYPOINT ["/usr/local/bin/ferro"]
CMD ["run", "-c", "/etc/ferro/ferro.toml"]
