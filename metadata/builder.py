"""Crate assembly: turns a run directory into a crate by adding every metadata file to it.

The pipeline lays the run's files out in a directory (data/, model/, config/, evaluation/) and calls
`build_crate(directory, info, facts)`; it adds each table's data dictionary (when missing), for several tables
data/relationships.json (keys and relationships as data), data/rules.csv (when the table has cross-column rules),
metadata/dome.json, metadata/biostudies.pagetab.json, ro-crate-metadata.json and ro-crate-preview.html, in that
order (the JSON-LD describes the files written before it), and writes nowhere else. The real data is described
(rows, columns, checksum), never copied. archive.zip_crate packs the result.

One table (data/synthetic.csv) and several (data/<table>.csv, each with data/<table>.data-dictionary.csv) take the
same path: RunFacts.tables lists the synthetic tables (RunFacts.with_tables fills in a one-table run's entry).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fairsynth.metadata.biostudies import write_pagetab
from fairsynth.metadata.crate import write_rocrate
from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.dome import write_dome
from fairsynth.metadata.model import (
    METADATA_NAME,
    RELATIONSHIPS_PATH,
    RULES_PATH,
    RULES_TABLE_COLUMNS,
    CrateInfo,
    RunFacts,
    TableFacts,
)
from fairsynth.metadata.preview import write_preview
from fairsynth.metadata.schema import TableSchema
from fairsynth.metadata.spreadsheet import DICTIONARY_FLAG, write_csv


def build_crate(directory: Path | str, info: CrateInfo, facts: RunFacts) -> Path:
    """Describe the run files in `directory` as an RO-Crate; returns the ro-crate-metadata.json path."""
    root = Path(directory)
    facts = facts.with_tables(root)
    for table in facts.tables:
        if not (root / table.dictionary).exists():
            write_dictionary(
                _dictionary(facts, table), root / table.dictionary, neutralise=facts.csv_formulas_neutralised
            )
    if facts.dataset is not None:
        write_relationships(root / RELATIONSHIPS_PATH, facts.dataset, facts.tables)
    if facts.rules:
        write_rules_table(root / RULES_PATH, facts.rules, neutralise=facts.csv_formulas_neutralised)
    write_dome(root, info, facts)
    write_pagetab(root, info, facts)
    write_preview(root, write_rocrate(root, info, facts))
    return root / METADATA_NAME


def _dictionary(facts: RunFacts, table: TableFacts) -> pd.DataFrame:
    """A table's dictionary: a dataset's says each column's role (keys, time column)."""
    return facts.dataset.data_dictionary(table.name) if facts.dataset is not None else table.schema.data_dictionary()


def write_data_dictionary(schema: TableSchema, path: Path, *, neutralise: bool) -> None:
    """data/data-dictionary.csv: the schema's dictionary, with whether the run's CSV files were neutralised."""
    write_dictionary(schema.data_dictionary(), path, neutralise=neutralise)


def write_dictionary(dictionary: pd.DataFrame, path: Path, *, neutralise: bool) -> None:
    """A data dictionary as CSV, with whether the run's CSV files were neutralised."""
    write_csv(dictionary.assign(**{DICTIONARY_FLAG: neutralise}), path, neutralise=neutralise)


def write_relationships(path: Path, dataset: DatasetSchema, tables: list[TableFacts]) -> None:
    """data/relationships.json: per table its files, rows, keys and time column; the parent -> child links."""
    described = []
    for table in tables:
        entry = dataset.entry(table.name)
        described.append(
            {
                "name": table.name,
                "file": table.path,
                "dictionary": table.dictionary,
                "rows": table.rows,
                "primary_key": entry.primary_key,
                "time_column": entry.sequence,
            }
        )
    links = [link.model_dump() for link in dataset.relationships]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tables": described, "relationships": links}, indent=2), encoding="utf-8")


def write_rules_table(path: Path, rules: list[dict], *, neutralise: bool) -> None:
    """data/rules.csv: one row per cross-column rule with its columns, status, support and adherence."""
    rows = [{**rule, "columns": "; ".join(rule["columns"])} for rule in rules]
    table = pd.DataFrame(rows).reindex(columns=list(RULES_TABLE_COLUMNS)).rename(columns=RULES_TABLE_COLUMNS)
    write_csv(table, path, neutralise=neutralise)
