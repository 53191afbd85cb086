"""RO-Crate building, offline validation (0 issues, 0 skipped, as a zip too), broken and hostile crates and zips."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from fairsynth.backends.preprocessing import TableCodec
from fairsynth.metadata.archive import read_crate_zip, zip_crate
from fairsynth.metadata.builder import build_crate
from fairsynth.metadata.checksums import sha256_file
from fairsynth.metadata.model import (
    BIOSCHEMAS_DATASET,
    COMPLETED,
    DICTIONARY_PATH,
    DOME_PATH,
    PROCESS_RUN_CRATE,
    RULES_PATH,
    RULES_TABLE_COLUMNS,
    Author,
    CrateError,
    CrateInfo,
    Organization,
    RunFacts,
    SourceFacts,
)
from fairsynth.metadata.rule_checks import infer_with_rules, rule_counts
from fairsynth.metadata.schema import TableSchema
from fairsynth.metadata.validate import ValidationReport, check_files, check_structure, validate_crate
from fairsynth.services.run.demo import DEMO_PATH, load_demo_table
from fairsynth.services.settings import Settings

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
T0 = datetime(2026, 11, 23, 12, 0, 0, 654321, tzinfo=UTC)


def crate_info() -> CrateInfo:
    """A complete CrateInfo as a user would give it."""
    return CrateInfo(
        title="Synthetic hospital episodes",
        description="Synthetic episodes for method development",
        authors=[
            Author(
                name="Ada Lovelace",
                orcid="0000-0002-1825-0097",
                affiliation=Organization(name="University College London", ror="02jx3x895"),
            ),
            Author(
                name="Charles Babbage",
                affiliation=Organization(name="Analytical Engines Ltd", url="https://example.org/engines"),
            ),
        ],
        keywords=["synthetic data", "hospital episodes"],
        funder=Organization(name="Wellcome Trust", ror="https://ror.org/029chgv08"),
        url="https://example.org/datasets/episodes",
    )


def make_run(root: Path, *, with_model: bool = True, rows: int = 400, rename: dict[str, str] | None = None) -> RunFacts:
    """A real small run directory: the demo table through the shared codec round trip, plus its facts."""
    real = load_demo_table().rename(columns=rename or {})
    schema = infer_with_rules(real)
    codec = TableCodec.fit(real, schema)
    synthetic = codec.decode(codec.encode(real.sample(rows, random_state=3)), seed=5)
    for sub in ("data", "config", "evaluation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    synthetic.to_csv(root / "data/synthetic.csv", index=False)
    schema.data_dictionary().to_csv(root / "data/data-dictionary.csv", index=False)
    (root / "config/generation.json").write_text(json.dumps({"seed": 5, "backend": "marginals"}))
    metrics = {"quality": {"quality": 0.81, "column_shapes": 0.9, "column_pair_trends": 0.72}}
    (root / "evaluation/metrics.json").write_text(json.dumps(metrics))
    if with_model:
        (root / "model").mkdir(exist_ok=True)
        (root / "model/codec.json").write_text(codec.to_json())
    return RunFacts(
        backend="marginals",
        backend_version="0.1.0",
        backend_url="https://example.org/fairsynth#marginals",
        backend_license="Apache-2.0",
        model_family="independent marginals",
        schema=schema,
        source=SourceFacts(
            rows=len(real),
            columns=real.shape[1],
            sha256=sha256_file(DEMO_PATH),
            kind="hospital episode records",
            name="demo_episodes.csv",
        ),
        seed=5,
        fit_start=T0,
        fit_end=T0 + timedelta(seconds=2.5),
        sample_start=T0 + timedelta(seconds=3),
        sample_end=T0 + timedelta(seconds=4),
        train_rows=1600,
        holdout_rows=400,
        split_seed=5,
        synthetic_rows=rows,
        measures=[{"name": "quality", "label": "Quality", "value": 0.81, "goal": "maximize", "meaning": "sdmetrics"}],
        comparison={"sdv.gaussian_copula": {"quality": 0.84}},
        exact_copies=0,
        rules=[rule_facts(rule, synthetic, schema, real) for rule in schema.rules],
        packages={"pandas": "2.3.3", "numpy": "1.26.4"},
        gate="pass",
    )


def rule_facts(rule, synthetic, schema, real) -> dict:
    """One rule and its adherence as the pipeline hands it to the crate (RunFacts.rules)."""
    applicable, kept = rule_counts(rule, synthetic, schema, reference=real)
    described = {"text": rule.text, "kind": rule.kind.value, "columns": rule.columns, "status": rule.status.value}
    return described | {"support": rule.support, "applicable": applicable, "kept": kept, "adherence": kept / applicable}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crate")
    build_crate(root, crate_info(), make_run(root))
    return root


def graph_of(root: Path) -> dict[str, dict]:
    return {e["@id"]: e for e in json.loads((root / "ro-crate-metadata.json").read_text())["@graph"]}


def broken_copy(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "broken"
    shutil.copytree(built, target)
    return target


def edit_metadata(root: Path, change) -> None:
    path = root / "ro-crate-metadata.json"
    document = json.loads(path.read_text())
    change({e["@id"]: e for e in document["@graph"]}, document)
    path.write_text(json.dumps(document))


# -- a good crate ---------------------------------------------------------------------------------
def test_crate_validates_offline_with_zero_issues_and_zero_skipped(built):
    report = validate_crate(built)
    assert report.issues == []
    assert report.skipped == []
    assert report.ok
    rocrate = report.checks[0]
    assert rocrate.name.startswith("roc-validator process-run-crate-0.5")
    assert rocrate.details["executed_checks"] > 50  # offline without the seeded cache only a handful run


def test_crate_writes_every_metadata_file_inside_its_directory(built):
    names = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    assert {
        "ro-crate-metadata.json",
        "ro-crate-preview.html",
        "metadata/dome.json",
        "metadata/biostudies.pagetab.json",
        "data/synthetic.csv",
        "data/data-dictionary.csv",
        "data/rules.csv",
    } <= names
    preview = (built / "ro-crate-preview.html").read_text()
    assert "Synthetic hospital episodes" in preview and "SYNTHETIC" in preview and "<script" not in preview


def test_markup_in_title_author_and_column_reaches_the_preview_as_text(tmp_path):
    hostile = "<script>alert(1)</script>"
    shown = "&lt;script&gt;alert(1)&lt;/script&gt;"
    column = load_demo_table().columns[0]
    root = tmp_path / "markup"
    facts = make_run(root, rename={column: f"{column} {hostile}"})
    info = crate_info()
    author = Author(name=f"Eve {hostile}", affiliation=info.authors[0].affiliation)
    build_crate(root, info.model_copy(update={"title": f"Episodes {hostile}", "authors": [author]}), facts)
    preview = (root / "ro-crate-preview.html").read_text()
    assert "<script" not in preview
    assert f"<h1>Episodes {shown}</h1>" in preview
    assert f"<dd>Eve {shown}</dd>" in preview
    assert f"<td>{column} {shown}</td>" in preview
    assert validate_crate(root).issues == []
    assert_valid_as_a_zip(root, tmp_path)


def test_root_dataset_declares_profiles_license_people_and_synthetic_origin(built):
    graph = graph_of(built)
    root = graph["./"]
    assert [c["@id"] for c in root["conformsTo"]] == [PROCESS_RUN_CRATE, BIOSCHEMAS_DATASET]
    for profile in (PROCESS_RUN_CRATE, BIOSCHEMAS_DATASET):
        assert graph[profile]["@type"] == ["CreativeWork", "Profile"] and graph[profile]["version"]
    assert root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
    assert graph["https://spdx.org/licenses/CC-BY-4.0"]["name"] == "CC-BY-4.0"
    ada = graph["https://orcid.org/0000-0002-1825-0097"]
    assert ada["affiliation"] == {"@id": "https://ror.org/02jx3x895"}
    assert graph["https://ror.org/02jx3x895"]["@type"] == "Organization"
    assert [c["@id"] for c in root["creator"]] == ["https://orcid.org/0000-0002-1825-0097", "#person-charles-babbage"]
    assert "SYNTHETIC" in root["description"] and "hospital episode records" in root["description"]
    assert root["keywords"] == "synthetic data, hospital episodes"
    assert graph[root["funder"]["@id"]]["name"] == "Wellcome Trust"
    assert graph["#org-analytical-engines-ltd"]["url"] == "https://example.org/engines"
    assert root["url"] == "https://example.org/datasets/episodes"


def test_source_is_described_by_size_and_checksum_never_by_content(built):
    graph = graph_of(built)
    source = graph[graph["./"]["isBasedOn"]["@id"]]
    assert source["sha256"] == sha256_file(DEMO_PATH)
    assert "2000 rows, 14 columns" in source["description"]
    real = load_demo_table()
    text = (built / "ro-crate-metadata.json").read_text()
    assert str(real["episode_id"].iloc[0]) not in text  # no real identifier leaks into the metadata


def test_fit_and_sample_actions_link_backend_training_model_and_synthetic_file(built):
    graph = graph_of(built)
    assert graph["./"]["mentions"] == [{"@id": "#fit"}, {"@id": "#sample"}]
    fit, sample = graph["#fit"], graph["#sample"]
    backend = graph[fit["instrument"]["@id"]]
    assert backend["@type"] == "SoftwareApplication" and backend["version"] == "0.1.0" and backend["url"]
    assert backend["license"] == {"@id": "https://spdx.org/licenses/Apache-2.0"}
    assert backend["softwareRequirements"] == [
        {"@id": "https://pypi.org/project/numpy/1.26.4/"},
        {"@id": "https://pypi.org/project/pandas/2.3.3/"},
    ]
    assert graph["https://pypi.org/project/pandas/2.3.3/"]["version"] == "2.3.3"
    assert fit["object"] == {"@id": "#training-table"} and fit["result"] == {"@id": "model/"}
    assert sample["object"] == {"@id": "model/"} and sample["result"] == {"@id": "data/synthetic.csv"}
    for action in (fit, sample):
        assert action["actionStatus"] == COMPLETED
        assert ISO_UTC.match(action["startTime"]) and ISO_UTC.match(action["endTime"])
    assert fit["startTime"] == "2026-11-23T12:00:00+00:00"


def test_every_file_has_name_format_size_and_matching_sha256(built):
    graph = graph_of(built)
    files = [e for e in graph.values() if e["@type"] == "File"]
    assert len(files) == 8  # data/rules.csv beside the dictionary
    for entity in files:
        path = built / entity["@id"]
        assert entity["name"] == path.name
        assert entity["contentSize"] == str(path.stat().st_size)
        assert entity["sha256"] == sha256_file(path)
        assert entity["encodingFormat"]
    assert graph["data/synthetic.csv"]["encodingFormat"] == "text/csv"


def test_variable_measured_has_one_property_value_per_column_from_the_schema(built):
    graph = graph_of(built)
    schema = TableSchema.infer(load_demo_table())
    values = [graph[ref["@id"]] for ref in graph["./"]["variableMeasured"]]
    assert [v["name"] for v in values] == [c.name for c in schema.output_columns()]
    by_name = {v["name"]: v for v in values}
    assert by_name["age"]["propertyID"] == "integer"
    assert by_name["age"]["minValue"] == schema.column("age").minimum
    assert "Cardiology" in by_name["ward"]["valueReference"]
    assert f"{schema.column('systolic_bp').missing_share:.2%} missing" in by_name["systolic_bp"]["description"]


def test_no_single_item_arrays_anywhere(built):
    for entity in graph_of(built).values():
        for key, value in entity.items():
            assert not (isinstance(value, list) and len(value) == 1), (entity["@id"], key)


def test_dome_record_is_filled_from_the_run(built):
    dome = json.loads((built / "metadata/dome.json").read_text())
    assert dome["dataset"]["splits"] == {
        "train_rows": 1600,
        "holdout_rows": 400,
        "seed": 5,
        "note": dome["dataset"]["splits"]["note"],
    }
    assert dome["dataset"]["redundancy"].startswith("0 synthetic rows are exact copies")
    assert dome["optimization"]["regularization"] == "none"
    assert dome["optimization"]["config"] == "config/generation.json"
    assert "categorical" in dome["optimization"]["encoding"]
    assert dome["evaluation"]["measure"] == [
        {"name": "quality", "label": "Quality", "value": 0.81, "goal": "maximize", "meaning": "sdmetrics"}
    ]
    assert dome["evaluation"]["comparison"] == {"sdv.gaussian_copula": {"quality": 0.84}}
    assert dome["model"]["availability"] == "model files in the crate under model/"
    assert dome["evaluation"]["release_decision"] == "pass"


def test_rules_and_their_adherence_are_listed_in_the_dictionary_rules_table_and_dome(built):
    order = "discharge_date >= admission_date"
    rules = pd.read_csv(built / RULES_PATH).set_index("rule")
    assert list(rules.columns) == list(RULES_TABLE_COLUMNS.values())[1:] and order in rules.index
    kept = rules.loc[order]
    assert (kept["status"], kept["columns"]) == ("enforced", "admission_date; discharge_date")
    assert kept["adherence"] == pytest.approx(kept["synthetic_rows_kept"] / kept["synthetic_rows_applicable"])
    dictionary = pd.read_csv(built / DICTIONARY_PATH, keep_default_na=False).set_index("column")
    assert order in dictionary.loc["admission_date", "rules"] and dictionary.loc["age", "rules"] == ""
    dome = json.loads((built / DOME_PATH).read_text())["dataset"]["rules"]
    listed = {rule["rule"]: rule for rule in dome}
    assert set(listed) == set(rules.index) and listed[order]["adherence"] == pytest.approx(kept["adherence"])
    graph = graph_of(built)
    assert "synthetic rows that keep it" in graph[RULES_PATH]["description"]


def test_withheld_model_is_described_and_still_validates(tmp_path):
    root = tmp_path / "withheld"
    facts = make_run(root, with_model=False)
    build_crate(root, crate_info(), facts)
    graph = graph_of(root)
    assert graph["#fit"]["result"] == {"@id": "#model-withheld"}
    assert "withheld" in json.loads((root / "metadata/dome.json").read_text())["model"]["availability"]
    report = validate_crate(root)
    assert report.ok, report.summary()
    assert_valid_as_a_zip(root, tmp_path)


# -- broken crates ------------------------------------------------------------------------------
def test_missing_license_fails_rocrate_and_bioschemas(built, tmp_path):
    root = broken_copy(built, tmp_path)
    edit_metadata(root, lambda g, _: g["./"].pop("license"))
    report = validate_crate(root)
    assert not report.ok
    assert any("roc-validator" in i and "license" in i for i in report.issues)
    assert "Bioschemas Dataset 1.0 (SHACL): Bioschemas Dataset: license is required" in report.issues
    assert report.skipped == []


def test_missing_sha256_is_named(built, tmp_path):
    root = broken_copy(built, tmp_path)
    edit_metadata(root, lambda g, _: g["data/synthetic.csv"].pop("sha256"))
    assert check_files(root, json.loads((root / "ro-crate-metadata.json").read_text())).issues == [
        "File data/synthetic.csv lacks sha256."
    ]


def test_changed_file_fails_its_sha256(built, tmp_path):
    root = broken_copy(built, tmp_path)
    with open(root / "data/synthetic.csv", "a") as handle:
        handle.write("tampered\n")
    report = validate_crate(root)
    assert not report.ok
    assert (
        "files (presence, size, sha256): File data/synthetic.csv does not match its sha256: it changed "
        "after the crate was built."
    ) in report.issues


def test_missing_file_is_caught(built, tmp_path):
    root = broken_copy(built, tmp_path)
    (root / "evaluation/metrics.json").unlink()
    report = validate_crate(root)
    assert (
        "files (presence, size, sha256): File evaluation/metrics.json is described but missing from the crate."
        in report.issues
    )
    assert any("roc-validator" in i for i in report.issues)  # roc-validator sees it too


def test_single_item_array_is_caught(built, tmp_path):
    root = broken_copy(built, tmp_path)

    def wrap(graph, _):
        graph["./"]["license"] = [graph["./"]["license"]]

    edit_metadata(root, wrap)
    issues = check_structure(root, json.loads((root / "ro-crate-metadata.json").read_text())).issues
    assert issues == ["Entity ./ has a single-item array for 'license'; give the value itself."]


def test_missing_create_action_fails(built, tmp_path):
    root = broken_copy(built, tmp_path)

    def drop_fit(graph, document):
        document["@graph"] = [e for e in document["@graph"] if e["@id"] != "#fit"]
        graph["./"]["mentions"] = {"@id": "#sample"}

    edit_metadata(root, drop_fit)
    report = validate_crate(root)
    assert "crate structure (actions, columns, arrays): The CreateAction #fit is missing." in report.issues


def test_empty_dome_section_fails(built, tmp_path):
    from fairsynth.metadata.validate import check_dome

    root = broken_copy(built, tmp_path)
    dome = json.loads((root / "metadata/dome.json").read_text())
    dome["evaluation"] = {}
    (root / "metadata/dome.json").write_text(json.dumps(dome))
    report = validate_crate(root)
    assert "DOME completeness: DOME section 'evaluation' is missing or empty." in report.issues
    dome["evaluation"] = {"method": "holdout", "measure": [], "comparison": "x", "confidence": "x", "availability": "x"}
    (root / "metadata/dome.json").write_text(json.dumps(dome))
    assert check_dome(root).issues == ["DOME field 'evaluation.measure' is missing or empty."]


def test_unlisted_file_is_caught(built, tmp_path):
    root = broken_copy(built, tmp_path)
    (root / "data/extra.csv").write_text("a\n1\n")
    issues = check_files(root, json.loads((root / "ro-crate-metadata.json").read_text())).issues
    assert issues == ["File data/extra.csv is in the crate but not described in ro-crate-metadata.json."]


# -- user input ------------------------------------------------------------------------------------
def test_crate_info_names_missing_or_bad_values():
    org = Organization(name="O", url="https://example.org")
    with pytest.raises(ValidationError, match="authors"):
        CrateInfo(title="t", description="d", authors=[])
    with pytest.raises(ValidationError, match="not an ORCID iD"):
        Author(name="A", orcid="1234", affiliation=org)
    with pytest.raises(ValidationError, match="not a ROR id"):
        Organization(name="O", ror="https://example.org/x")
    with pytest.raises(ValidationError, match="needs a ROR id .* or a web address"):
        Organization(name="O")
    with pytest.raises(ValidationError, match="affiliation"):
        Author(name="A")
    with pytest.raises(ValidationError, match="keyword"):
        CrateInfo(title="t", description="d", authors=[Author(name="A", affiliation=org)], keywords=[" "])
    info = CrateInfo(title="t", description="d", authors=[Author(name="A", affiliation=org)], license="MIT")
    assert info.license == "https://spdx.org/licenses/MIT" and info.publisher_org.name == "O"


def test_run_facts_reject_naive_times_and_missing_synthetic_file(tmp_path):
    facts = make_run(tmp_path)
    with pytest.raises(CrateError, match="no time zone"):
        RunFacts(**{**facts.__dict__, "fit_start": datetime(2026, 1, 1)})
    (tmp_path / "data/synthetic.csv").unlink()
    with pytest.raises(CrateError, match="No synthetic table"):
        build_crate(tmp_path, crate_info(), facts)


# -- zip ---------------------------------------------------------------------------------------------
LIMITS = Settings()


def assert_valid_as_a_zip(root: Path, tmp_path: Path) -> ValidationReport:
    """The crate zipped as shipped passes roc-validator on the zip itself and unpacked: 0 issues, 0 skipped."""
    archive = zip_crate(root, tmp_path / f"{root.name}.crate.zip")
    report = validate_crate(archive, limits=LIMITS)
    as_shipped = next(c for c in report.checks if c.name.endswith("on the zip as shipped"))
    assert as_shipped.name.startswith("roc-validator process-run-crate-0.5")
    assert as_shipped.issues == [] and as_shipped.skipped == [], report.summary()
    assert as_shipped.details["executed_checks"] > 50
    assert any(c.name.endswith("on the unpacked copy") for c in report.checks)
    assert report.ok, report.summary()
    return report


def test_zip_round_trip_validates_as_shipped_and_unpacked(built, tmp_path):
    assert_valid_as_a_zip(built, tmp_path)
    archive = tmp_path / f"{built.name}.crate.zip"
    with zipfile.ZipFile(archive) as handle:
        names = handle.namelist()
    assert "ro-crate-metadata.json" in names
    assert {"model/", "data/", "metadata/"} <= set(names)  # the Dataset 'model/' is part of the zip's payload
    unpacked = read_crate_zip(archive, tmp_path / "unpacked", LIMITS)
    assert sha256_file(unpacked / "data/synthetic.csv") == sha256_file(built / "data/synthetic.csv")


def test_cli_validate_reports_roc_validator_on_the_zip_and_unpacked_and_refuses_a_bomb_in_one_sentence(built, tmp_path):
    from typer.testing import CliRunner

    from fairsynth.services.entry.cli import app

    runner = CliRunner()
    good = runner.invoke(app, ["validate", str(zip_crate(built, tmp_path / "good.crate.zip"))])
    assert good.exit_code == 0, good.output
    assert "PASS  roc-validator process-run-crate-0.5 on the zip as shipped (0 issues, 0 skipped)" in good.output
    assert "PASS  roc-validator process-run-crate-0.5 on the unpacked copy (0 issues, 0 skipped)" in good.output
    bomb = hostile_zip(tmp_path / "bomb.zip", {"data/zeros.csv": bytes(4 * 1024 * 1024)})
    refused = runner.invoke(app, ["validate", str(bomb)])
    assert refused.exit_code == 2 and "zip bomb" in refused.output and "Traceback" not in refused.output


def test_a_zip_without_folder_entries_fails_roc_validator_on_the_zip_itself(built, tmp_path):
    archive = tmp_path / "files-only.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(p for p in built.rglob("*") if p.is_file()):
            handle.write(path, path.relative_to(built).as_posix())
    report = validate_crate(archive, limits=LIMITS)
    assert "'model/' as part of its payload" in " ".join(report.issues)
    assert all("on the zip as shipped" in issue for issue in report.issues)  # the unpacked copy passes


def test_validating_a_zip_needs_the_limits(built, tmp_path):
    with pytest.raises(TypeError, match="unpack limits"):
        validate_crate(zip_crate(built, tmp_path / "c.zip"))


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil.txt", "data/../../evil.txt", "C:/evil.txt"])
def test_zip_slip_is_rejected_before_anything_is_written(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ro-crate-metadata.json", "{}")
        handle.writestr(evil, "gotcha")
    dest = tmp_path / "out"
    with pytest.raises(CrateError, match="points outside the crate"):
        read_crate_zip(archive, dest, LIMITS)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists()


def hostile_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """A deflated zip with a crate metadata file and the given entries."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("ro-crate-metadata.json", "{}")
        for name, body in entries.items():
            handle.writestr(name, body)
    return path


