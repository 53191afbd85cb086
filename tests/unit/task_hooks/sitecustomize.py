"""Test-only hook for task processes: FAIRSYNTH_TEST_HOOK makes `marginals` hang (with a child) or crash in fit.

Tests put this directory first on PYTHONPATH; Python imports sitecustomize at start-up in every process.
"""
import os

HOOK = os.environ.get("FAIRSYNTH_TEST_HOOK")

if HOOK:
    import signal
    import subprocess
    import time
    from pathlib import Path

    from backends.marginals import MarginalsGenerator

    def _fit_encoded(self, encoded, *, seed, progress):
        if HOOK == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        child = subprocess.Popen(["sleep", "600"])  # a grandchild: cancel must kill the whole tree
        Path(os.environ["FAIRSYNTH_TEST_PIDS"]).write_text(f"{os.getpid()} {child.pid}")
        time.sleep(600)

    MarginalsGenerator._fit_encoded = _fit_encoded
