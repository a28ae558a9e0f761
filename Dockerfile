# syntax=docker/dockerfile:1
# tugboat container image: the tugboat binary on Debian slim, with git and ssh (tugboat runs
# the git CLI, and ssh for ssh:// sources), running as the non-root user 65532 (named, since
# ssh refuses to run for a user without a passwd entry).
#
#   docker build -t tugboat .                        # compiles tugboat in the build stage
#   docker build --build-arg BINARY=prebuilt -t tugboat .
#                     # takes target/release/tugboat, built on a Debian 12 host (`make build`)
#
# Both give the same runtime stage; the tests build the second way (testenv/image.sh), with a
# locally made Debian base (BASE) since no registry can be reached there.
ARG BASE=debian:bookworm-slim
ARG BINARY=build

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin tugboat \
    && install -D -m 0755 target/release/tugboat /out/tugboat

FROM scratch AS prebuilt
COPY target/release/tugboat /out/tugboat

# hadolint ignore=DL3006
FROM ${BINARY} AS binary

# hadolint ignore=DL3006
FROM ${BASE}
# Versions follow the Debian release of the base; security fixes arrive with rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && echo 'tugboat:x:65532:65532:tugboat:/var/cache/tugboat:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'tugboat:x:65532:' >>/etc/group \
    && mkdir -p /var/cache/tugboat \
    && chown 65532:65532 /var/cache/tugboat
COPY --from=binary /out/tugboat /usr/local/bin/tugboat
USER 65532:65532
ENV TUGBOAT_CACHE_DIR=/var/cache/tugboat
# 9292: trigger endpoint; 8080: /healthz, /readyz, /metrics.
EXPOSE 9292 8080
ENTRYPOINT ["/usr/local/bin/tugboat"]
CMD ["run"]
