# Shared by the benchmark scripts (sourced, after ROOT is set): where the tools are, a kubectl
# wrapper, the checks every script makes first, and stopping the operator it started.
# shellcheck shell=bash

KUBECONFIG_PATH=${KUBECONFIG_PATH:-$ROOT/target/testenv/kubeconfig}
KUBECTL=${KUBECTL:-$HOME/.cache/tugboat/testenv/bin/kubectl}
TUGBOAT=${TUGBOAT:-$ROOT/target/release/tugboat}
# The build tools of the test environment (`--kustomize-bin`, `--helm-bin`).
KUSTOMIZE_BIN=${KUSTOMIZE_BIN:-$HOME/.cache/tugboat/testenv/bin/kustomize}
HELM_BIN=${HELM_BIN:-$HOME/.cache/tugboat/testenv/bin/helm}
OPERATOR_PID=

die() { echo "error: $*" >&2; exit 1; }

# kubectl against the test control plane; K_TIMEOUT bounds each request (default 30s).
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout="${K_TIMEOUT:-30s}" "$@"; }

# prepare TOOL...: the control plane, kubectl, the release binary and each TOOL are there, and
# tugboat's CRDs are installed (server-side apply, as the tests do; a no-op when current).
prepare() {
    [[ -f $KUBECONFIG_PATH ]] || die "no kubeconfig at $KUBECONFIG_PATH (run: make testenv-up)"
    [[ -x $KUBECTL ]] || die "no kubectl at $KUBECTL (run: make testenv-build)"
    [[ -x $TUGBOAT ]] || die "no binary at $TUGBOAT (run: cargo build --release)"
    local tool
    for tool in "$@"; do command -v "$tool" >/dev/null || die "$tool is required"; done
    k version >/dev/null 2>&1 || die "the control plane does not answer (run: make testenv-up)"
    "$TUGBOAT" crds | k apply --server-side --force-conflicts --field-manager=tugboat-tests -f - >/dev/null
    k wait --for=condition=Established --timeout=60s crd/webhooks.tugboat.dev crd/gitopsapplications.tugboat.dev >/dev/null
}

# stop_operator [TENTHS]: SIGTERM to $OPERATOR_PID, SIGKILL if it is still there after TENTHS
# tenths of a second (default 50); clears OPERATOR_PID.
stop_operator() {
    if [[ -n $OPERATOR_PID ]] && kill -0 "$OPERATOR_PID" 2>/dev/null; then
        kill -TERM "$OPERATOR_PID" 2>/dev/null || true
        for _ in $(seq "${1:-50}"); do kill -0 "$OPERATOR_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$OPERATOR_PID" 2>/dev/null || true
        wait "$OPERATOR_PID" 2>/dev/null || true
    fi
    OPERATOR_PID=
}

# tenant NS: prepares NS as docs/install.md tells a platform team to (examples/tenant-namespace.yaml):
# applications there act as its tugboat-deployer ServiceAccount, never with the operator's rights.
tenant() {
    sed "s/team-a/$1/" "$ROOT/examples/tenant-namespace.yaml" | k apply -n "$1" -f - >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { local us=${EPOCHREALTIME/./}; echo $((us / 1000)); }
