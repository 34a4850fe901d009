# syntax=docker/dockerfile:1
# Chatalot in one container: the server binary, its web assets, and nothing else (no shell, no
# package manager). It runs as an unprivileged user, keeps its state in the /data volume, works
# with a read-only root filesystem, and checks its own health without curl.
#
#   docker build -t chatalot .                               # from source, for this machine
#   docker buildx build --platform linux/arm64 -t chatalot . # for a Raspberry Pi (emulated build)
#   cargo xtask image                                        # offline: from `cargo xtask build`'s files
#
# The runtime stage copies a root filesystem made by `cargo xtask rootfs`: the binary, the site,
# the shared libraries the binary links (read from ldd), CA certificates and /etc/passwd with the
# user (`files/`), and the empty volume (`volume/`, which becomes /data, owned by that user). ROOTFS picks where that comes from: `source` builds it here (needs the
# network for crates.io), `prebuilt` takes `rootfs/` from the build context (made by
# `cargo xtask image`, which builds nothing inside the container).
ARG ROOTFS=source
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS source
ARG PROFILE=release
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target CHATALOT_TOOLS_DIR=/usr/local/chatalot-tools
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/usr/local/chatalot-tools \
    cargo xtask rootfs /rootfs $( [ "$PROFILE" = release ] || echo --dev )

FROM scratch AS prebuilt
COPY rootfs/ /rootfs/

FROM ${ROOTFS} AS rootfs

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
# Where this source came from (e.g. --build-arg SOURCE_URL=https://git.example.com/you/chatalot).
ARG SOURCE_URL=unknown
COPY --from=rootfs /rootfs/files/ /
COPY --from=rootfs --chown=10001:10001 /rootfs/volume/ /data/
USER 10001:10001
# Listen on every address inside the container; the data directory is the volume. SQLite's own
# temporary files go there too, so nothing else needs to be writable.
ENV LISTEN_ADDR=0.0.0.0:8080 DATA_DIR=/data SITE_DIR=/usr/share/chatalot/site TMPDIR=/data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/chatalot-server", "healthcheck"]
# The server finishes in-flight requests on SIGTERM (within 20 s: give `docker stop` 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chatalot-server"]
LABEL org.opencontainers.image.title="Chatalot" \
      org.opencontainers.image.description="Self-hosted, end-to-end-encrypted chat server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
