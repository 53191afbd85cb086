"""A crate from every available backend's real run on SUPPORT2 validates offline: zero issues, zero skipped."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backends import registry
from metadata.crate import Author, CrateInfo, Organization, RunFacts, SourceFacts, build_crate, zip_crate
from metadata.schema import TableSchema
from metadata.validate import validate_crate
from services import pipeline
from services.config import BackendSpec, GenerationRequest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PLACEHOLDER_URL = "https://example.org/fairsynth/backends/"  # in-house backends declare no URL yet


def support2_csv(path: Path, rows: int = 600) -> Path:
    from SurvSet.data import SurvLoader
    data = SurvLoader().load_dataset("support2")["df"].sample(rows, random_state=0)
    data.to_csv(path, index=False)
    return path


def quick_params(info: registry.BackendInfo) -> dict:
    return {"epochs": 2} if "epochs" in info.parameters else {}


def facts_for(backend_dir: Path, run_dir: Path, name: str, others: dict[str, dict]) -> RunFacts:
    """RunFacts from what the pipeline wrote (times from its clock: created + the measured seconds)."""
    generation = json.loads((backend_dir / "config/generation.json").read_text())
    metrics = json.loads((backend_dir / "evaluation/metrics.json").read_text())
    schema = TableSchema.from_json((run_dir / "schema.json").read_text())
    caps = registry.backend_info(name).capabilities
    packages = generation["packages"]
    fit, started = generation["fit"], datetime.fromisoformat(generation["created"])
    sample_seconds = metrics["rows"] / max(others[name]["rows_per_second"] or 1.0, 1e-9)
    return RunFacts(
        backend=name, backend_version=packages.get("sdv" if name.startswith("sdv.") else "fairsynth", "0"),
        backend_url=caps.url or PLACEHOLDER_URL + name, backend_license=caps.license,
        model_family=caps.description.split(":")[0], backend_description=caps.description, schema=schema,
        source=SourceFacts(rows=generation["source"]["rows"], columns=generation["source"]["columns"],
                           sha256=generation["source"]["sha256"], kind="intensive-care patient records (SUPPORT2)",
                           name=generation["source"]["name"]),
        seed=generation["request"]["seed"], fit_start=started, fit_end=started + timedelta(seconds=fit["seconds"]),
        sample_start=started + timedelta(seconds=fit["seconds"]),
        sample_end=started + timedelta(seconds=fit["seconds"] + sample_seconds),
        train_rows=generation["split"]["train_rows"], holdout_rows=generation["split"]["holdout_rows"],
        split_seed=generation["split"]["seed"], synthetic_rows=metrics["rows"], params=generation["backend"]["params"],
        fit_seconds=fit["seconds"], epochs=fit.get("epochs"), losses=fit.get("losses") or [],
        epsilon=fit.get("epsilon"), delta=fit.get("delta"), metrics=metrics,
        comparison={o: {"quality": v["quality"]} for o, v in others.items() if o != name}, packages=packages)


AVAILABLE = [b for b in registry.list_backends() if b.available]


@pytest.fixture(scope="module")
def support2_run(tmp_path_factory):
    """One pipeline run of every available backend (2 epochs where trained) on 600 SUPPORT2 rows."""
    tmp = tmp_path_factory.mktemp("support2")
    request = GenerationRequest(
        input_path=str(support2_csv(tmp / "support2.csv")), output_dir=str(tmp / "run"), rows=300,
        evaluation_rows=300, seed=3, backends=[BackendSpec(name=b.name, params=quick_params(b)) for b in AVAILABLE])
    result = pipeline.run(request)
    done = {o.backend: {"quality": o.quality.get("quality"), "rows_per_second": o.rows_per_second}
            for o in result.outcomes if o.ok}
    return result, done, tmp


def test_marginals_is_among_the_available_backends():
    assert "marginals" in [b.name for b in AVAILABLE]


@pytest.mark.parametrize("backend", [b.name for b in AVAILABLE])
def test_backend_run_on_support2_yields_a_crate_with_zero_issues_and_zero_skipped(support2_run, backend):
    result, done, tmp = support2_run
    outcome = next(o for o in result.outcomes if o.backend == backend)
    assert outcome.ok, outcome.error
    info = CrateInfo(title="Synthetic SUPPORT2 sample", description="Synthetic intensive-care patients",
                     authors=[Author(name="Ada Lovelace", orcid="0000-0002-1825-0097",
                                     affiliation=Organization(name="University College London", ror="02jx3x895"))],
                     keywords=["synthetic data", "SUPPORT2", "intensive care"])
    backend_dir = Path(outcome.directory)
    build_crate(backend_dir, info, facts_for(backend_dir, result.directory, backend, done))
    report = validate_crate(zip_crate(backend_dir, tmp / f"{backend}.crate.zip"))
    assert report.issues == [], report.summary()
    assert report.skipped == [], report.summary()
    assert report.checks[0].details["executed_checks"] > 50
    graph = {e["@id"]: e for e in json.loads((backend_dir / "ro-crate-metadata.json").read_text())["@graph"]}
    assert len(graph["./"]["variableMeasured"]) == 38
    assert "SUPPORT2" in graph["./"]["description"]
    assert graph[graph["#fit"]["instrument"]["@id"]]["name"] == backend
