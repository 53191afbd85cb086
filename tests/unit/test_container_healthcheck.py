"""The image's healthcheck reads what the container runs from its command line and probes that server's URL."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

from fairsynth.services.entry import cli

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "container_healthcheck.py"
_spec = importlib.util.spec_from_file_location("container_healthcheck", SCRIPT)
healthcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(healthcheck)


def default_port(command) -> int:
    """The CLI command's --port default (a plain default or a typer.Option's)."""
    default = inspect.signature(command).parameters["port"].default
    return getattr(default, "default", default)


def test_the_default_ports_are_the_clis():
    assert healthcheck.SERVERS["ui"][0] == default_port(cli.ui)
    assert healthcheck.SERVERS["serve"][0] == default_port(cli.serve)


@pytest.mark.parametrize(
    ("arguments", "url"),
    [
        (["serve", "--host", "0.0.0.0", "--port", "8000"], "http://127.0.0.1:8000/health"),
        (["serve", "--host", "0.0.0.0"], "http://127.0.0.1:8000/health"),  # the default port, no variable needed
        (["serve", "--port=9100"], "http://127.0.0.1:9100/health"),
        (["ui", "--address", "0.0.0.0", "--port", "8501"], "http://127.0.0.1:8501/_stcore/health"),
        (["ui", "--port", "8600"], "http://127.0.0.1:8600/_stcore/health"),
        (["worker", "--queues", "ydata"], None),  # serves nothing: healthy while it runs
        ([], None),
    ],
)
def test_the_probe_follows_the_command(arguments, url):
    assert healthcheck.health_url(arguments) == url


def write_process(proc: Path, pid: int, *argv: str) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")


def test_the_command_is_read_from_the_fairsynth_process_even_behind_an_init(tmp_path):
    write_process(tmp_path, 1, "/sbin/docker-init", "--", "sh", "/opt/fairsynth-app/scripts/container-entrypoint.sh")
    write_process(tmp_path, 7, "/opt/fairsynth/bin/python3", "/opt/fairsynth/bin/fairsynth", "serve", "--port", "8100")
    write_process(tmp_path, 30, "/opt/fairsynth/bin/python3", "-m", "streamlit", "run", "app.py")
    (tmp_path / "self").mkdir()
    assert healthcheck.fairsynth_arguments(tmp_path) == ["serve", "--port", "8100"]


def test_the_ui_is_recognised_after_it_became_streamlit(tmp_path):
    app = "/opt/fairsynth-app/ui/app.py"
    write_process(tmp_path, 1, "/opt/fairsynth/bin/python3", "-m", "streamlit", "run", app, "--server.port", "8600")
    assert healthcheck.health_url(healthcheck.fairsynth_arguments(tmp_path)) == "http://127.0.0.1:8600/_stcore/health"
