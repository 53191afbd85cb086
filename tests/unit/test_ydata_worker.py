"""The ydata worker's own safety net: it cleans up after a vanished runner, never after a finished job.

worker.py imports only the standard library at module level, so these run in the main env.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import fairsynth.backends.ydata as ydata

WORKER = Path(ydata.__file__).with_name("worker.py")
# a worker that sends its result and then takes a while to exit, as TensorFlow's teardown does
SLOW_TEARDOWN = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker)
worker.exit_when_parent_goes()
open("ydata-model.pkl", "w").write("model")
worker.emit({"type": sys.argv[2], "rows": 1})
time.sleep(3)
"""


def run_until_first_line(message_type: str) -> tuple[Path, subprocess.Popen, dict]:
    job_dir = Path(tempfile.mkdtemp(prefix="fairsynth-worker-"))
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_TEARDOWN, str(WORKER), message_type],
        cwd=job_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return job_dir, process, json.loads(process.stdout.readline())


def test_closing_stdin_after_the_result_keeps_the_outputs_for_the_runner():
    job_dir, process, message = run_until_first_line("result")
    try:
        assert message["type"] == "result"
        process.stdin.close()  # what the runner does when it stops the worker after its result
        assert process.wait(timeout=20) == 3
        assert (job_dir / "ydata-model.pkl").read_text() == "model"
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        subprocess.run(["rm", "-rf", str(job_dir)], check=True)


def test_a_runner_that_vanishes_mid_job_leaves_no_job_directory():
    job_dir, process, message = run_until_first_line("progress")
    try:
        process.stdin.close()  # the runner died before any result
        assert process.wait(timeout=20) == 3
        assert not job_dir.exists()
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        subprocess.run(["rm", "-rf", str(job_dir)], check=True)
