#!/usr/bin/env bash
# Installs keras-alexnet into a virtual environment in this folder (.venv) and, where apt is
# available, Debian's Fashion-MNIST package (the built-in default dataset). Safe to rerun.
#   ./setup.sh          runtime dependencies (requirements.txt)
#   ./setup.sh --test   runtime and test dependencies (requirements-test.txt)
set -euo pipefail
cd "$(dirname "$0")"

requirements=requirements.txt
[ "${1:-}" = "--test" ] && requirements=requirements-test.txt

python=${PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
[ -n "$python" ] || { echo "setup.sh: error: no python3.11 or python3 on PATH" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' \
  || { echo "setup.sh: error: $python is older than Python 3.10 (3.11 is the tested version)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.installed-$(cat "$requirements" requirements.txt | cksum | cut -d' ' -f1)
if [ ! -f "$stamp" ]; then
  echo "setup.sh: installing $requirements into .venv (first run downloads TensorFlow, ~600 MB)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" 2>&1 \
    | grep -v "^WARNING: Location .* is ignored" || true
  if ! check=$(.venv/bin/python -c 'import tensorflow, keras, tensorflow_datasets, absl, pandas' 2>&1); then
    echo "$check" >&2
    echo "setup.sh: error: the installed packages do not import" >&2
    exit 1
  fi
  touch "$stamp"
fi

# The default dataset: Debian's dataset-fashion-mnist (else main.py falls back to TFDS fashion_mnist).
fashion=/usr/share/datasets/fashion-mnist
if [ ! -d "$fashion" ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo="sudo -n"; }
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "setup.sh: installing Debian's dataset-fashion-mnist (the default dataset)"
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1 \
      || echo "setup.sh: warning: could not install dataset-fashion-mnist; main.py will try TFDS instead" >&2
  fi
fi
echo "setup.sh: ready (.venv/bin/python)"
