"""A fabricated lab-results table (no real person) in the shape of a CDISC LB domain, with the clinical rules
such tables keep: a test code fixes its name, category, unit and reference range; a range's low is below its
high; a flag is decided by the result against the range; a result below the limit of quantification is text
only ('<1'); a visit fixes its number and planned day; the text result is the number printed (plain: '182',
'11.7'); a death date is missing exactly when the death flag is N.

Tests and benchmarks (benchmarks/bench_rules.py) build it with `make_lab_table(n_subjects, seed)`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LAB_SUBJECTS = 250
LAB_SEED = 20261127

#: test code -> (name, category, unit, decimals it is measured to, reference low, reference high, mean, sd)
LAB_TESTS = {
    "HGB": ("Hemoglobin", "HEMATOLOGY", "g/dL", 1, 12.0, 17.5, 14.0, 1.8),
    "WBC": ("Leukocytes", "HEMATOLOGY", "10^9/L", 1, 4.0, 11.0, 7.0, 2.5),
    "PLAT": ("Platelets", "HEMATOLOGY", "10^9/L", 0, 150.0, 400.0, 260.0, 70.0),
    "NEUT": ("Neutrophils", "HEMATOLOGY", "10^9/L", 2, 2.0, 7.5, 4.3, 1.6),
    "ALT": ("Alanine Aminotransferase", "CHEMISTRY", "U/L", 0, 7.0, 56.0, 30.0, 14.0),
    "AST": ("Aspartate Aminotransferase", "CHEMISTRY", "U/L", 0, 10.0, 40.0, 26.0, 10.0),
    "CREAT": ("Creatinine", "CHEMISTRY", "umol/L", 0, 60.0, 110.0, 88.0, 22.0),
    "GLUC": ("Glucose", "CHEMISTRY", "mmol/L", 1, 3.9, 5.6, 5.4, 1.2),
    "SODIUM": ("Sodium", "CHEMISTRY", "mmol/L", 0, 135.0, 145.0, 140.0, 3.5),
    "K": ("Potassium", "CHEMISTRY", "mmol/L", 1, 3.5, 5.1, 4.3, 0.5),
    "CRP": ("C-Reactive Protein", "CHEMISTRY", "mg/L", 1, 0.0, 5.0, 3.5, 4.0),
}
#: test code -> limit of quantification: a result below it is reported as text ('<1') with no number
LAB_LOQ = {"CRP": 1.0}
#: visit number -> (visit name, planned study day)
LAB_VISITS = {1: ("SCREENING", -14), 2: ("BASELINE", 1), 3: ("WEEK 4", 29), 4: ("WEEK 12", 85)}
SITES = ["101", "102", "103", "104", "105"]


def make_lab_table(n_subjects: int = LAB_SUBJECTS, seed: int = LAB_SEED) -> pd.DataFrame:
    """One row per subject, visit and test (~40 rows a subject), with the rules above planted in every row."""
    rng = np.random.default_rng(seed)
    codes, visits = list(LAB_TESTS), list(LAB_VISITS)
    subject = np.repeat(np.arange(n_subjects), len(visits) * len(codes))
    visit = np.tile(np.repeat(visits, len(codes)), n_subjects)
    code = np.tile(codes, n_subjects * len(visits))
    spec = pd.DataFrame(LAB_TESTS, index=["name", "category", "unit", "decimals", "low", "high", "mean", "sd"]).T
    test = spec.loc[code].reset_index(drop=True)
    level = rng.normal(0, 1, n_subjects)[subject]  # each subject runs high or low on every test
    result = test["mean"].to_numpy(float) + test["sd"].to_numpy(float) * (0.6 * level + rng.normal(0, 0.8, len(code)))
    decimals = test["decimals"].to_numpy(int)
    result = np.array([round(max(v, 10.0**-d), d) for v, d in zip(result, decimals, strict=True)])
    loq = pd.Series(code).map(LAB_LOQ).to_numpy(float)
    censored = result < loq  # False where the test has no limit (NaN)
    result[censored] = np.nan
    low, high = test["low"].to_numpy(float), test["high"].to_numpy(float)
    enrolled = pd.Timestamp("2025-01-06") + pd.to_timedelta(rng.integers(0, 365, n_subjects), unit="D")
    planned = np.array([LAB_VISITS[v][1] for v in visit])
    collected = enrolled[subject] + pd.to_timedelta(planned + rng.integers(-2, 3, len(code)), unit="D")
    collected_at = collected + pd.to_timedelta(rng.integers(7 * 60, 18 * 60, len(code)), unit="min")
    died = rng.random(n_subjects) < 0.12
    death = enrolled + pd.to_timedelta(rng.integers(120, 400, n_subjects), unit="D")
    return pd.DataFrame(
        {
            "USUBJID": [f"STUDY01-{SITES[s % len(SITES)]}-{s:04d}" for s in subject],
            "SITEID": [SITES[s % len(SITES)] for s in subject],
            "VISITNUM": visit,
            "VISIT": [LAB_VISITS[v][0] for v in visit],
            "VISITDY": planned,
            "LBTESTCD": code,
            "LBTEST": test["name"].to_numpy(),
            "LBCAT": test["category"].to_numpy(),
            "LBORRESU": test["unit"].to_numpy(),
            "LBSTRESN": result,
            "LBORRES": np.where(censored, [f"<{v:g}" for v in loq], [f"{v:g}" for v in result]),
            "LBSTNRLO": low,
            "LBSTNRHI": high,
            "LBNRIND": np.where(result < low, "L", np.where(result > high, "H", "N")),
            "LBDT": collected.strftime("%Y-%m-%d"),
            "LBDTC": collected_at.strftime("%Y-%m-%d %H:%M"),
            "DTHFL": np.where(died, "Y", "N")[subject],
            "DTHDT": pd.Series(death.strftime("%Y-%m-%d")).where(died, None).to_numpy()[subject],
        }
    )


#: the wide variant's high-cardinality text columns: name -> (levels, how a level is written)
WIDE_TEXT_COLUMNS = {
    "LBNAM": (650, "Laboratory {:03d}"),
    "INVNAM": (1000, "Investigator {:04d}"),
    "LBMETHOD": (2000, "M-{:04d}"),
}


def make_wide_lab_table(rows: int = 30_000, seed: int = LAB_SEED) -> pd.DataFrame:
    """make_lab_table widened to 24 columns: three text columns with 500-2,000 levels (a performing lab and an
    investigator per subject and visit, a method per subject and test, Zipf-like frequencies) and age, weight and a
    toxicity grade; the first `rows` rows. The shape that makes high-cardinality categoricals slow to fit."""
    rng = np.random.default_rng(seed + 1)
    per_subject = len(LAB_TESTS) * len(LAB_VISITS)
    table = make_lab_table(-(-rows // per_subject), seed).iloc[:rows].reset_index(drop=True)
    subject = pd.factorize(table["USUBJID"])[0]
    n_subjects = int(subject.max()) + 1

    def levels(name: str, keys: np.ndarray, n_keys: int) -> np.ndarray:
        count, form = WIDE_TEXT_COLUMNS[name]
        weights = 1.0 / np.arange(1, count + 1) ** 0.7
        drawn = rng.choice(count, size=n_keys, p=weights / weights.sum())
        return np.array([form.format(i) for i in drawn], dtype=object)[keys]

    test, visit = pd.factorize(table["LBTESTCD"])[0], pd.factorize(table["VISITNUM"])[0]
    by_visit = subject * len(LAB_VISITS) + visit
    table["LBNAM"] = levels("LBNAM", by_visit, n_subjects * len(LAB_VISITS))
    table["INVNAM"] = levels("INVNAM", by_visit, n_subjects * len(LAB_VISITS))
    table["LBMETHOD"] = levels("LBMETHOD", subject * len(LAB_TESTS) + test, n_subjects * len(LAB_TESTS))
    table["AGE"] = rng.integers(18, 90, n_subjects)[subject]
    table["WEIGHT"] = np.round(rng.normal(78, 15, n_subjects), 1)[subject]
    table["LBTOXGR"] = np.where(table["LBNRIND"] == "N", 0, rng.integers(1, 5, rows))
    return table
