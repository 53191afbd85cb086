#!/usr/bin/env bash
# Build the isolated MOSTLY AI venv (.venv-mostly: mostlyai-engine + mostlyai-qa) at the repository root.
#
# The venv lands in the CURRENT DIRECTORY, which must be the repository root (the Makefile calls it
# from there); the frozen pins are read next to this script (scripts/../requirements). Set
# FAIRSYNTH_MOSTLY_VENV to put the venv elsewhere. Idempotent like install-ydata.sh: a stamp records
# the pins it was built from; the venv is rebuilt from scratch only when its Python no longer starts.
# FAIRSYNTH_SKIP_MOSTLY=1 skips the whole step (the mostly.* backends and the mostlyai-qa evaluator
# then report as unavailable, with this command as the fix).
#
# mostlyai-engine 2.7.3 declares torchvision and torchaudio, whose builds do not match torch 2.13 and
# break `import mostlyai.engine` ("operator torchvision::nms does not exist"); the engine never uses
# them for tables. So the frozen list (every other package, torch as its CPU wheel) is installed with
# --no-deps, and pip check is allowed exactly those two complaints.
set -euo pipefail

if [[ "${FAIRSYNTH_SKIP_MOSTLY:-}" == "1" ]]; then
    echo "install-mostly: skipped (FAIRSYNTH_SKIP_MOSTLY=1); mostly.* backends will be unavailable"
    exit 0
fi

if [[ ! -f pyproject.toml ]]; then
    echo "install-mostly: run this from the repository root (where pyproject.toml is)" >&2
    exit 1
fi
SCRIPT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FAIRSYNTH_MOSTLY_VENV:-$PWD/.venv-mostly}"
REQUIREMENTS="$SCRIPT_ROOT/requirements/mostly-requirements.txt"
PYTHON="${FAIRSYNTH_MOSTLY_PYTHON:-python3}"
STAMP="$VENV/.installed-stamp"
WANT="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
MODULES=(mostlyai.engine mostlyai.qa torch pyarrow pandas)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
    && "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))" \
        "${MODULES[@]}" 2>/dev/null; then
    echo "install-mostly: $VENV is up to date"
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] < (3, 14) else 1)'; then
    echo "install-mostly: mostlyai-engine 2.7 needs Python 3.10-3.13; set FAIRSYNTH_MOSTLY_PYTHON to one" >&2
    exit 1
fi

if ! "$VENV/bin/python" -c "import sys" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
# PIP_ARGS carries extra pip options (an image build may pass --no-index with a local wheelhouse)
"$VENV/bin/pip" install -q ${PIP_ARGS:-} --no-deps -r "$REQUIREMENTS" 2>&1 | sed -u '/is ignored: it is neither/d'
# a venv built before this script (plain pip install) may still hold the two that break the import
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio 2>&1 | sed -u '/is ignored: it is neither\|not installed/d'
unexpected="$("$VENV/bin/pip" check 2>&1 | grep -v -E 'requires (torchvision|torchaudio), which is not installed|is ignored: it is neither|^No broken' || true)"
if [[ -n "$unexpected" ]]; then
    echo "install-mostly: pip check found problems:" >&2
    echo "$unexpected" >&2
    exit 1
fi
"$VENV/bin/python" -c "import mostlyai.engine, mostlyai.qa"
echo "$WANT" > "$STAMP"
echo "install-mostly: $VENV is ready"