@pytest.mark.parametrize(
    ("entries", "limits", "expected"),
    [
        # 4 MiB of zeros deflates to about 4 KB: refused by the ratio long before the size limit
        ({"data/zeros.csv": bytes(4 * 1024 * 1024)}, {}, r"'data/zeros.csv' expands 1,0\d\d times.*zip bomb"),
        ({"data/noise.bin": os.urandom(1536 * 1024)}, {"crate_max_unpacked_mb": 1}, r"unpack to 1.5 MiB, more than"),
        ({f"data/{i}.csv": b"a" for i in range(40)}, {"crate_max_entries": 20}, r"holds 41 entries, more than the 20"),
    ],
    ids=["ratio", "total-size", "entries"],
)
def test_a_zip_past_the_limits_is_refused_in_one_sentence_before_unpacking(tmp_path, entries, limits, expected):
    archive = hostile_zip(tmp_path / "bomb.zip", entries)
    dest = tmp_path / "out"
    with pytest.raises(CrateError, match=expected) as caught:
        validate_crate(archive, limits=LIMITS.with_(**limits))
    assert len(caught.value.problems) == 1 and str(caught.value).endswith(
        "raise the crate limits if the zip is genuine."
    )
    with pytest.raises(CrateError, match=expected):
        read_crate_zip(archive, dest, LIMITS.with_(**limits))
    assert not dest.exists()


