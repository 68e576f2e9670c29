# Multi-stage build: a Rust toolchain builds ferro; the runtime image holds
# only the binary, CA certificates and a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY src src
COPY config config
RUN cargo build --release --locked --bin ferro

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ferro /usr/local/bin/ferro
COPY config/daemonset.toml /etc/ferro/ferro.toml
USER nonroot:nonroot
EXPOSE 4317 4318 8888
ENTRYPOINT ["/usr/local/bin/ferro"]
CMD ["run", "-c", "/etc/ferro/ferro.toml"]
