"""The command line starts without loading the model and evaluation libraries it does not need yet."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "sdmetrics", "sklearn", "sdv", "scipy", "sqlalchemy", "streamlit")


def test_importing_the_command_line_loads_no_heavy_library():
    probe = f"import sys, fairsynth.services.entry.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == ""


def test_an_evaluation_name_still_loads_on_first_use():
    probe = (
        "import sys, fairsynth.services.run.evaluation as e; assert 'sdmetrics' not in sys.modules; "
        "e.evaluate; print('sdmetrics' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == "True"
