"""Crate assembly: turns a run directory into a crate by adding every metadata file to it.

The pipeline lays the run's files out in a directory (data/, model/, config/, evaluation/) and calls
`build_crate(directory, info, facts)`; it adds the data dictionary (when missing), data/rules.csv (when the
table has cross-column rules), metadata/dome.json,
metadata/biostudies.pagetab.json, ro-crate-metadata.json and ro-crate-preview.html, in that order (the
JSON-LD describes the files written before it), and writes nowhere else. The real table is described
(rows, columns, checksum), never copied. archive.zip_crate packs the result.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairsynth.metadata.biostudies import write_pagetab
from fairsynth.metadata.crate import write_rocrate
from fairsynth.metadata.dome import write_dome
from fairsynth.metadata.model import (
    DICTIONARY_PATH,
    METADATA_NAME,
    RULES_PATH,
    RULES_TABLE_COLUMNS,
    CrateInfo,
    RunFacts,
    synthetic_path,
)
from fairsynth.metadata.preview import write_preview
from fairsynth.metadata.schema import TableSchema
from fairsynth.metadata.spreadsheet import DICTIONARY_FLAG, write_csv


def build_crate(directory: Path | str, info: CrateInfo, facts: RunFacts) -> Path:
    """Describe the run files in `directory` as an RO-Crate; returns the ro-crate-metadata.json path."""
    root = Path(directory)
    synthetic = synthetic_path(root)
    if not (root / DICTIONARY_PATH).exists():
        write_data_dictionary(facts.schema, root / DICTIONARY_PATH, neutralise=facts.csv_formulas_neutralised)
    if facts.rules:
        write_rules_table(root / RULES_PATH, facts.rules, neutralise=facts.csv_formulas_neutralised)
    write_dome(root, info, facts)
    write_pagetab(root, info, facts)
    write_preview(root, write_rocrate(root, info, facts, synthetic))
    return root / METADATA_NAME


def write_data_dictionary(schema: TableSchema, path: Path, *, neutralise: bool) -> None:
    """data/data-dictionary.csv: the schema's dictionary, with whether the run's CSV files were neutralised."""
    write_csv(schema.data_dictionary().assign(**{DICTIONARY_FLAG: neutralise}), path, neutralise=neutralise)


def write_rules_table(path: Path, rules: list[dict], *, neutralise: bool) -> None:
    """data/rules.csv: one row per cross-column rule with its columns, status, support and adherence."""
    rows = [{**rule, "columns": "; ".join(rule["columns"])} for rule in rules]
    table = pd.DataFrame(rows).reindex(columns=list(RULES_TABLE_COLUMNS)).rename(columns=RULES_TABLE_COLUMNS)
    write_csv(table, path, neutralise=neutralise)
