"""DOME recommendations record (metadata/dome.json): data, optimisation, model, evaluation, filled from the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairsynth.metadata.model import DOME_PATH, MODEL_DIR, CrateInfo, RunFacts
from fairsynth.metadata.schema import ColumnKind

DOME_SECTIONS = {
    "dataset": ("provenance", "splits", "redundancy", "availability"),
    "optimization": ("algorithm", "meta", "encoding", "parameters", "features", "fitting", "regularization", "config"),
    "model": ("interpretability", "output", "duration", "availability"),
    "evaluation": ("method", "measure", "comparison", "confidence", "availability"),
}
# How the shared codec (backends/preprocessing.py) presents each column kind to the generator.
CODEC_BY_KIND = {
    ColumnKind.INTEGER: "float; missing filled by draws from observed values plus a 0/1 missing indicator; "
    "rounded and clipped to the training range on output",
    ColumnKind.FLOAT: "float; missing filled by draws from observed values plus a 0/1 missing indicator; "
    "clipped to the training range on output",
    ColumnKind.DATE: "days since 1970-01-01 as float, missing indicator; formatted back to the source format",
    ColumnKind.DATETIME: "days since 1970-01-01 as float, missing indicator; formatted back to the source format",
    ColumnKind.BOOLEAN: "categorical token; missing as its own token; a level under the rare-level threshold "
    "decodes to one value that is no real level",
    ColumnKind.CATEGORICAL: "categorical token; missing as its own token, rare levels pooled into one token; "
    "levels under the rare-level threshold decode to one value that is no real level",
    ColumnKind.IDENTIFIER: "not learned; fresh unique values in the source's shape",
    ColumnKind.SUBJECT_KEY: "not learned; synthetic keys in the source's shape, never a real value, each shared by "
    "consecutive rows with a rows-per-key distribution like the source's",
    ColumnKind.PII: "not learned; fabricated values of the same pattern",
    ColumnKind.TEXT: "not learned; withheld",
}


def build_dome(info: CrateInfo, facts: RunFacts, root: Path) -> dict[str, Any]:
    """The DOME record of one run as a JSON-ready dict, every field filled from the facts."""
    facts = facts.with_tables(root)
    return {
        "dataset": _dataset(info, facts),
        "optimization": _optimization(facts),
        "model": _model(facts, root),
        "evaluation": _evaluation(facts),
    }


def write_dome(root: Path, info: CrateInfo, facts: RunFacts) -> Path:
    """Write metadata/dome.json inside the crate directory."""
    path = Path(root) / DOME_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_dome(info, facts, Path(root)), indent=2, default=str), encoding="utf-8")
    return path


def _dataset(info: CrateInfo, facts: RunFacts) -> dict[str, Any]:
    src = facts.source
    copies = (
        "not measured"
        if facts.exact_copies is None
        else f"{facts.exact_copies} synthetic rows are exact copies of a training row"
    )
    return {
        "provenance": f"Synthetic {'dataset' if facts.dataset else 'table'} of {facts.synthetic_text()} generated "
        f"from real {src.kind} ({src.rows} rows, {src.columns} columns, sha256 {src.sha256}); the output is "
        "synthetic and contains no real record. Category levels seen in fewer than "
        f"{facts.min_level_rows} training rows are never reproduced nor listed in the data dictionary.",
        "splits": {
            "train_rows": facts.train_rows,
            "holdout_rows": facts.holdout_rows,
            "seed": facts.split_seed,
            "note": "The holdout was never seen by the generator; it serves the privacy and utility checks.",
        },
        "redundancy": copies,
        "rules": _rules(facts),
        "availability": {"license": info.license, "url": info.url or info.identifier or "in this crate"},
    }


def _rules(facts: RunFacts) -> list[dict[str, Any]] | str:
    """The cross-column rules of the real table, each with its status, support and synthetic adherence."""
    if not facts.rules:
        return "no cross-column rule was detected in the real table or added"
    return [
        {
            "rule": rule["text"],
            "status": rule["status"],
            "support": rule["support"],
            "adherence": rule.get("adherence"),
            "synthetic_rows_applicable": rule.get("applicable"),
        }
        for rule in facts.rules
    ]


def _optimization(facts: RunFacts) -> dict[str, Any]:
    kinds = sorted({c.kind for t in facts.tables for c in t.schema.output_columns()})
    regularization = (
        {
            "differential_privacy": "DP-SGD",
            "epsilon": facts.epsilon,
            "delta": facts.delta,
            "clipping_norm": facts.clipping_norm,
        }
        if facts.is_dp
        else "none"
    )
    return {
        "algorithm": f"{facts.model_family} ({facts.backend} {facts.backend_version})",
        "meta": "no meta-predictor: a single generator fitted on the training split",
        "encoding": {kind.value: CODEC_BY_KIND[kind] for kind in kinds},
        "parameters": facts.parameter_count
        if facts.parameter_count is not None
        else "not applicable: the backend reports no trainable parameter count",
        "features": [t.column_label(c.name) for t in facts.tables for c in t.schema.learned_columns()],
        "fitting": {
            "epochs": facts.epochs,
            "batch_size": facts.batch_size,
            "loss": _loss_summary(facts.losses),
            "seed": facts.seed,
            "hyperparameters": facts.params,
        },
        "regularization": regularization,
        "config": "config/generation.json",
    }


def _model(facts: RunFacts, root: Path) -> dict[str, Any]:
    shipped = (root / MODEL_DIR).is_dir() and any((root / MODEL_DIR).iterdir())
    return {
        "interpretability": facts.interpretability
        or "black box: a generative model of the joint distribution; "
        "per-column fidelity is reported in evaluation/metrics.json",
        "output": _output(facts),
        "duration": {"fit_seconds": round(facts.fit_duration, 3), "sample_seconds": round(facts.sample_seconds, 3)},
        "availability": "model files in the crate under model/" if shipped else f"withheld: {facts.model_withheld}",
    }


def _output(facts: RunFacts) -> dict[str, Any]:
    """The synthetic table, or for several tables each table and the relationships (data/relationships.json)."""
    columns = [t.column_label(c.name) for t in facts.tables for c in t.schema.output_columns()]
    if facts.dataset is None:
        return {"type": "synthetic table", "rows": facts.synthetic_rows, "columns": columns}
    return {
        "type": "synthetic dataset of related tables (whole synthetic subjects)",
        "subjects": facts.synthetic_rows,
        "tables": {t.name: {"file": t.path, "rows": t.rows} for t in facts.tables},
        "columns": columns,
        "relationships": [f"{r.child}.{r.child_key} -> {r.parent}.{r.parent_key}" for r in facts.dataset.relationships],
    }


def _evaluation(facts: RunFacts) -> dict[str, Any]:
    release = {"release_decision": facts.gate} if facts.gate else {}
    return {
        **release,
        "method": f"holdout-based: synthetic rows compared with the {facts.train_rows}-row training split and "
        f"the {facts.holdout_rows}-row holdout the generator never saw",
        "measure": facts.measures or "no metric computed in this run",
        "comparison": facts.comparison or "no other backend in this run",
        "confidence": facts.confidence or "no bootstrap intervals computed",
        "availability": "evaluation/metrics.json in this crate",
    }


def _loss_summary(losses: list[float]) -> dict[str, Any] | str:
    if not losses:
        return "no loss curve: the backend is not trained by gradient descent"
    return {"first": losses[0], "last": losses[-1], "min": min(losses), "points": len(losses)}


def dome_problems(record: dict[str, Any]) -> list[str]:
    """Names of missing or empty DOME sections and fields, one sentence each; empty when complete."""
    problems = []
    for section, fields in DOME_SECTIONS.items():
        body = record.get(section)
        if not isinstance(body, dict) or not body:
            problems.append(f"DOME section '{section}' is missing or empty.")
            continue
        for name in fields:
            if _is_empty(body.get(name)):
                problems.append(f"DOME field '{section}.{name}' is missing or empty.")
    return problems


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)
