"""The one root of every error fairsynth reports to a person: API, CLI and UI each catch FairsynthError once.

Each layer defines its own subclasses next to the code that raises them; all derive from FairsynthError,
so a message is always meant for the user (one sentence saying what is wrong and what to do).
"""

from __future__ import annotations


class FairsynthError(Exception):
    """Something the user can fix; str(error) says what is wrong and what to do."""
