"""A built crate as one zip file (with its folders as entries, as RO-Crate validators expect), and a crate zip
unpacked safely: within the caller's limits on size, entry count and compression ratio, with no link and no entry
escaping the target folder."""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Protocol

from fairsynth.metadata.containment import crate_paths
from fairsynth.metadata.model import METADATA_NAME, CrateError

MIB = 1024 * 1024


class UnpackLimits(Protocol):
    """How much a crate zip may unpack to; the services' Settings carries these (FAIRSYNTH_CRATE_MAX_*)."""

    @property
    def crate_max_unpacked_bytes(self) -> int:
        """Largest total of the entries' uncompressed sizes."""

    @property
    def crate_max_entries(self) -> int:
        """Most entries (files and folders) a crate zip may hold."""

    @property
    def crate_max_ratio(self) -> float:
        """Largest uncompressed-to-compressed size ratio of any one entry."""


def zip_crate(directory: Path | str, zip_path: Path | str) -> Path:
    """Zip a built crate: ro-crate-metadata.json at the zip's root and an entry for every folder (e.g. 'model/')."""
    root, target = Path(directory), Path(zip_path)
    if not (root / METADATA_NAME).is_file():
        raise CrateError(f"{root} is not a crate: it has no {METADATA_NAME}; build the crate first.")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_dir()):
            archive.write(path, path.relative_to(root).as_posix())  # a folder is written as 'name/'
    return target


def read_crate_zip(zip_path: Path | str, dest: Path | str, limits: UnpackLimits) -> Path:
    """Unpack a crate zip into dest after checking its limits, links and that no entry escapes dest; returns dest."""
    target = Path(dest).resolve()
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, FileNotFoundError) as error:
        raise CrateError(
            f"{zip_path} is not a readable zip file ({error}); pass a crate zip written by fairsynth."
        ) from None
    with archive:
        infos = archive.infolist()
        _check_limits(zip_path, infos, limits)
        _check_entries(zip_path, infos)
        crate_paths(target, [info.filename for info in infos])
        if METADATA_NAME not in archive.namelist():
            raise CrateError(f"{zip_path} has no {METADATA_NAME} at its root, so it is not an RO-Crate zip.")
        try:
            _extract(archive, infos, target)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise CrateError(f"{zip_path} is damaged ({error}); pass a crate zip written by fairsynth.") from None
    return target


def _extract(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for info in infos:
        destination = target / info.filename
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        # zipfile stops each entry at its declared size and checks its CRC, so the checked sizes bound the writes
        with archive.open(info) as source, open(destination, "wb") as out:
            shutil.copyfileobj(source, out)


def _check_limits(zip_path: Path | str, infos: list[zipfile.ZipInfo], limits: UnpackLimits) -> None:
    problems = []
    if len(infos) > limits.crate_max_entries:
        problems.append(f"it holds {len(infos):,} entries, more than the {limits.crate_max_entries:,} allowed")
    total = sum(info.file_size for info in infos)
    if total > limits.crate_max_unpacked_bytes:
        problems.append(
            f"it would unpack to {total / MIB:,.1f} MiB, more than the "
            f"{limits.crate_max_unpacked_bytes / MIB:,.1f} MiB allowed"
        )
    worst = max(infos, key=_ratio, default=None)
    if worst is not None and _ratio(worst) > limits.crate_max_ratio:
        problems.append(
            f"its entry '{worst.filename}' expands {_ratio(worst):,.0f} times, more than the "
            f"{limits.crate_max_ratio:g} times allowed (a zip bomb)"
        )
    if problems:
        raise CrateError(
            f"{zip_path} is not unpacked: {'; '.join(problems)}; raise the crate limits if the zip is genuine."
        )


def _ratio(info: zipfile.ZipInfo) -> float:
    return info.file_size / max(info.compress_size, 1)


def _check_entries(zip_path: Path | str, infos: list[zipfile.ZipInfo]) -> None:
    links = [info.filename for info in infos if stat.S_ISLNK(info.external_attr >> 16)]
    if links:
        raise CrateError(
            f"{zip_path} holds symbolic links ({', '.join(links)}); a crate zip holds only files and folders, "
            "so it is refused."
        )
    names = Counter(info.filename.rstrip("/") for info in infos)
    folders = {str(parent) for name in names for parent in PurePosixPath(name).parents if str(parent) != "."}
    files = {info.filename for info in infos if not info.is_dir()}
    clashes = sorted({name for name, count in names.items() if count > 1} | (files & folders))
    if clashes:
        raise CrateError(
            f"{zip_path} lists {', '.join(clashes)} twice or as both a file and a folder; "
            "rebuild the crate zip with fairsynth."
        )
