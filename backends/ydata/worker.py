"""ydata-synthetic 1.4 worker: runs INSIDE the isolated ydata venv, never in fairsynth's own env.

Standalone on purpose: it imports only the standard library, pandas, pyarrow, numpy and
ydata-synthetic, because fairsynth is not installed in that venv. The protocol (see
backends/isolated.py): `python worker.py request.json` in the job directory; JSON lines on stdout
(progress, then one result or error); Parquet in and out; the fitted ydata model is a joblib pickle
that only this worker ever writes or reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

# before TensorFlow is imported: silence its C++ logs; and stop ydata's analytics call (it runs
# nvidia-smi and sends a request with no timeout on every synthesizer construction)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("YDATA_SYNTHETIC_NO_ANALYTICS", "1")

PROTOCOL = sys.stdout  # protocol messages only; library prints are sent to stderr
GAN_MODELS = {"ctgan", "wgangp", "dragan", "cramer"}
MODELS = GAN_MODELS | {"fast"}
EPOCH_LINE = re.compile(r"Epoch:\s*(\d+)")
GEN_LOSS = re.compile(r"gen\w*_loss:\s*(?:tf\.Tensor\()?\s*(-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")


class RequestError(Exception):
    """The request itself is wrong (a bug in the caller)."""


# set once the final message is sent: from then on the job directory and its outputs belong to the runner
FINISHED = threading.Event()


def emit(message: dict) -> None:
    """One protocol line on the real stdout."""
    if message.get("type") in ("result", "error"):
        FINISHED.set()
    PROTOCOL.write(json.dumps(message, default=float) + "\n")
    PROTOCOL.flush()


def progress(stage: str, step: int, total: int | None, *, loss: float | None = None, message: str = "") -> None:
    """A progress line."""
    emit({"type": "progress", "stage": stage, "step": step, "total": total, "loss": loss, "message": message})


class EpochReporter:
    """Stands in for stdout while ydata trains: turns its 'Epoch: N | ... gen_loss: X' prints into progress."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.losses: list[float] = []
        self.start = time.perf_counter()
        self._pending = ""

    def write(self, text: str) -> int:
        """Forward to stderr, and report every complete epoch line."""
        sys.stderr.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._report(line)
        return len(text)

    def flush(self) -> None:
        """Flush stderr."""
        sys.stderr.flush()

    def _report(self, line: str) -> None:
        epoch = EPOCH_LINE.search(line)
        if not epoch:
            return
        found = GEN_LOSS.search(line)
        loss = float(found.group(1)) if found else None
        if loss is not None:
            self.losses.append(loss)
        progress(
            "fit", int(epoch.group(1)) + 1, self.total, loss=loss, message=f"{time.perf_counter() - self.start:.1f} s"
        )


# -- the model ---------------------------------------------------------------------------------------
def set_seed(seed: int) -> None:
    """Make TensorFlow, numpy and Python draws repeatable."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(int(seed))


def build_model(request: dict):
    """The ydata synthesizer named in the request, with betas/pac/n_critic set so it trains."""
    from ydata_synthetic.synthesizers import ModelParameters
    from ydata_synthetic.synthesizers.regular import RegularSynthesizer

    name = request["model"]
    if name not in MODELS:
        raise RequestError(f"unknown ydata model '{name}'")
    params = dict(request.get("model_params") or {})
    if name == "fast":
        return RegularSynthesizer(modelname="fast", random_state=int(request["seed"]) % (2**32 - 1))
    if "betas" in params:
        params["betas"] = tuple(params["betas"])
    return RegularSynthesizer(
        modelname=name, model_parameters=ModelParameters(**params), **dict(request.get("init_args") or {})
    )


def random_batches(model) -> None:
    """wgangp and cramer draw the same fixed batch every step (seed=0); draw a random one instead."""
    import numpy as np

    def draw(data, batch_size, *_, **__):
        return data[np.random.randint(0, len(data), size=batch_size)]

    model.get_data_batch = draw


def fit(request: dict) -> dict:
    """Fit the model on the request's Parquet table and pickle it into the job dir."""
    import pandas as pd

    data = pd.read_parquet(request["data"])
    num_cols, cat_cols = list(request["num_cols"]), list(request["cat_cols"])
    check_columns(data, num_cols, cat_cols)
    seed = int(request["seed"])
    set_seed(seed)
    max_rows = request.get("max_rows")
    if max_rows and len(data) > max_rows:
        data = data.sample(n=int(max_rows), random_state=seed).reset_index(drop=True)
    model = build_model(request)
    name = request["model"]
    epochs = (request.get("train_params") or {}).get("epochs")
    start = time.perf_counter()
    progress("fit", 0, epochs, message=f"training ydata {name} on {len(data)} rows")
    reporter = EpochReporter(epochs)
    with redirect_stdout(reporter):
        if name == "fast":
            model.fit(data, num_cols=num_cols, cat_cols=cat_cols)
        else:
            from ydata_synthetic.synthesizers import TrainParameters

            if name in ("wgangp", "cramer"):
                random_batches(model)
            train = TrainParameters(**{"sample_interval": 10**9, **(request.get("train_params") or {})})
            model.fit(data, train_arguments=train, num_cols=num_cols, cat_cols=cat_cols)
        if hasattr(model, "get_data_batch") and "get_data_batch" in vars(model):
            del model.get_data_batch  # the replacement is a closure: not picklable, not needed to sample
        model.save(request["model_file"])
    return {
        "seconds": time.perf_counter() - start,
        "epochs": epochs,
        "losses": reporter.losses,
        "rows": len(data),
        "packages": package_versions(),
    }


