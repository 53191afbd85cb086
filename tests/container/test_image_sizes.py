"""The image's size with and without the optional extras.

Goals (issues #19, #22): the CPU image without isolated venvs under 2.5 GB, and up to 2 GB more for each isolated
venv it carries (ydata: the default image under 4.5 GB; MOSTLY AI, WITH_MOSTLY=1 without ydata: under 4.5 GB); the
suite checks the default, no-ydata and with-mostly variants. With FAIRSYNTH_RECORD_IMAGE_SIZES=1 it builds every
variant and writes benchmarks/results/image_sizes.{csv,md}; a test run never rewrites tracked files otherwise.
"""

from __future__ import annotations

import csv
import os

import pytest

from container.conftest import IMAGE, MOSTLY_VARIANT, ROOT, build_variant

pytestmark = [pytest.mark.slow, pytest.mark.integration]
RESULTS = ROOT / "benchmarks" / "results"
GB = 1000**3
ARGS = ("WITH_SDV", "WITH_YDATA", "WITH_MOSTLY")
# name -> build arguments; the first is the default build, the `image` fixture's
VARIANTS = {
    "default": {"WITH_SDV": "1", "WITH_YDATA": "1", "WITH_MOSTLY": "0"},
    "no-ydata": {"WITH_SDV": "1", "WITH_YDATA": "0", "WITH_MOSTLY": "0"},
    "no-sdv": {"WITH_SDV": "0", "WITH_YDATA": "1", "WITH_MOSTLY": "0"},
    "no-sdv-no-ydata": {"WITH_SDV": "0", "WITH_YDATA": "0", "WITH_MOSTLY": "0"},
    "with-mostly": MOSTLY_VARIANT,
}
BASE_LIMIT_GB = 2.5  # the image with no isolated venv
VENV_ALLOWANCE_GB = 2.0  # each isolated venv it carries (WITH_YDATA, WITH_MOSTLY)
RECORD = os.environ.get("FAIRSYNTH_RECORD_IMAGE_SIZES") == "1"
CHECKED = VARIANTS if RECORD else {name: VARIANTS[name] for name in ("default", "no-ydata", "with-mostly")}


def limit_gb(variant: dict[str, str]) -> float:
    """The size goal of a variant: the base goal plus the allowance of each isolated venv it carries."""
    return BASE_LIMIT_GB + VENV_ALLOWANCE_GB * sum(variant[arg] == "1" for arg in ("WITH_YDATA", "WITH_MOSTLY"))


def image_bytes(engine, tag: str) -> int:
    """The image's uncompressed size as the engine reports it."""
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def test_image_sizes_with_and_without_the_optional_extras(engine, base_image, image, wheelhouse):
    rows = []
    for name, variant in CHECKED.items():
        tag = IMAGE if name == "default" else build_variant(engine, base_image, wheelhouse, name, **variant)
        rows.append({"variant": name, **variant, "bytes": image_bytes(engine, tag)})
    if RECORD:
        write_results(rows)
    for row in rows:
        assert row["bytes"] / GB < limit_gb(row), row


def write_results(rows: list[dict]) -> None:
    """image_sizes.csv (every number) and image_sizes.md (the table a person reads)."""
    with (RESULTS / "image_sizes.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Image sizes (CPU torch), by optional extra",
        "",
        "Built by `FAIRSYNTH_RECORD_IMAGE_SIZES=1 pytest tests/container/test_image_sizes.py` with podman from the",
        "local Debian bookworm base",
        f"(python:3.11-slim stand-in); uncompressed size as the engine reports it. Goals: {BASE_LIMIT_GB} GB without",
        f"isolated venvs, {VENV_ALLOWANCE_GB} GB more for each (WITH_YDATA, WITH_MOSTLY).",
        "",
        f"| variant | {' | '.join(ARGS)} | size (GB) | goal (GB) |",
        f"|---|{'---|' * len(ARGS)}---|---|",
    ]
    for row in rows:
        arguments = " | ".join(row[arg] for arg in ARGS)
        lines.append(f"| {row['variant']} | {arguments} | {row['bytes'] / GB:.2f} | < {limit_gb(row)} |")
    (RESULTS / "image_sizes.md").write_text("\n".join(lines) + "\n")
