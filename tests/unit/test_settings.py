"""Environment settings: defaults, one sentence per bad value naming the variable, README agrees with the fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fairsynth.errors import FairsynthError
from fairsynth.services.settings import Settings, SettingsError, env_name

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_ROW = re.compile(r"^\| `(FAIRSYNTH_\w+)` \| (.+?) \| (.+?) \|$", re.MULTILINE)


def readme_rows() -> dict[str, tuple[str, str]]:
    """The README's "Configuration (environment)" rows: variable -> (meaning, default)."""
    section = README.read_text(encoding="utf-8").split("## Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    return {name: (meaning, default) for name, meaning, default in TABLE_ROW.findall(section)}


def test_defaults_without_any_variable(tmp_path):
    settings = Settings.from_env({})
    assert settings.data_dir == Path("~/.fairsynth").expanduser().resolve()
    assert settings.database_url == f"sqlite:///{settings.data_dir / 'fairsynth.db'}"
    assert (settings.broker_url, settings.executor, settings.api_token) == (None, "local", None)
    assert settings.max_upload_bytes == 200 * 1024 * 1024
    assert (settings.workers, settings.stale_seconds) == (2, 120.0)


def test_every_variable_is_read(tmp_path):
    settings = Settings.from_env(
        {
            "FAIRSYNTH_DATA_DIR": str(tmp_path),
            "FAIRSYNTH_DATABASE_URL": "postgresql+psycopg://u:p@db/jobs",
            "FAIRSYNTH_BROKER_URL": "redis://broker:6379/0",
            "FAIRSYNTH_API_TOKEN": "s3cret",
            "FAIRSYNTH_MAX_UPLOAD_MB": "1.5",
            "FAIRSYNTH_WORKERS": "4",
            "FAIRSYNTH_STALE_SECONDS": "30",
        }
    )
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database_url == "postgresql+psycopg://u:p@db/jobs"
    assert settings.executor == "celery"  # a broker makes celery the default executor
    assert settings.api_token == "s3cret"
    assert settings.max_upload_bytes == int(1.5 * 1024 * 1024)
    assert (settings.workers, settings.stale_seconds) == (4, 30.0)


def test_empty_values_mean_the_default_and_the_executor_name_ignores_case(tmp_path):
    settings = Settings.from_env(
        {"FAIRSYNTH_WORKERS": "", "FAIRSYNTH_EXECUTOR": "LOCAL", "FAIRSYNTH_BROKER_URL": "redis://b"}
    )
    assert (settings.workers, settings.executor) == (2, "local")


def test_task_processes_keep_freed_memory_unless_told_otherwise(tmp_path):
    """A task's environment asks the allocators to keep freed memory; a value the user set wins; `false` adds none."""
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path)})
    env = settings.task_environment({"PATH": "/bin", "MIMALLOC_PURGE_DELAY": "10"})
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 << 20) and env["MALLOC_MMAP_THRESHOLD_"] == str(64 << 20)
    assert env["MIMALLOC_PURGE_DELAY"] == "10" and env["PATH"] == "/bin"
    assert env["FAIRSYNTH_DATA_DIR"] == str(tmp_path.resolve())
    off = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path), "FAIRSYNTH_REUSE_TASK_MEMORY": "false"})
    assert not any(name.startswith(("MALLOC_", "MIMALLOC_")) for name in off.task_environment({"PATH": "/bin"}))


def test_an_explicit_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("FAIRSYNTH_WORKERS", "7")
    assert Settings.from_env().workers == 7
    assert Settings.from_env({}).workers == 2


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"FAIRSYNTH_EXECUTOR": "bogus"}, "FAIRSYNTH_EXECUTOR is 'bogus'; it must be one of 'local' or 'celery'."),
        (
            {"FAIRSYNTH_EXECUTOR": "celery"},
            "FAIRSYNTH_EXECUTOR is 'celery' but FAIRSYNTH_BROKER_URL is not set; "
            "give the Redis URL, e.g. redis://localhost:6379/0.",
        ),
        ({"FAIRSYNTH_MAX_UPLOAD_MB": "lots"}, "FAIRSYNTH_MAX_UPLOAD_MB is 'lots'; it must be a number."),
        ({"FAIRSYNTH_MAX_UPLOAD_MB": "-5"}, "FAIRSYNTH_MAX_UPLOAD_MB is '-5'; it must be > 0."),
        ({"FAIRSYNTH_WORKERS": "0"}, "FAIRSYNTH_WORKERS is '0'; it must be > 0."),
        ({"FAIRSYNTH_WORKERS": "2.5"}, "FAIRSYNTH_WORKERS is '2.5'; it must be a whole number."),
        ({"FAIRSYNTH_STALE_SECONDS": "soon"}, "FAIRSYNTH_STALE_SECONDS is 'soon'; it must be a number."),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable(env, sentence):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == sentence
    assert isinstance(caught.value, FairsynthError)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FAIRSYNTH_WORKERS": "many", "FAIRSYNTH_STALE_SECONDS": "0"})
    assert str(caught.value) == (
        "FAIRSYNTH_WORKERS is 'many'; it must be a whole number. FAIRSYNTH_STALE_SECONDS is '0'; it must be > 0."
    )


def test_the_readme_table_agrees_with_the_fields():
    rows = readme_rows()
    for field_name, field in Settings.model_fields.items():
        variable = env_name(field_name)
        assert variable in rows, f"{variable} is missing from the README table"
        meaning, default = rows[variable]
        assert meaning == field.description, variable
        if field.default not in (None, ""):  # the others are derived (database in the data dir, executor from broker)
            if isinstance(field.default, bool):
                shown = str(field.default).lower()
            elif isinstance(field.default, float):
                shown = f"{field.default:g}"
            else:
                shown = str(field.default)
            assert shown in default, f"README gives {default!r} as the default of {variable}, the field {shown!r}"


def test_worker_environment_round_trips(tmp_path):
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path), "FAIRSYNTH_BROKER_URL": "redis://b:6379/0"})
    assert Settings.from_env(settings.environment()) == settings


def test_the_database_password_comes_from_a_secret_file(tmp_path):
    secret = tmp_path / "postgres_password"
    secret.write_text("p@ss:w/rd\n")  # as `openssl rand` or an editor leaves it, with characters a URL must escape
    settings = Settings.from_env(
        {
            "FAIRSYNTH_DATABASE_URL": "postgresql+psycopg://fairsynth@postgres:5432/fairsynth",
            "FAIRSYNTH_DATABASE_PASSWORD_FILE": str(secret),
        }
    )
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == ("fairsynth", "p@ss:w/rd", "postgres", "fairsynth")


def test_an_unreadable_password_file_is_one_sentence(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "FAIRSYNTH_DATABASE_URL": "postgresql+psycopg://u@db/jobs",
                "FAIRSYNTH_DATABASE_PASSWORD_FILE": str(missing),
            }
        )
    assert str(raised.value).startswith(f"FAIRSYNTH_DATABASE_PASSWORD_FILE names {missing}, which cannot be read")
