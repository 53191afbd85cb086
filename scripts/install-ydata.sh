#!/usr/bin/env bash
# Build the isolated ydata-synthetic venv (.venv-ydata) at the repository root.
#
# The venv lands in the CURRENT DIRECTORY, which must be the repository root (the Makefile calls
# it from there); the pinned constraints are read next to this script (scripts/../requirements).
# Set FAIRSYNTH_YDATA_VENV to put the venv elsewhere. Idempotent: a stamp file records the
# constraints it was built from; when they change pip updates the venv in place, and the venv is
# rebuilt from scratch only when its Python no longer starts.
# FAIRSYNTH_SKIP_YDATA=1 skips the whole step (the ydata.* backends then report as unavailable).
set -euo pipefail

if [[ "${FAIRSYNTH_SKIP_YDATA:-}" == "1" ]]; then
    echo "install-ydata: skipped (FAIRSYNTH_SKIP_YDATA=1); ydata.* backends will be unavailable"
    exit 0
fi

if [[ ! -f pyproject.toml ]]; then
    echo "install-ydata: run this from the repository root (where pyproject.toml is)" >&2
    exit 1
fi
SCRIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FAIRSYNTH_YDATA_VENV:-$PWD/.venv-ydata}"
CONSTRAINTS="$SCRIPT_ROOT/requirements/ydata-constraints.txt"
PYTHON="${FAIRSYNTH_YDATA_PYTHON:-python3}"
STAMP="$VENV/.installed-stamp"
WANT="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
    && "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))" \
        ydata_synthetic tensorflow pyarrow pandas 2>/dev/null; then
    echo "install-ydata: $VENV is up to date"
    exit 0
fi

# TensorFlow 2.15 (ydata-synthetic 1.4's dependency) has no wheels for Python 3.12+.
if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] < (3, 12) else 1)'; then
    echo "install-ydata: ydata-synthetic 1.4 needs Python 3.9-3.11; set FAIRSYNTH_YDATA_PYTHON to one" >&2
    exit 1
fi

# a venv whose Python no longer starts (moved, or its base interpreter gone) is rebuilt from scratch;
# otherwise pip brings the existing one to the pins (a no-op when nothing changed)
if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
# PIP_ARGS carries extra pip options (the image build passes --no-index with a local wheelhouse)
"$VENV/bin/pip" install -q ${PIP_ARGS:-} -c "$CONSTRAINTS" ydata-synthetic==1.4.0 "pyarrow<26" 2>&1 \
    | sed -u '/is ignored: it is neither/d'
"$VENV/bin/pip" check
echo "$WANT" > "$STAMP"
echo "install-ydata: $VENV is ready"
