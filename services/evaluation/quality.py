"""Quality: how closely the synthetic table's columns and column pairs follow the real one."""
from __future__ import annotations

import warnings

import pandas as pd
from sdmetrics.reports import QualityReport

from metadata.schema import ColumnKind, TableSchema

TABLE = "table"
SDTYPES = {ColumnKind.INTEGER: "numerical", ColumnKind.FLOAT: "numerical", ColumnKind.BOOLEAN: "categorical",
           ColumnKind.CATEGORICAL: "categorical", ColumnKind.DATETIME: "datetime", ColumnKind.DATE: "datetime"}


def sdmetrics_metadata(schema: TableSchema) -> dict:
    """sdmetrics metadata for the learned columns (identifiers, PII and text are not compared)."""
    columns = {}
    for spec in schema.learned_columns():
        entry = {"sdtype": SDTYPES[spec.kind]}
        if spec.kind in (ColumnKind.DATETIME, ColumnKind.DATE) and spec.datetime_format:
            entry["datetime_format"] = spec.datetime_format
        columns[spec.name] = entry
    return {"tables": {TABLE: {"columns": columns}}}


def quality_report(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> QualityReport:
    """The sdmetrics QualityReport (column shapes and column pair trends) on the learned columns."""
    metadata = sdmetrics_metadata(schema)
    names = list(metadata["tables"][TABLE]["columns"])
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({TABLE: real[names]}, {TABLE: synthetic[names]}, metadata, verbose=False)
    return report


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict:
    """Overall quality in [0, 1] with its two properties."""
    report = quality_report(real, synthetic, schema)
    properties = report.get_properties().set_index("Property")["Score"]
    return {"quality": float(report.get_score()),
            "column_shapes": float(properties.get("Column Shapes", float("nan"))),
            "column_pair_trends": float(properties.get("Column Pair Trends", float("nan")))}
