"""Every path a crate names stays inside the crate: the one check before anything opens a crate-named file.

A name is refused when it is absolute, has a '..' part, carries a URI scheme or drive letter (file:///etc/passwd,
C:/x), holds a NUL byte, or resolves through a symbolic link to somewhere outside the crate folder; its
percent-decoded form (RO-Crate @ids are URI paths) is held to the same rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from fairsynth.metadata.model import CrateError

SCHEME_OR_DRIVE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def crate_paths(root: Path | str, names: Iterable[str]) -> dict[str, Path]:
    """Each crate-relative name as a path under root; one CrateError naming every name that would leave it."""
    base = Path(root).resolve()
    inside, outside = {}, []
    for name in names:
        if _stays_inside(base, name):
            inside[name] = base / name
        else:
            outside.append(name)
    if outside:
        quoted = ", ".join(f"'{name}'" for name in sorted(set(outside)))
        verb = "points" if len(set(outside)) == 1 else "point"
        raise CrateError(
            f"{quoted} {verb} outside the crate (an absolute path, '..', a URI or a link leaving it), "
            "so the crate is refused and nothing outside it is read."
        )
    return inside


def crate_path(root: Path | str, name: str) -> Path:
    """One crate-relative name as a path under root, or a CrateError when it would leave the crate."""
    return crate_paths(root, [name])[name]


def outside_links(root: Path | str) -> list[str]:
    """Every symbolic link under root that resolves outside it, crate-relative."""
    base = Path(root).resolve()
    links = []
    for folder, dirs, files in os.walk(base):  # never follows a link into another folder
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                links.append(path.relative_to(base).as_posix())
    return sorted(links)


def _stays_inside(base: Path, name: str) -> bool:
    for form in {name, unquote(name)}:
        text = form.replace("\\", "/")
        pure = PurePosixPath(text)
        if "\0" in text or pure.is_absolute() or ".." in pure.parts or SCHEME_OR_DRIVE.match(text):
            return False
        if not (base / pure).resolve().is_relative_to(base):
            return False
    return True
