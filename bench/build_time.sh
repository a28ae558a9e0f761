#!/usr/bin/env bash
# Build time: `tugboat render` of a Kustomize overlay and of a Helm chart, against the tool run
# alone on the same input, and against `tugboat render` of plain YAML holding the same objects.
#
# `tugboat render` builds exactly as the operator does (the repository's files written to a
# private directory, the tool run hermetically, then `${VAR}` substitution), so the difference
# to the tool alone is what tugboat adds around it. With the release binary (`cargo build
# --release`) and the test environment's kustomize and helm (no control plane needed), it:
#   1. copies tests/fixtures/kustomize-shop and tests/fixtures/helm-shop into scratch Git
#      repositories (as the tests do: a render inside this repository would read its whole work
#      tree), and writes the prod overlay's `kustomize build` output as one file per object into
#      a plain directory (the plain baseline: the same 3 objects, the same placeholder),
#   2. checks that the overlay and the plain directory render to the same objects,
#   3. runs each of the five commands below once to warm up, then N rounds, each round running
#      every command once (the order rotates from round to round, so a disturbance of the
#      machine spreads over all of them), stdout to /dev/null,
#   4. prints the wall time (median, p90, min) and the CPU time (user + system of the process
#      and every process it waited for, from wait4) as a Markdown table, and the ratios.
# The commands (in the scratch repositories):
#   kustomize build overlays/prod
#   tugboat render overlays/prod --kustomize-bin … --helm-bin … --var SERVICE_TAG=bench
#   helm template release chart --namespace default --skip-tests --include-crds --values chart/values-prod.yaml
#   tugboat render chart --helm-values values-prod.yaml --kustomize-bin … --helm-bin … --var SERVICE_TAG=bench
#   tugboat render plain --var SERVICE_TAG=bench
# (the helm arguments are those tugboat passes; kustomize's `--load-restrictor
# LoadRestrictionsRootOnly` is its default). A run with N=20 takes a few seconds.
#
# Usage: bench/build_time.sh
# Env:   N (rounds, default 20), TUGBOAT, KUSTOMIZE_BIN, HELM_BIN, KEEP_LOGS=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
N=${N:-20}

