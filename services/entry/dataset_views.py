"""What the UI shows of a dataset of several tables: the relationship diagram, the editable keys table, and a dataset
run's per-relationship and per-table measures.

Pure functions of a DatasetSchema (no workspace, no Streamlit): the Data page draws `relationship_graph` with
st.graphviz_chart (rendered by Streamlit's bundled front end, nothing fetched) and edits `keys_frame`, whose
edited copy `edited_schema` turns back into a checked DatasetSchema.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema, TableKeys

#: the keys table's columns; the editable ones are every column but the first two
KEY_COLUMNS = ("table", "rows", "primary key", "parent", "foreign key", "time column")
RELATIONSHIP_COLUMNS = (
    "backend",
    "relationship",
    "integrity",
    "children per parent (real)",
    "children per parent (synthetic)",
    "children KS",
    "time column",
    "in time order",
)
TABLE_COLUMNS = ("backend", "table", "real rows", "synthetic rows", "quality", "holdout reference", "real keys copied")


def relationship_graph(schema: DatasetSchema) -> str:
    """DOT text: one box per table (name, primary key, rows), an arrow parent -> child labelled with the keys
    and the child's time column."""
    lines = [
        "digraph dataset {",
        '  rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#f0f4fa", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for entry in schema.tables:
        label = [entry.name, f"key: {entry.primary_key or '(none)'}", f"{entry.table.n_rows:,} rows"]
        lines.append(f"  {_quoted(entry.name)} [label={_quoted(chr(10).join(label))}];")
    for link in schema.relationships:
        label = [f"{link.parent_key} → {link.child_key}"]
        if time := schema.entry(link.child).sequence:
            label.append(f"ordered by {time}")
        lines.append(f"  {_quoted(link.parent)} -> {_quoted(link.child)} [label={_quoted(chr(10).join(label))}];")
    lines.append("}")
    return "\n".join(lines)


def keys_frame(schema: DatasetSchema) -> pd.DataFrame:
    """One row per table: its rows, primary key, parent table, foreign key to it and time column ('' for none)."""
    rows = []
    for entry in schema.tables:
        link = schema.parent_of(entry.name)
        rows.append(
            {
                "table": entry.name,
                "rows": entry.table.n_rows,
                "primary key": entry.primary_key or "",
                "parent": link.parent if link else "",
                "foreign key": link.child_key if link else "",
                "time column": entry.sequence or "",
            }
        )
    return pd.DataFrame(rows, columns=list(KEY_COLUMNS))


def column_choices(schema: DatasetSchema) -> list[str]:
    """What a key or time cell may hold: '' (none) and every column of any table (the schema checks the table)."""
    return ["", *sorted({column for entry in schema.tables for column in entry.table.names})]


def edited_schema(schema: DatasetSchema, frame: pd.DataFrame) -> DatasetSchema:
    """The schema with the keys table's edits (via DatasetSchema.with_table_keys); one SchemaError lists every
    problem."""
    return schema.with_table_keys(
        [
            TableKeys(
                name=row["table"],
                primary_key=_cell(row["primary key"]),
                parent=_cell(row["parent"]),
                foreign_key=_cell(row["foreign key"]),
                time=_cell(row["time column"]),
            )
            for _, row in frame.iterrows()
        ]
    )


def relationship_frame(results: Mapping[str, dict | None]) -> pd.DataFrame:
    """Per backend and relationship (from each metrics.json): integrity, children per parent real vs synthetic
    (means and KS) and the share of parents whose children are in time order."""
    rows = []
    for backend, result in results.items():
        for link in (result or {}).get("relationships", []):
            counts, order = link.get("children_per_parent") or {}, link.get("within_parent_order") or {}
            rows.append(
                {
                    "backend": backend,
                    "relationship": f"{link['parent']} → {link['child']}",
                    "integrity": link.get("referential_integrity"),
                    "children per parent (real)": counts.get("real_mean"),
                    "children per parent (synthetic)": counts.get("synthetic_mean"),
                    "children KS": counts.get("ks_statistic"),
                    "time column": link.get("time_column") or "",
                    "in time order": order.get("synthetic"),
                }
            )
    return pd.DataFrame(rows, columns=list(RELATIONSHIP_COLUMNS))


def table_quality_frame(results: Mapping[str, dict | None]) -> pd.DataFrame:
    """Per backend and table (from each metrics.json): rows real and synthetic, quality of the non-key columns
    beside the held-out rows' reference, and real keys copied."""
    rows = [
        {
            "backend": backend,
            "table": table,
            "real rows": block.get("rows", {}).get("real"),
            "synthetic rows": block.get("rows", {}).get("synthetic"),
            "quality": block.get("quality"),
            "holdout reference": block.get("holdout_reference"),
            "real keys copied": sum((block.get("real_keys_copied") or {}).values()),
        }
        for backend, result in results.items()
        for table, block in (result or {}).get("tables", {}).items()
    ]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def _cell(value: object) -> str | None:
    """An edited cell as a column name, or None for an empty one (None, NaN or blank text)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value).strip() or None


def _quoted(text: str) -> str:
    """A DOT string literal (quotes and backslashes escaped, newlines as DOT's \\n)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
