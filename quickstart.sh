#!/usr/bin/env bash
# Set up tlpipe on a fresh Debian-like machine, then run the main job or the tests.
#
#   ./quickstart.sh run  [tlpipe run arguments...]   # set up, then `tlpipe run`
#   ./quickstart.sh test [pytest arguments...]       # set up, then the test suite
#
# Idempotent: a second call skips what is already done (Debian packages present,
# virtual environment up to date with setup.cfg).
set -euo pipefail

cd "$(dirname "$0")"
VENV=.venv
STAMP="$VENV/.tlpipe-setup"
DATASET_DIR=/usr/share/datasets/fashion-mnist

say() { echo "[quickstart] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

debian_packages() {
  local missing=()
  [ -d "$DATASET_DIR" ] || missing+=(dataset-fashion-mnist)
  if ! PYTHON=$(find_python); then
    missing+=(python3.11 python3.11-venv)
  elif ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3.11-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

python_env() {
  local python wanted
  python=$(find_python) || { say "Python 3.11 is required and could not be found"; exit 1; }
  wanted=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ] && [ -x "$VENV/bin/tlpipe" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$python" -m venv "$VENV"; }
  say "installing tlpipe and its pinned dependencies into $VENV (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=24" "setuptools>=68,<81" wheel
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$wanted" > "$STAMP"
}

# pytest-xdist workers: one per core, at most 4 (each runs TensorFlow); none when the caller chose (-n/-p).
test_workers() {
  local arg
  for arg in "$@"; do
    case "$arg" in -n|-n*|--numprocesses*|-p|--pdb) return 0 ;; esac
  done
  local cores
  cores=$(nproc 2>/dev/null || echo 1)
  [ "$cores" -gt 4 ] && cores=4
  [ "$cores" -gt 1 ] && echo "-n $cores --dist loadgroup"
  return 0
}

main() {
  local command=${1:-}
  case "$command" in
    run|test) shift ;;
    *) echo "usage: $0 run [tlpipe run args...] | test [pytest args...]" >&2; exit 2 ;;
  esac
  debian_packages
  python_env
  if [ "$command" = run ]; then
    exec "$VENV/bin/tlpipe" run "$@"  # TensorFlow's start-up lines go to the run's kfp.log (`tlpipe -v` shows them)
  else
    TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} exec "$VENV/bin/python" -m pytest $(test_workers "$@") "$@"
  fi
}

main "$@"
