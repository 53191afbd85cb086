"""MOSTLY AI worker: runs INSIDE the isolated MOSTLY AI venv (.venv-mostly), never in fairsynth's own env.

Standalone on purpose: it imports only the standard library, pandas and the mostlyai packages,
because fairsynth is not installed in that venv. The protocol is backends/isolated.py's:
`python worker.py request.json` in the job directory; JSON lines on stdout (progress, then one
result or error); Parquet in and out. Three actions:

- fit: the engine's split -> analyze -> encode -> train on train.parquet; the model stays the
  engine's own files (MODEL_FILES: weights loaded with torch's weights_only, JSON configs and stats);
- sample: the engine's generate, once per requested (rows, seed) batch, each into its own Parquet;
- qa: mostlyai-qa's report on train / holdout / synthetic Parquet files, its metrics returned as JSON.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

# nothing may be fetched at run time: the engine's tabular models and qa's embedder ship in the packages
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PROTOCOL = sys.stdout  # protocol messages only; library prints are sent to stderr
WORKSPACE = "engine-ws"
# what generate needs of a fitted workspace (the optimiser and scheduler states only resume training)
MODEL_FILES = (
    "ModelStore/model-data/model-weights.pt",
    "ModelStore/model-data/model-configs.json",
    "ModelStore/tgt-stats/stats.json",
)
ENCODING_TYPES = {"numeric": "TABULAR_NUMERIC_AUTO", "categorical": "TABULAR_CATEGORICAL"}
FINISHED = threading.Event()  # set once the final message is sent: the job directory then belongs to the runner


class RequestError(Exception):
    """The request itself is wrong (a bug in the caller)."""


def emit(message: dict) -> None:
    """One protocol line on the real stdout."""
    if message.get("type") in ("result", "error"):
        FINISHED.set()
    PROTOCOL.write(json.dumps(message, default=float) + "\n")
    PROTOCOL.flush()


def progress(stage: str, step: int, total: int | None, *, loss: float | None = None, message: str = "") -> None:
    """A progress line."""
    emit({"type": "progress", "stage": stage, "step": step, "total": total, "loss": loss, "message": message})


class TrainingReporter:
    """The engine's update_progress callback: each epoch message becomes a progress line; losses and ε are kept."""

    def __init__(self, max_epochs: float | None) -> None:
        self.max_epochs = max_epochs
        self.losses: list[float] = []
        self.epochs = 0.0
        self.epsilon: float | None = None
        self.delta: float | None = None

    def __call__(self, total=None, completed=None, advance=None, message=None, **_) -> None:
        """Called by the engine's training loop."""
        if not isinstance(message, dict) or message.get("epoch") is None:
            return
        self.epochs = float(message["epoch"])
        loss = _number(message.get("val_loss")) or _number(message.get("trn_loss"))
        if loss is not None:
            self.losses.append(loss)
        self.epsilon = _number(message.get("dp_eps")) if message.get("dp_eps") is not None else self.epsilon
        self.delta = _number(message.get("dp_delta")) if message.get("dp_delta") is not None else self.delta
        total_epochs = int(self.max_epochs) if self.max_epochs else None
        elapsed = float(message.get("total_time") or 0.0)
        progress("fit", int(self.epochs), total_epochs, loss=loss, message=f"epoch {self.epochs:g}, {elapsed:.1f} s")


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


# -- actions -----------------------------------------------------------------------------------------
def fit(request: dict) -> dict:
    """Train TabularARGN on the request's Parquet table; the model files stay in the job directory."""
    import pandas as pd
    from mostlyai.engine import analyze, encode, set_random_state, split, train
    from mostlyai.engine.domain import DifferentialPrivacyConfig

    data = pd.read_parquet(request["data"])
    kinds = dict(request["kinds"])
    check_columns(data, kinds)
    set_random_state(int(request["seed"]))
    engine = dict(request.get("engine") or {})
    privacy = (
        DifferentialPrivacyConfig(**request["differential_privacy"]) if request.get("differential_privacy") else None
    )
    start = time.perf_counter()
    progress("fit", 0, None, message=f"analysing {len(data)} rows")
    with redirect_stdout(sys.stderr):
        split(
            tgt_data=data,
            tgt_encoding_types={name: ENCODING_TYPES[kind] for name, kind in kinds.items()},
            model_type="TABULAR",
            workspace_dir=WORKSPACE,
        )
        analyze(
            value_protection=bool(engine.get("value_protection", True)),
            differential_privacy=privacy,
            workspace_dir=WORKSPACE,
        )
        encode(workspace_dir=WORKSPACE)
        reporter = TrainingReporter(engine.get("max_epochs"))
        train(
            model=engine.get("model"),
            max_training_time=engine.get("max_training_time"),
            max_epochs=engine.get("max_epochs"),
            batch_size=engine.get("batch_size"),
            differential_privacy=privacy,
            device="cpu" if engine.get("device") == "cpu" else None,
            workspace_dir=WORKSPACE,
            update_progress=reporter,
        )
    for name in MODEL_FILES:
        os.makedirs(os.path.dirname(name), exist_ok=True)
        shutil.move(os.path.join(WORKSPACE, name), name)
    return {
        "seconds": time.perf_counter() - start,
        "epochs": reporter.epochs,
        "losses": reporter.losses,
        "epsilon": reporter.epsilon,
        "delta": reporter.delta,
        "rows": len(data),
        "packages": package_versions(),
    }


