# syntax=docker/dockerfile:1
# tugboat container image: the tugboat binary on Debian slim, with git and ssh (tugboat runs
# the git CLI, and ssh for ssh:// sources), helm and kustomize (for `helm template` and
# `kustomize build`), running as the non-root user 65532 (named, since ssh refuses to run for
# a user without a passwd entry).
#
#   docker build -t tugboat .                        # compiles tugboat and the tools here
#   docker build --build-arg BINARY=prebuilt --build-arg TOOLS=prebuilt-tools -t tugboat .
#       BINARY=prebuilt takes target/release/tugboat, built on a Debian 12 host (`make build`);
#       TOOLS=prebuilt-tools takes target/image-tools/{helm,kustomize} (static Go binaries)
#
# helm and kustomize are pinned by the wrapper modules testenv/helm and testenv/kustomize (the
# tests' own) and built with testenv/build.sh's flags. Every way gives the same runtime stage;
# the tests build with both prebuilt args (testenv/image.sh, tools from testenv/build.sh) and a
# locally made Debian base (BASE), since no registry can be reached there.
ARG BASE=debian:bookworm-slim
ARG BINARY=build
ARG TOOLS=tools

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin tugboat \
    && install -D -m 0755 target/release/tugboat /out/tugboat

FROM scratch AS prebuilt
COPY target/release/tugboat /out/tugboat

FROM golang:1.26-bookworm AS tools
ENV CGO_ENABLED=0 GOFLAGS=-mod=mod
WORKDIR /src/helm
COPY testenv/helm/ ./
# helm's release ldflags: `helm version` names the tag; the default Kubernetes version of
# `helm template` is the minor of helm's client-go (v0.N -> 1.N).
RUN v="$(go list -m -f '{{.Version}}' helm.sh/helm/v3)" \
    && minor="$(go list -m -f '{{.Version}}' k8s.io/client-go)" && minor="${minor#v0.}" \
    && minor="${minor%%.*}" \
    && flags="-s -w -X helm.sh/helm/v3/internal/version.version=$v" \
    && for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do \
         flags="$flags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"; \
       done \
    && go build -trimpath -ldflags "$flags" -o /out/ helm.sh/helm/v3/cmd/helm
WORKDIR /src/kustomize
COPY testenv/kustomize/ ./
# kustomize takes its version from the build info (its module's version).
RUN go build -trimpath -ldflags "-s -w" -o /out/ sigs.k8s.io/kustomize/kustomize/v5

FROM scratch AS prebuilt-tools
COPY target/image-tools/helm target/image-tools/kustomize /out/

# hadolint ignore=DL3006
FROM ${BINARY} AS binary

# hadolint ignore=DL3006
FROM ${TOOLS} AS tool-binaries

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
COPY --from=tool-binaries /out/helm /out/kustomize /usr/local/bin/
COPY --from=binary /out/tugboat /usr/local/bin/tugboat
USER 65532:65532
ENV TUGBOAT_CACHE_DIR=/var/cache/tugboat
# 9292: trigger endpoint; 8080: /healthz, /readyz, /metrics.
EXPOSE 9292 8080
ENTRYPOINT ["/usr/local/bin/tugboat"]
CMD ["run"]
