"""The UI's views of a dataset of several tables: the relationship diagram (DOT), the keys table and its edits."""

from __future__ import annotations

import pytest
from test_dataset_evaluation import cohort, with_fresh_keys
from test_datasets import three_levels

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import SchemaError
from fairsynth.services.entry.dataset_views import (
    column_choices,
    edited_schema,
    keys_frame,
    relationship_frame,
    relationship_graph,
    table_quality_frame,
)
from fairsynth.services.run.datasets import split_by_subject
from fairsynth.services.run.evaluation.relational import evaluate_dataset

from helpers import pbc_tables


@pytest.fixture(scope="module")
def pbc_schema() -> DatasetSchema:
    return DatasetSchema.infer(pbc_tables())


@pytest.fixture(scope="module")
def three_schema() -> DatasetSchema:
    return DatasetSchema.infer(three_levels(40))


def test_the_pbc_diagram_has_both_boxes_with_keys_and_rows_and_one_labelled_arrow(pbc_schema):
    dot = relationship_graph(pbc_schema)
    assert dot.startswith("digraph dataset {") and dot.endswith("}")
    assert '"pbc" [label="pbc\\nkey: id\\n418 rows"];' in dot
    assert '"pbcseq" [label="pbcseq\\nkey: ' in dot and '\\n1,945 rows"];' in dot
    assert '"pbc" -> "pbcseq" [label="id → id\\nordered by day"];' in dot
    assert dot.count("->") == 1


def test_the_three_level_diagram_chains_two_arrows(three_schema):
    dot = relationship_graph(three_schema)
    assert '"patients" -> "admissions" [label="patient_id → patient_id\\nordered by admission_date"];' in dot
    assert '"admissions" -> "labs" [label="admission_id → admission_id\\nordered by hour"];' in dot
    assert "key: lab_id" in dot


def test_a_table_name_with_quotes_is_escaped_in_the_diagram(three_schema):
    renamed = three_schema.model_copy(deep=True)
    renamed.tables[2].name = 'labs "raw"'
    renamed.relationships[1].child = 'labs "raw"'
    assert '"admissions" -> "labs \\"raw\\""' in relationship_graph(renamed)


def test_keys_frame_lists_each_tables_keys_parent_and_time(pbc_schema, three_schema):
    frame = keys_frame(three_schema).set_index("table")
    assert list(frame.index) == ["patients", "admissions", "labs"]
    assert frame.loc["patients"].to_dict() == {
        "rows": 40,
        "primary key": "patient_id",
        "parent": "",
        "foreign key": "",
        "time column": "",
    }
    assert frame.loc["labs", "parent"] == "admissions" and frame.loc["labs", "foreign key"] == "admission_id"
    assert frame.loc["labs", "time column"] == "hour"
    pbc_keys = keys_frame(pbc_schema).set_index("table")
    assert pbc_keys.loc["pbcseq", ["parent", "foreign key", "time column"]].tolist() == ["pbc", "id", "day"]
    assert {"", "day", "id", "patient_id"} <= set(column_choices(three_schema) + column_choices(pbc_schema))


def test_an_unedited_keys_frame_gives_the_same_schema(pbc_schema, three_schema):
    for schema in (pbc_schema, three_schema):
        assert edited_schema(schema, keys_frame(schema)) == schema


def test_editing_the_time_column_and_removing_a_relationship(pbc_schema, three_schema):
    frame = keys_frame(pbc_schema)
    child = frame.index[frame["table"] == "pbcseq"][0]
    frame.loc[child, "time column"] = None  # the editor's emptied cell
    edited = edited_schema(pbc_schema, frame)
    assert edited.entry("pbcseq").sequence is None and "ordered by" not in relationship_graph(edited)

    frame = keys_frame(three_schema)
    labs = frame.index[frame["table"] == "labs"][0]
    frame.loc[labs, ["parent", "foreign key", "time column"]] = ["", "", ""]
    edited = edited_schema(three_schema, frame)
    assert [r.child for r in edited.relationships] == ["admissions"] and edited.roots() == ["patients", "labs"]


def test_every_problem_of_an_edit_is_reported_at_once(three_schema):
    frame = keys_frame(three_schema)
    rows = {name: frame.index[frame["table"] == name][0] for name in frame["table"]}
    frame.loc[rows["patients"], "primary key"] = ""  # admissions' parent loses its key
    frame.loc[rows["labs"], "foreign key"] = ""
    with pytest.raises(SchemaError) as error:
        edited_schema(three_schema, frame)
    assert list(error.value.problems) == [
        "Table 'admissions' has the parent 'patients', which has no primary key; give it one.",
        "Table 'labs' has the parent 'admissions' but no foreign key; name the column.",
    ]
    frame = keys_frame(three_schema)
    frame.loc[rows["labs"], ["time column", "foreign key"]] = ["minute", "patient_id"]
    with pytest.raises(SchemaError) as error:  # the schema's own checks, all at once too
        edited_schema(three_schema, frame)
    assert list(error.value.problems) == [
        "Table 'labs' has no column 'minute' for its time column.",
        "The relationship admissions.admission_id -> labs.patient_id names a column 'patient_id' that 'labs' lacks.",
    ]
    frame = keys_frame(three_schema)
    frame.loc[rows["patients"], ["parent", "foreign key"]] = ["labs", "patient_id"]
    with pytest.raises(SchemaError, match="form a cycle"):
        edited_schema(three_schema, frame)


def test_a_dataset_runs_measures_per_relationship_and_per_table_side_by_side():
    real = cohort(120)
    schema = DatasetSchema.infer(real)
    train, holdout = split_by_subject(real, schema, 0.25, seed=0)
    broken = with_fresh_keys(cohort(100, seed=5))
    broken["visits"].loc[:9, "subject_id"] = -1  # ten visits without a parent
    results = {
        "fresh": evaluate_dataset(train, holdout, with_fresh_keys(cohort(90, seed=3)), schema).model_dump(mode="json"),
        "orphans": evaluate_dataset(train, holdout, broken, schema).model_dump(mode="json"),
        "failed": None,  # a backend that wrote no metrics.json
    }
    links = relationship_frame(results).set_index("backend")
    assert list(links.index) == ["fresh", "orphans"] and set(links["relationship"]) == {"subjects → visits"}
    assert links.loc["fresh", "integrity"] == 1.0 and links.loc["orphans", "integrity"] < 1.0
    assert links.loc["fresh", "time column"] == "day" and links.loc["fresh", "in time order"] == 1.0
    real_mean = train["visits"].groupby("subject_id").size().mean()
    assert links.loc["fresh", "children per parent (real)"] == pytest.approx(real_mean)
    assert 0 <= links.loc["orphans", "children KS"] <= 1
    tables = table_quality_frame(results)
    assert list(tables["table"]) == ["subjects", "visits"] * 2
    fresh = tables[tables["backend"] == "fresh"].set_index("table")
    assert fresh.loc["subjects", "synthetic rows"] == 90 and fresh.loc["subjects", "real rows"] == len(
        train["subjects"]
    )
    assert fresh["quality"].between(0, 1).all() and (fresh["real keys copied"] == 0).all()
