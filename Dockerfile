# ocicert as a container image: static musl binaries on `scratch`, run as a non-root user.
#
#   docker build -t ocicert --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm ocicert scan ghcr.io/org/app:1.2
#
# The builder stage runs scripts/release.sh, which writes the final filesystem to /out. CI builds
# the same /out on the host and hands it to `buildah bud --build-context builder=…`, which
# replaces this stage (no network in CI); see tests/it/dockerfile.rs.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 gcc-aarch64-linux-gnu=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
WORKDIR /src
COPY . .
ARG TARGETARCH=amd64
RUN CARGO_TARGET_DIR=/tmp/target scripts/release.sh --arch "${TARGETARCH}" --out /out --dist /tmp/dist

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ocicert" \
      org.opencontainers.image.description="Find, inventory and judge the private keys and certificates in container images; inject trust bundles" \
      org.opencontainers.image.source="https://github.com/ocicert/ocicert" \
      org.opencontainers.image.url="https://github.com/ocicert/ocicert" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=builder /out/usr/ /usr/
COPY --from=builder /out/etc/ /etc/
COPY --from=builder /out/tmp/ /tmp/
COPY --from=builder --chown=65532:65532 /out/home/ocicert/ /home/ocicert/
ENV PATH=/usr/local/bin \
    HOME=/home/ocicert \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    OCICERT_STUB_DIR=/usr/local/lib/ocicert/stubs
USER 65532:65532
WORKDIR /home/ocicert
ENTRYPOINT ["ocicert"]
CMD ["--help"]
