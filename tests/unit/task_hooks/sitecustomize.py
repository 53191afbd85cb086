"""Test-only hook for task processes: FAIRSYNTH_TEST_HOOK makes `marginals` hang (with a child) or crash in fit.

Tests put this directory first on PYTHONPATH; Python imports sitecustomize at start-up in every process.
FAIRSYNTH_TEST_HOOK is `hang`, `crash`, `orphan` (hang with a child in its own session, as loky's workers
escape a process group), `fail` (start such a child, then raise), or `file:PATH` (the mode is read from PATH
at each fit; no file: a normal fit), so a long-lived worker can be switched between modes.
"""

import os

HOOK = os.environ.get("FAIRSYNTH_TEST_HOOK")

if HOOK:
    import signal
    import subprocess
    import time
    from pathlib import Path

    from fairsynth.backends.marginals import MarginalsGenerator

    _original_fit = MarginalsGenerator._fit_encoded

    def _mode() -> str:
        if not HOOK.startswith("file:"):
            return HOOK
        path = Path(HOOK.removeprefix("file:"))
        return path.read_text().strip() if path.exists() else ""

    def _fit_encoded(self, encoded, *, seed, progress):
        mode = _mode()
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode in ("hang", "orphan", "fail"):
            # a grandchild: cancel must kill the whole tree; `orphan`/`fail` put it beyond the process group
            child = subprocess.Popen(["sleep", "600"], start_new_session=mode != "hang")
            Path(os.environ["FAIRSYNTH_TEST_PIDS"]).write_text(f"{os.getpid()} {child.pid}")
            if mode == "fail":
                raise RuntimeError("injected failure after starting a worker process")
            time.sleep(600)
        return _original_fit(self, encoded, seed=seed, progress=progress)

    MarginalsGenerator._fit_encoded = _fit_encoded
