"""The image's size with and without the optional extras.

Goals (issue #19): the CPU image with ydata under 4.5 GB, without ydata under 2.5 GB; the suite checks those two
variants. With FAIRSYNTH_RECORD_IMAGE_SIZES=1 it builds all four and writes benchmarks/results/image_sizes.{csv,md}
(the committed table came from that run); a test run never rewrites tracked files otherwise.
"""

from __future__ import annotations

import csv
import os

import pytest

from container.conftest import BASE_IMAGE, IMAGE, ROOT, build_args, build_cached, image_id

pytestmark = [pytest.mark.slow, pytest.mark.integration]
RESULTS = ROOT / "benchmarks" / "results"
GB = 1000**3
# name -> (WITH_SDV, WITH_YDATA); the first is the default build, the `image` fixture's
VARIANTS = {"default": ("1", "1"), "no-ydata": ("1", "0"), "no-sdv": ("0", "1"), "no-sdv-no-ydata": ("0", "0")}
LIMIT_GB = {"1": 4.5, "0": 2.5}  # by WITH_YDATA
RECORD = os.environ.get("FAIRSYNTH_RECORD_IMAGE_SIZES") == "1"
CHECKED = VARIANTS if RECORD else {name: VARIANTS[name] for name in ("default", "no-ydata")}


def image_bytes(engine, tag: str) -> int:
    """The image's uncompressed size as the engine reports it."""
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def test_image_sizes_with_and_without_the_optional_extras(engine, image, wheelhouse):
    rows = []
    for name, (with_sdv, with_ydata) in CHECKED.items():
        tag = IMAGE if name == "default" else f"{IMAGE}-{name}"
        if name != "default":
            args = build_args(BASE_IMAGE, wheelhouse, WITH_SDV=with_sdv, WITH_YDATA=with_ydata)
            wheels = sorted(f"{w.name}:{w.stat().st_size}" for w in wheelhouse.iterdir())
            extra = [image_id(engine, BASE_IMAGE), *args, *wheels]
            build_cached(engine, tag, ROOT / "Dockerfile", ROOT, args, extra=extra)
        size = image_bytes(engine, tag)
        rows.append({"variant": name, "WITH_SDV": with_sdv, "WITH_YDATA": with_ydata, "bytes": size})
    if RECORD:
        write_results(rows)
    for row in rows:
        assert row["bytes"] / GB < LIMIT_GB[row["WITH_YDATA"]], row


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
        "(python:3.11-slim stand-in); uncompressed size as the engine reports it. Goals: with ydata < 4.5 GB,",
        "without ydata < 2.5 GB.",
        "",
        "| variant | WITH_SDV | WITH_YDATA | size (GB) | goal (GB) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        goal = LIMIT_GB[row["WITH_YDATA"]]
        lines.append(
            f"| {row['variant']} | {row['WITH_SDV']} | {row['WITH_YDATA']} | {row['bytes'] / GB:.2f} | < {goal} |"
        )
    (RESULTS / "image_sizes.md").write_text("\n".join(lines) + "\n")
