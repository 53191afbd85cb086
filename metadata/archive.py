"""A built crate as one zip file, and a crate zip unpacked safely (no entry may escape the target folder)."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from fairsynth.metadata.model import METADATA_NAME, CrateError


def zip_crate(directory: Path | str, zip_path: Path | str) -> Path:
    """Zip a built crate (ro-crate-metadata.json at the zip's root)."""
    root, target = Path(directory), Path(zip_path)
    if not (root / METADATA_NAME).is_file():
        raise CrateError(f"{root} is not a crate: it has no {METADATA_NAME}; build the crate first.")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(root).as_posix())
    return target


def read_crate_zip(zip_path: Path | str, dest: Path | str) -> Path:
    """Unpack a crate zip into dest after checking no entry escapes it (zip-slip); returns dest."""
    target = Path(dest).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, FileNotFoundError) as error:
        raise CrateError(
            f"{zip_path} is not a readable zip file ({error}); pass a crate zip written by fairsynth."
        ) from None
    with archive:
        names = archive.namelist()
        for name in names:
            _check_member(name, target)
        if METADATA_NAME not in names:
            raise CrateError(f"{zip_path} has no {METADATA_NAME} at its root, so it is not an RO-Crate zip.")
        target.mkdir(parents=True, exist_ok=True)
        for info in archive.infolist():
            destination = target / info.filename
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
    return target


def _check_member(name: str, target: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    unsafe = (
        pure.is_absolute()
        or ".." in pure.parts
        or re.match(r"^[A-Za-z]:", name)
        or not (target / pure).resolve().is_relative_to(target)
    )
    if unsafe:
        raise CrateError(
            f"The zip entry '{name}' points outside the crate (absolute path or '..'); refusing to unpack this zip."
        )
