"""The image's HEALTHCHECK: probe the health URL of what the container runs, read from its command line.

`fairsynth ui` answers on /_stcore/health, `fairsynth serve` on /health, each on the port its command line gives
(or the CLI's default); any other command (a worker, a one-off run) is healthy while it runs. Standard library
only: it runs every few seconds.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

# command -> (the CLI's default port, health path); tests/unit/test_container_healthcheck.py checks the defaults
SERVERS = {"ui": (8501, "/_stcore/health"), "serve": (8000, "/health")}


def fairsynth_arguments(proc: Path = Path("/proc")) -> list[str]:
    """The fairsynth command the container runs, from the first process (PID 1, or the one under --init) that is
    the CLI or the Streamlit server `fairsynth ui` became (it execs Streamlit, which then reads as `ui --port N`)."""
    for pid in sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit()):
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for index, word in enumerate(argv):
            rest = [a for a in argv[index + 1 :] if a]
            if Path(word).name == "fairsynth":
                return rest
            if Path(word).name == "streamlit" and rest[:1] == ["run"]:
                return ["ui", *_option(rest, "--server.port")]
    return []


def _option(arguments: list[str], name: str) -> list[str]:
    """`--port N` for the option's value in arguments (`name N` or `name=N`), or nothing."""
    for index, word in enumerate(arguments):
        if word == name and index + 1 < len(arguments):
            return ["--port", arguments[index + 1]]
        if word.startswith(name + "="):
            return ["--port", word.partition("=")[2]]
    return []


def health_url(arguments: list[str]) -> str | None:
    """The URL that answers while this fairsynth command is healthy; None for commands that serve nothing."""
    if not arguments or arguments[0] not in SERVERS:
        return None
    port, path = SERVERS[arguments[0]]
    given = _option(arguments, "--port")
    return f"http://127.0.0.1:{given[1] if given else port}{path}"


def main() -> int:
    """Exit 0 when what the container runs is healthy, 1 otherwise."""
    url = health_url(fairsynth_arguments())
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