def test_the_crate_limits_are_settings(tmp_path):
    settings = Settings.from_env({"FAIRSYNTH_CRATE_MAX_UNPACKED_MB": "2", "FAIRSYNTH_CRATE_MAX_ENTRIES": "9"})
    assert (settings.crate_max_unpacked_bytes, settings.crate_max_entries) == (2 * 1024 * 1024, 9)
    archive = hostile_zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(9)})
    with pytest.raises(CrateError, match="holds 10 entries, more than the 9 allowed"):
        read_crate_zip(archive, tmp_path / "out", settings)


def test_a_symlink_member_is_refused_in_one_sentence(tmp_path):
    archive = tmp_path / "link.zip"
    link = zipfile.ZipInfo("data")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ro-crate-metadata.json", "{}")
        handle.writestr(link, "/etc")
        handle.writestr("data/passwd", "x")
    dest = tmp_path / "out"
    with pytest.raises(CrateError) as caught:
        read_crate_zip(archive, dest, LIMITS)
    assert str(caught.value) == (
        f"{archive} holds symbolic links (data); a crate zip holds only files and folders, so it is refused."
    )
    assert not dest.exists()


def test_a_member_both_file_and_folder_is_refused_in_one_sentence(tmp_path):
    archive = hostile_zip(tmp_path / "clash.zip", {"data": b"a file", "data/x.csv": b"a,b\n"})
    with pytest.raises(CrateError, match=r"lists data twice or as both a file and a folder; rebuild"):
        read_crate_zip(archive, tmp_path / "out", LIMITS)


