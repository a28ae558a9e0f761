#!/usr/bin/env bash
# Runs python3 from a virtualenv that holds the independent checkers the tests compare tugboat
# with: PyPI's `standardwebhooks` (signatures) and the official `cloudevents` SDK. The
# virtualenv is made once per pinned set, next to the control-plane binaries.
#   testenv/python.sh SCRIPT [ARGS...]
set -euo pipefail
packages=(standardwebhooks==1.1.0 cloudevents==2.2.0)
cache="${TUGBOAT_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tugboat/testenv}"
venv="$cache/pycheckers-$(echo "${packages[*]}" | sha256sum | cut -c1-12)"
mkdir -p "$cache"
# Tests run in parallel: one of them makes the virtualenv, the others wait for it.
exec 9>"$venv.lock"
flock 9
if [[ ! -f "$venv/.complete" ]]; then
  printf '[testenv] installing the Python checkers (%s) into %s\n' "${packages[*]}" "$venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  touch "$venv/.complete"
fi
flock -u 9
exec 9>&-
exec "$venv/bin/python3" "$@"
