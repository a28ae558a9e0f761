# syntax=docker/dockerfile:1
# tugboat container image: a static (musl) tugboat binary on a small Alpine base.
# Alpine rather than distroless because tugboat runs the git CLI (and ssh for ssh:// sources).
#   docker build -t tugboat .

FROM rust:1.95-alpine3.22 AS build
# ring (rustls' crypto) compiles a little C.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin tugboat \
    && strip target/release/tugboat

FROM alpine:3.22
# Versions follow the Alpine release pinned above; security fixes arrive with rebuilds.
# hadolint ignore=DL3018
RUN apk add --no-cache git openssh-client ca-certificates \
    && mkdir -p /var/cache/tugboat \
    && chown 65532:65532 /var/cache/tugboat
COPY --from=build /src/target/release/tugboat /usr/local/bin/tugboat
USER 65532:65532
ENV TUGBOAT_CACHE_DIR=/var/cache/tugboat
# 9292: trigger endpoint; 8080: /healthz, /readyz, /metrics.
EXPOSE 9292 8080
ENTRYPOINT ["/usr/local/bin/tugboat"]
CMD ["run"]