def test_reading_a_non_zip_says_so(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_text("not a zip")
    with pytest.raises(CrateError, match="not a readable zip"):
        read_crate_zip(bogus, tmp_path / "out", LIMITS)


# -- paths leaving the crate -------------------------------------------------------------------------
SECRET = b"root:x:0:0:the secret outside the crate\n" * 31


def name_outside_file(root: Path, secret: Path, named: str, *, in_pagetab: bool = False) -> None:
    """Make the crate name `named` (which leads to `secret`) as a File with its true hash, or in the PageTab."""
    if in_pagetab:
        path = root / "metadata/biostudies.pagetab.json"
        pagetab = json.loads(path.read_text())
        pagetab["section"]["files"].append({"path": named, "type": "file", "attributes": []})
        path.write_text(json.dumps(pagetab))
        return

    def add(graph, document):
        entity = {"@id": named, "@type": "File", "name": "passwd", "encodingFormat": "text/plain"}
        entity |= {"contentSize": str(len(SECRET)), "sha256": sha256_file(secret)}
        document["@graph"].append(entity)
        graph["./"]["hasPart"].append({"@id": named})

    edit_metadata(root, add)


@pytest.mark.parametrize("in_pagetab", [False, True], ids=["metadata-id", "pagetab-path"])
@pytest.mark.parametrize("how", ["absolute", "dot-dot", "file-uri", "percent-dot-dot", "symlink"])
def test_a_crate_naming_a_file_outside_itself_is_refused_and_nothing_outside_is_read(
    built, tmp_path, monkeypatch, how, in_pagetab
):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    root = broken_copy(built, tmp_path)  # tmp_path/broken, so ../secret.txt is the secret
    named = {
        "absolute": str(secret),
        "dot-dot": "../secret.txt",
        "file-uri": secret.as_uri(),
        "percent-dot-dot": "%2e%2e/secret.txt",
        "symlink": "data/passwd.txt",
    }[how]
    if how == "symlink":
        (root / named).symlink_to(secret)
    name_outside_file(root, secret, named, in_pagetab=in_pagetab)
    hashed = []
    monkeypatch.setattr("fairsynth.metadata.validate.sha256_file", lambda p: hashed.append(p) or "x")
    with pytest.raises(CrateError) as caught:
        validate_crate(root)
    assert str(caught.value) == (
        f"'{named}' points outside the crate (an absolute path, '..', a URI or a link leaving it), "
        "so the crate is refused and nothing outside it is read."
    )
    assert str(len(SECRET)) not in str(caught.value) and hashed == []


def test_a_zipped_crate_naming_a_file_outside_is_refused_before_roc_validator_reads_it(built, tmp_path):
    root = broken_copy(built, tmp_path)
    name_outside_file(root, Path("/etc/hostname"), "/etc/hostname", in_pagetab=True)
    with pytest.raises(CrateError, match="'/etc/hostname' points outside the crate"):
        validate_crate(zip_crate(root, tmp_path / "hostile.zip"), limits=LIMITS)


def test_a_directory_crate_with_a_link_leaving_it_is_refused(built, tmp_path):
    root = broken_copy(built, tmp_path)
    (root / "evaluation/elsewhere").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(CrateError, match="'evaluation/elsewhere' points outside the crate"):
        validate_crate(root)


def test_rebuilding_in_the_same_directory_gives_the_same_valid_crate(built, tmp_path):
    root = broken_copy(built, tmp_path)
    before = graph_of(root)
    build_crate(root, crate_info(), make_run(root))
    after = graph_of(root)
    assert set(after) == set(before)
    assert after["data/synthetic.csv"]["sha256"] == before["data/synthetic.csv"]["sha256"]
    assert validate_crate(root).ok
    assert_valid_as_a_zip(root, tmp_path)


def test_invalid_metadata_json_is_one_clear_error(built, tmp_path):
    root = broken_copy(built, tmp_path)
    (root / "ro-crate-metadata.json").write_text("{not json")
    with pytest.raises(CrateError, match="is not valid JSON"):
        validate_crate(root)