def check_columns(data, kinds: dict[str, str]) -> None:
    """Every column given a known kind, and no other."""
    if set(kinds) != set(data.columns):
        raise RequestError("kinds must name every column of the data exactly once")
    unknown = sorted(set(kinds.values()) - set(ENCODING_TYPES))
    if unknown:
        raise RequestError(f"unknown column kinds {unknown}")


def sample(request: dict) -> dict:
    """Generate each requested batch (rows, seed) into its own Parquet file."""
    import pandas as pd
    from mostlyai.engine import generate, set_random_state

    missing = [name for name in MODEL_FILES if not os.path.isfile(name)]
    if missing:
        raise RequestError(f"model files {missing} are missing")
    workspace = os.path.join(WORKSPACE, "sample")
    for name in MODEL_FILES:
        os.makedirs(os.path.dirname(os.path.join(workspace, name)), exist_ok=True)
        os.link(name, os.path.join(workspace, name))
    batches = request["batches"]
    for index, batch in enumerate(batches, start=1):
        rows, seed = int(batch["rows"]), int(batch["seed"])
        set_random_state(seed)
        with redirect_stdout(sys.stderr):
            # value protection marks rare categories: draw them from the kept ones instead of a _RARE_ token
            generate(workspace_dir=workspace, sample_size=max(rows, 1), rare_category_replacement_method="SAMPLE")
        parts = sorted(glob.glob(os.path.join(workspace, "SyntheticData", "*.parquet")))
        table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).iloc[:rows]
        table.to_parquet(batch["out"], index=False)
        shutil.rmtree(os.path.join(workspace, "SyntheticData"), ignore_errors=True)
        progress("sample", index, len(batches), message=f"{rows} rows")
    return {"files": [batch["out"] for batch in batches]}


def qa(request: dict) -> dict:
    """mostlyai-qa's accuracy and distances of the synthetic table against the training and holdout tables."""
    import pandas as pd
    from mostlyai.qa import report

    tables = {name: pd.read_parquet(request[name]) for name in ("synthetic", "train", "holdout")}
    limits = dict(request.get("max_sample_size") or {})
    with redirect_stdout(sys.stderr):
        _, metrics = report(
            syn_tgt_data=tables["synthetic"],
            trn_tgt_data=tables["train"],
            hol_tgt_data=tables["holdout"] if len(tables["holdout"]) else None,
            report_path=os.path.join(os.getcwd(), "qa-report.html"),
            max_sample_size_accuracy=limits.get("accuracy"),
            max_sample_size_embeddings=limits.get("embeddings"),
        )
    if metrics is None:
        raise RequestError("mostlyai-qa needs at least 100 synthetic, 90 training and 10 holdout rows")
    return {"metrics": metrics.model_dump(mode="json"), "packages": package_versions()}


def package_versions() -> dict:
    """The versions that identify the model and evaluator code in this venv."""
    from importlib.metadata import version

    return {name: version(name) for name in ("mostlyai-engine", "mostlyai-qa", "torch", "pandas")}


def versions(_: dict) -> dict:
    """Versions of the packages in this venv (a health check that imports the engine)."""
    import mostlyai.engine
    import mostlyai.qa

    del mostlyai  # imported only to prove the venv complete

    return {"python": sys.version.split()[0], **package_versions()}


ACTIONS = {"fit": fit, "sample": sample, "qa": qa, "versions": versions}


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

    Before the final message the job directory (only one the runner named fairsynth-worker-*) is
    removed too, as a runner killed outright cannot; after it, the runner is collecting the outputs.
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
    scratch = os.path.join(os.getcwd(), ".tmp")  # the runner removes the job directory after every job
    os.makedirs(scratch, exist_ok=True)
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
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
        message = "The MOSTLY AI worker ran out of memory; use fewer rows or a smaller batch size."
        emit({"type": "error", "error": "out_of_memory", "message": message})
        return 1
    except Exception as exc:  # any library failure is reported as one sentence plus the detail
        emit(
            {
                "type": "error",
                "error": type(exc).__name__,
                "message": f"mostlyai failed: {_one_line(exc)}.",
                "detail": traceback.format_exc(limit=8),
            }
        )
        return 1
    emit({"type": "result", **result})
    return 0


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300].rstrip(".")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
