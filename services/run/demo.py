"""The embedded demo table: fabricated hospital episodes (no real person), the default everywhere.

`python -m fairsynth.services.run.demo` rewrites services/data/demo_episodes.csv from this code and its seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEMO_PATH = Path(__file__).parent / "data" / "demo_episodes.csv"
DEMO_ROWS = 2_000
DEMO_SEED = 20261123

WARDS = [
    "Acute Medical Unit",
    "Cardiology",
    "Respiratory",
    "General Surgery",
    "Orthopaedics",
    "Elderly Care",
    "Gastroenterology",
    "Stroke Unit",
]
WARD_WEIGHTS = [0.24, 0.13, 0.13, 0.14, 0.1, 0.14, 0.07, 0.05]
# ICD-10 codes: common ones, then a long tail where several appear only once or twice.
COMMON_CODES = {
    "I21.9": 0.09,
    "J18.9": 0.11,
    "I50.9": 0.08,
    "N39.0": 0.07,
    "J44.1": 0.08,
    "K80.2": 0.05,
    "S72.0": 0.06,
    "I63.9": 0.05,
    "E11.9": 0.04,
    "A41.9": 0.05,
    "R07.4": 0.06,
    "K35.8": 0.04,
    "I48.9": 0.05,
}
RARE_CODES = [
    "G41.0",
    "D59.3",
    "M31.3",
    "E27.1",
    "T78.2",
    "A39.0",
    "C91.0",
    "Q21.1",
    "G61.0",
    "E85.4",
    "M33.2",
    "D69.3",
]


def make_demo_table(n_rows: int = DEMO_ROWS, seed: int = DEMO_SEED) -> pd.DataFrame:
    """Fabricated episodes with an ID, NHS test-range numbers, dates, codes, rare values and gaps."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.gamma(9.0, 7.5, n_rows), 18, 101).round().astype(int)
    sex = rng.choice(["F", "M"], n_rows, p=[0.52, 0.48]).astype(object)
    sex[rng.random(n_rows) < 0.01] = None
    ward = rng.choice(WARDS, n_rows, p=WARD_WEIGHTS)
    method = np.where(
        rng.random(n_rows) < 0.68, "Emergency", np.where(rng.random(n_rows) < 0.8, "Elective", "Transfer")
    )
    diagnosis = _diagnoses(rng, n_rows)
    admitted = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 730, n_rows), unit="D")
    stay = np.round(rng.lognormal(1.3 + 0.01 * (age - 60).clip(0), 0.8, n_rows)).astype(int)
    discharged = admitted + pd.to_timedelta(stay, unit="D")
    still_in = rng.random(n_rows) < 0.03
    first_obs = admitted + pd.to_timedelta(rng.integers(0, 24 * 60, n_rows), unit="min")
    systolic = np.round(rng.normal(128 + 0.3 * (age - 60), 18, n_rows)).astype(int)
    creatinine = np.round(rng.lognormal(4.45 + 0.004 * (age - 60), 0.35, n_rows), 1)
    creatinine[rng.random(n_rows) < 0.1] = np.nan
    readmit_p = 0.06 + 0.002 * (age - 60).clip(0) + 0.01 * np.minimum(stay, 10)
    table = pd.DataFrame(
        {
            "episode_id": [f"EP{1_000_000 + i * 37:07d}" for i in range(n_rows)],
            "nhs_number": _test_nhs_numbers(rng, n_rows),
            "age": age,
            "sex": sex,
            "ward": ward,
            "admission_method": method,
            "primary_diagnosis": diagnosis,
            "admission_date": admitted.strftime("%d/%m/%Y"),
            "discharge_date": pd.Series(discharged.strftime("%d/%m/%Y")).where(~still_in, None),
            "first_observation": first_obs.strftime("%Y-%m-%d %H:%M"),
            "length_of_stay": pd.Series(stay).where(~still_in, None).astype("Int64"),
            "systolic_bp": systolic,
            "creatinine_umol_l": creatinine,
            "readmitted_30d": np.where(rng.random(n_rows) < readmit_p, "yes", "no"),
        }
    )
    return table


def _diagnoses(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    codes = list(COMMON_CODES)
    weights = np.array(list(COMMON_CODES.values()))
    out = rng.choice(codes, n_rows, p=weights / weights.sum()).astype(object)
    rare_rows = rng.choice(n_rows, size=30, replace=False)
    out[rare_rows] = rng.choice(RARE_CODES, size=30)
    return out


def _test_nhs_numbers(rng: np.random.Generator, n_rows: int) -> list[str]:
    # Imported here so the demo table's module stays a leaf for the UI.
    from fairsynth.backends.preprocessing import fabricate_pii

    return fabricate_pii("nhs_number", n_rows, 0, rng, salt=0, separator=" ")


def load_demo_table() -> pd.DataFrame:
    """The shipped demo table as read from its CSV (as a user's file would be)."""
    return pd.read_csv(DEMO_PATH)


if __name__ == "__main__":
    DEMO_PATH.parent.mkdir(parents=True, exist_ok=True)
    make_demo_table().to_csv(DEMO_PATH, index=False)
    print(f"wrote {DEMO_PATH}")
