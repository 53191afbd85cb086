"""The tests' own polling helper: it returns what it waited for, and fails with the message, late or at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from helpers import alive, free_port, listens, wait_for


def test_wait_for_returns_the_first_truthy_value():
    calls = iter([None, 0, "ready"])
    assert wait_for(lambda: next(calls), 5, interval=0.01) == "ready"


def test_wait_for_fails_with_the_message_after_the_timeout():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^the log said: nothing \(after 0.2 s\)$"):
        wait_for(lambda: False, 0.2, interval=0.05, message=lambda: "the log said: nothing")
    assert 0.2 <= time.monotonic() - started < 2


def test_wait_for_fails_at_once_when_the_process_has_exited():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"server down \(its process exited with 3\)"):
        wait_for(lambda: False, 60, message="server down", process=process)
    assert time.monotonic() - started < 1
    assert not alive(process.pid)


def test_a_free_port_has_no_listener():
    assert not listens(free_port())