def package_versions() -> dict:
    """The versions that identify the model code in this venv."""
    return {name: _version(name) for name in ("ydata-synthetic", "tensorflow", "numpy", "pandas")}


def check_columns(data, num_cols: list[str], cat_cols: list[str]) -> None:
    """Every column listed once, no NaN in numeric columns (ydata 1.4 handles neither)."""
    listed = set(num_cols) | set(cat_cols)
    if listed != set(data.columns) or len(listed) != len(num_cols) + len(cat_cols):
        raise RequestError("num_cols and cat_cols must list every column of the data exactly once")
    holes = [c for c in num_cols if data[c].isna().any()]
    if holes:
        raise RequestError(f"numeric columns hold missing values ({', '.join(holes)}); encode them first")


def load_model(path: str):
    """Read the pickle this worker wrote at fit time."""
    from ydata_synthetic.synthesizers.regular import RegularSynthesizer

    if not os.path.isfile(path):
        raise RequestError(f"model file {path} is missing")
    with redirect_stdout(sys.stderr):
        return RegularSynthesizer.load(path)


def sample(request: dict) -> dict:
    """Sample each requested batch (rows, seed) into its own Parquet file."""
    model = load_model(request["model_file"])
    batches = request["batches"]
    written = []
    for index, batch in enumerate(batches, start=1):
        rows, seed = int(batch["rows"]), int(batch["seed"])
        table = draw_rows(model, rows, seed)
        table.to_parquet(batch["out"], index=False)
        written.append(batch["out"])
        progress("sample", index, len(batches), message=f"{rows} rows")
    return {"files": written}


def draw_rows(model, rows: int, seed: int):
    """Exactly `rows` rows, repeatable for a seed (ydata's GANs over-generate to whole batches)."""
    import pandas as pd

    set_seed(seed)
    if hasattr(model, "__MODEL__") and hasattr(model.__MODEL__, "random_state"):
        model.__MODEL__.random_state = seed  # fast (Gaussian mixture) samples from its own RNG
    with redirect_stdout(sys.stderr):
        table = model.sample(max(rows, 1))  # ydata refuses 0; keep the columns
    return pd.DataFrame(table).iloc[:rows].reset_index(drop=True)


def versions(_: dict) -> dict:
    """Versions of the packages in this venv (a cheap health check that imports everything)."""
    import numpy
    import pandas
    import pyarrow
    import tensorflow
    import ydata_synthetic
    from ydata_synthetic.synthesizers.regular import RegularSynthesizer  # noqa: F401 (import check)

    return {
        "python": sys.version.split()[0],
        "ydata-synthetic": _version("ydata-synthetic"),
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "package": getattr(ydata_synthetic, "__name__", ""),
    }


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


ACTIONS = {"fit": fit, "sample": sample, "versions": versions}


# -- plumbing -----------------------------------------------------------------------------------------
class redirect_stdout:
    """Send library prints elsewhere so stdout carries protocol lines only."""

    def __init__(self, target) -> None:
        self.target = target

    def __enter__(self):
        self.saved = sys.stdout
        sys.stdout = self.target
        return self.target

    def __exit__(self, *exc) -> None:
        sys.stdout = self.saved


def exit_when_parent_goes() -> None:
    """The runner holds our stdin open; EOF means it died or gave up, so stop at once (no orphan).

    A runner killed outright cannot remove its job directory, so the worker removes it (only a
    directory the runner named fairsynth-worker-*) — unless the final message was sent: then the
    runner is collecting the outputs and closes stdin only to stop a worker slow to exit.
    """

    def watch() -> None:
        try:
            while sys.stdin.read(65536):
                pass
        finally:
            job_dir = os.getcwd()
            if not FINISHED.is_set() and os.path.basename(job_dir).startswith("fairsynth-worker-"):
                shutil.rmtree(job_dir, ignore_errors=True)
            os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str]) -> int:
    """Run the request named on the command line; every failure becomes one error line."""
    if os.environ.get("FAIRSYNTH_WORKER_WATCH_STDIN") == "1":
        exit_when_parent_goes()
    keep_temporary_files_in_the_job_directory()
    try:
        with open(argv[1]) as handle:
            request = json.load(handle)
        action = ACTIONS.get(request.get("action"))
        if action is None:
            raise RequestError(f"unknown action '{request.get('action')}'; expected one of {sorted(ACTIONS)}")
        result = action(request)
    except RequestError as exc:
        emit({"type": "error", "error": "bad_request", "message": f"The worker refused the request: {exc}."})
        return 2
    except MemoryError:
        emit(
            {
                "type": "error",
                "error": "out_of_memory",
                "message": "The ydata worker ran out of memory; use fewer rows or a smaller batch size.",
            }
        )
        return 1
    except Exception as exc:  # any library failure is reported as one sentence plus the detail
        emit(
            {
                "type": "error",
                "error": type(exc).__name__,
                "message": f"ydata-synthetic failed: {_one_line(exc)}.",
                "detail": traceback.format_exc(limit=8),
            }
        )
        return 1
    emit({"type": "result", **result})
    return 0


def keep_temporary_files_in_the_job_directory() -> None:
    """Point the temp dir into the job directory, which the runner deletes after every job.

    TensorFlow's autograph writes generated modules to the temp dir and never removes them.
    """
    scratch = os.path.join(os.getcwd(), ".tmp")
    os.makedirs(scratch, exist_ok=True)
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300].rstrip(".")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