[[ -x $TUGBOAT ]] || die "no binary at $TUGBOAT (run: cargo build --release)"
[[ -x $KUSTOMIZE_BIN ]] || die "no kustomize at $KUSTOMIZE_BIN (run: make testenv-build)"
[[ -x $HELM_BIN ]] || die "no helm at $HELM_BIN (run: make testenv-build)"
for tool in git python3 awk; do command -v "$tool" >/dev/null || die "$tool is required"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tugboat-buildtime.XXXXXX")
cleanup() { if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "files kept in $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the inputs ------------------------------------------------------------------------
for fixture in kustomize-shop helm-shop; do
    cp -R "$ROOT/tests/fixtures/$fixture" "$WORK/$fixture"
    git -C "$WORK/$fixture" init --quiet --initial-branch=main
    git -C "$WORK/$fixture" add -A
    git -C "$WORK/$fixture" -c user.name=bench -c user.email=bench@example.invalid commit --quiet -m fixture
done
mkdir "$WORK/plain"
(cd "$WORK/kustomize-shop" && "$KUSTOMIZE_BIN" build overlays/prod) >"$WORK/prod.yaml"
python3 - "$WORK/prod.yaml" "$WORK/plain" <<'PY'
import re, sys
documents = [d for d in re.split(r"^---\n", open(sys.argv[1]).read(), flags=re.M) if d.strip()]
for n, document in enumerate(documents, 1):
    kind = re.search(r"^kind: (\S+)", document, re.M).group(1).lower()
    open(f"{sys.argv[2]}/{n:02d}-{kind}.yaml", "w").write(document)
PY
objects=$(ls "$WORK/plain" | wc -l)

# --- 2. the same objects ------------------------------------------------------------------
tools=(--kustomize-bin "$KUSTOMIZE_BIN" --helm-bin "$HELM_BIN")
(cd "$WORK/kustomize-shop" && "$TUGBOAT" render overlays/prod "${tools[@]}" --var SERVICE_TAG=bench) | grep -v '^# source:' >"$WORK/overlay.out"
(cd "$WORK" && "$TUGBOAT" render plain "${tools[@]}" --var SERVICE_TAG=bench) | grep -v '^# source:' >"$WORK/plain.out"
cmp -s "$WORK/overlay.out" "$WORK/plain.out" || { diff "$WORK/overlay.out" "$WORK/plain.out" >&2 || true; die "the overlay and the plain directory render differently"; }
chart_objects=$(cd "$WORK/helm-shop" && "$TUGBOAT" render chart --helm-values values-prod.yaml "${tools[@]}" | grep -c '^kind: ')

# --- 3. the timed runs --------------------------------------------------------------------
python3 - "$N" "$objects" "$chart_objects" "$(getconf _NPROCESSORS_ONLN)" <<PY
import os, statistics, subprocess, sys, time
rounds, objects, chart_objects, cpus = (int(a) for a in sys.argv[1:5])
work, tugboat, kustomize, helm = "$WORK", "$TUGBOAT", "$KUSTOMIZE_BIN", "$HELM_BIN"
tools = ["--kustomize-bin", kustomize, "--helm-bin", helm]
cases = [  # (key, what, command as shown, argv, directory)
    ("kustomize", f"prod overlay ({objects} objects), the tool alone", "kustomize build overlays/prod",
     [kustomize, "build", "overlays/prod"], "kustomize-shop"),
    ("tugboat_kustomize", "prod overlay, tugboat render", "tugboat render overlays/prod",
     [tugboat, "render", "overlays/prod", *tools, "--var", "SERVICE_TAG=bench"], "kustomize-shop"),
    ("helm", f"shop chart + values-prod.yaml ({chart_objects} objects), the tool alone",
     "helm template release chart … --values chart/values-prod.yaml",
     [helm, "template", "release", "chart", "--namespace", "default", "--skip-tests", "--include-crds",
      "--values", "chart/values-prod.yaml"], "helm-shop"),
    ("tugboat_helm", "shop chart, tugboat render", "tugboat render chart --helm-values values-prod.yaml",
     [tugboat, "render", "chart", "--helm-values", "values-prod.yaml", *tools, "--var", "SERVICE_TAG=bench"], "helm-shop"),
    ("plain", f"the prod overlay's output as {objects} plain files, tugboat render", "tugboat render plain",
     [tugboat, "render", "plain", *tools, "--var", "SERVICE_TAG=bench"], "."),
]
wall = {key: [] for key, *_ in cases}
cpu = {key: [] for key, *_ in cases}

def once(argv, directory):
    with open(os.devnull, "wb") as out, open(f"{work}/stderr", "wb") as err:
        started = time.perf_counter_ns()
        child = subprocess.Popen(argv, cwd=f"{work}/{directory}", stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter_ns() - started
    child.returncode = 0  # reaped by wait4
    if status != 0:
        sys.exit(f"error: {' '.join(argv)} failed: {open(f'{work}/stderr').read()}")
    return elapsed / 1e6, (usage.ru_utime + usage.ru_stime) * 1000

for _, _, _, argv, directory in cases:  # warm-up: page cache, the binaries' first start
    once(argv, directory)
for r in range(rounds):
    for i in range(len(cases)):
        key, _, _, argv, directory = cases[(r + i) % len(cases)]
        w, c = once(argv, directory)
        wall[key].append(w)
        cpu[key].append(c)

def p90(values):
    return sorted(values)[max(0, -(-len(values) * 9 // 10) - 1)]
med = {key: statistics.median(wall[key]) for key in wall}
print(f"\nBuild time: tugboat render against the tool alone, {rounds} rounds (order rotating), {cpus} cores\n")
print("| what | command | median ms | p90 ms | min ms | CPU ms (median) |")
print("|---|---|---:|---:|---:|---:|")
for key, what, shown, _, _ in cases:
    print(f"| {what} | \`{shown}\` | {med[key]:.1f} | {p90(wall[key]):.1f} | {min(wall[key]):.1f} | {statistics.median(cpu[key]):.1f} |")
print()
def ratio(a, b):
    return f"{med[a] / med[b]:.2f}× ({med[a] - med[b]:+.1f} ms)"
print(f"tugboat render / kustomize build, prod overlay: {ratio('tugboat_kustomize', 'kustomize')}")
print(f"tugboat render / helm template, shop chart: {ratio('tugboat_helm', 'helm')}")
print(f"tugboat render, prod overlay / the same objects as plain YAML: {ratio('tugboat_kustomize', 'plain')}")
print("SUMMARY n=%d " % rounds + " ".join(f"{key}_ms={med[key]:.1f}" for key in med)
      + f" kustomize_overhead_ms={med['tugboat_kustomize'] - med['kustomize']:.1f}"
      + f" helm_overhead_ms={med['tugboat_helm'] - med['helm']:.1f}"
      + f" kustomize_ratio={med['tugboat_kustomize'] / med['kustomize']:.2f}"
      + f" helm_ratio={med['tugboat_helm'] / med['helm']:.2f}"
      + f" kustomize_plain_ratio={med['tugboat_kustomize'] / med['plain']:.2f}")
PY
