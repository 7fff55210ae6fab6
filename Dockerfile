# syntax=docker/dockerfile:1
# The production image: the operator alone (no simulators: --no-default-features), on a
# distroless base that has glibc and CA certificates but no shell or package manager, as a
# non-root user.
#   docker build -t azure-gallery-operator:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cache mounts keep the registry and the build directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin azure-gallery-operator \
    && cp target/release/azure-gallery-operator /azure-gallery-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /azure-gallery-operator /usr/local/bin/azure-gallery-operator
# The nonroot user of distroless images; the Helm chart and deploy/ run as the same UID.
USER 65532:65532
# /metrics, /healthz and /readyz.
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/azure-gallery-operator"]
CMD ["run"]
