"""What the UI shows of a dataset of several tables: the relationship diagram and the editable keys table.

Pure functions of a DatasetSchema (no workspace, no Streamlit): the Data page draws `relationship_graph` with
st.graphviz_chart (rendered by Streamlit's bundled front end, nothing fetched) and edits `keys_frame`, whose
edited copy `edited_schema` turns back into a checked DatasetSchema.
"""

from __future__ import annotations

import pandas as pd

from fairsynth.metadata.dataset import DatasetSchema, Relationship
from fairsynth.metadata.schema import SchemaError

#: the keys table's columns; the editable ones are every column but the first two
KEY_COLUMNS = ("table", "rows", "primary key", "parent", "foreign key", "time column")


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
    """The schema with the keys table's edits (via DatasetSchema.with_edits); one SchemaError lists every problem."""
    cells = {row["table"]: {column: _cell(row[column]) for column in KEY_COLUMNS[2:]} for _, row in frame.iterrows()}
    problems, relationships = [], []
    for child, row in cells.items():
        parent, foreign_key = row["parent"], row["foreign key"]
        if not parent:
            if foreign_key:
                problems.append(f"Table '{child}' has a foreign key but no parent; choose its parent table.")
            continue
        parent_key = cells.get(parent, {}).get("primary key")
        if parent not in cells:
            problems.append(f"Table '{child}' names a parent '{parent}' the dataset lacks.")
        elif not parent_key:
            problems.append(f"Table '{child}' has the parent '{parent}', which has no primary key; give it one.")
        if not foreign_key:
            problems.append(f"Table '{child}' has the parent '{parent}' but no foreign key; name the column.")
        if parent_key and foreign_key and parent in cells:
            relationships.append(Relationship(parent=parent, parent_key=parent_key, child=child, child_key=foreign_key))
    if problems:
        raise SchemaError(*problems)
    return schema.with_edits(
        primary_keys={name: row["primary key"] for name, row in cells.items()},
        relationships=relationships,
        sequences={name: row["time column"] for name, row in cells.items()},
    )


def _cell(value: object) -> str | None:
    """An edited cell as a column name, or None for an empty one (None, NaN or blank text)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return str(value).strip() or None


def _quoted(text: str) -> str:
    """A DOT string literal (quotes and backslashes escaped, newlines as DOT's \\n)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
