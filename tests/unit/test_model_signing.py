"""Saved pickles are signed with the installation's key: a hostile model folder with a matching hash is refused.

The ydata adapter's load takes a private copy of the pickle for the worker only when this installation's
key signed it; an unsigned, tampered or foreign-signed pickle is refused before any worker unpickles it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat

import pytest

import fairsynth.backends.ydata as ydata
from fairsynth.backends.base import ModelFileError
from fairsynth.backends.signing import MODEL_KEY_ENV, check_signature, installation_key, signature


class RunsCode:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    """This installation's key file, outside every model folder."""
    path = tmp_path / "data" / "model-signing.key"
    monkeypatch.setenv(MODEL_KEY_ENV, str(path))
    return path


def saved_model(tmp_path, name="model"):
    """A ydata model folder as save() writes it, from a fitted generator's (here: hostile) pickle."""
    generator = ydata.FastGenerator()
    generator._model_path.write_bytes(pickle.dumps(RunsCode(str(tmp_path / "code-ran"))))
    directory = tmp_path / name
    directory.mkdir()
    generator._save_model(directory)
    return directory


def loads(directory) -> bool:
    """Whether a fresh generator accepts the folder's pickle (its private copy for the worker is kept)."""
    generator = ydata.FastGenerator()
    try:
        generator._load_model(directory)
    except ModelFileError:
        assert not generator._model_path.exists()  # nothing left for a worker to unpickle
        raise
    return generator._model_path.is_file()


def test_the_key_is_made_once_owner_only_and_outside_the_model(key_file):
    key = installation_key(create=True)
    assert len(key) == 32 and installation_key(create=True) == key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_signatures_check_the_bytes_and_the_key(tmp_path, key_file):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"model bytes")
    key = installation_key(create=True)
    signed = signature(path, key)
    check_signature(path, signed, key)
    with pytest.raises(ModelFileError, match="was not signed by this installation's key"):
        check_signature(path, signed, b"k" * 32)
    path.write_bytes(b"model bytes, changed")
    with pytest.raises(ModelFileError, match="was not signed by this installation's key"):
        check_signature(path, signed, key)
    with pytest.raises(ModelFileError, match="carries no signature"):
        check_signature(path, None, key)


def test_a_saved_model_signed_here_loads(tmp_path, key_file):
    directory = saved_model(tmp_path)
    info = json.loads((directory / ydata.MODEL_INFO).read_text())
    assert info["signature"]["algorithm"] == "HMAC-SHA256"
    assert str(key_file) not in json.dumps(info) and not list(directory.glob("*.key"))
    assert loads(directory)
    assert not (tmp_path / "code-ran").exists()  # this process never unpickles it


def test_a_hostile_folder_with_a_matching_hash_is_refused(tmp_path, key_file):
    directory = saved_model(tmp_path)
    hostile = pickle.dumps(RunsCode(str(tmp_path / "code-ran")), protocol=2)  # other bytes, same effect
    (directory / ydata.MODEL_FILE).write_bytes(hostile)
    info = json.loads((directory / ydata.MODEL_INFO).read_text())
    info.pop("signature")
    info["sha256"] = hashlib.sha256(hostile).hexdigest()  # what the old check trusted
    (directory / ydata.MODEL_INFO).write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match="carries no signature"):
        loads(directory)


def test_a_tampered_pickle_is_refused(tmp_path, key_file):
    directory = saved_model(tmp_path)
    with open(directory / ydata.MODEL_FILE, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ModelFileError, match="was not signed by this installation's key"):
        loads(directory)


def test_a_model_signed_by_another_installation_is_refused(tmp_path, key_file, monkeypatch):
    monkeypatch.setenv(MODEL_KEY_ENV, str(tmp_path / "elsewhere" / "model-signing.key"))
    directory = saved_model(tmp_path)  # signed with the other installation's key
    monkeypatch.setenv(MODEL_KEY_ENV, str(key_file))
    installation_key(create=True)
    with pytest.raises(ModelFileError, match="was not signed by this installation's key"):
        loads(directory)


def test_without_a_key_nothing_is_signed_or_loaded(tmp_path, key_file, monkeypatch):
    directory = saved_model(tmp_path)
    monkeypatch.delenv(MODEL_KEY_ENV)
    with pytest.raises(ModelFileError, match=f"{MODEL_KEY_ENV} is not set"):
        loads(directory)
    with pytest.raises(ModelFileError, match=f"{MODEL_KEY_ENV} is not set"):
        saved_model(tmp_path, "again")


def test_the_services_name_the_key_in_the_data_dir(tmp_path, monkeypatch):
    from fairsynth.services.settings import Settings

    monkeypatch.delenv(MODEL_KEY_ENV, raising=False)
    settings = Settings.from_env({"FAIRSYNTH_DATA_DIR": str(tmp_path / "data")})
    assert settings.model_key_file == tmp_path / "data" / "model-signing.key"
    assert settings.environment()[MODEL_KEY_ENV] == str(settings.model_key_file)
    settings.ensure_dirs()
    assert os.environ[MODEL_KEY_ENV] == str(settings.model_key_file)
