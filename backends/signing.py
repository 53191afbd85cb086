"""HMAC signatures for saved model files that run code when loaded (the ydata pickle).

A hash stored next to a pickle proves nothing: whoever writes a hostile model folder writes the
matching hash too. The signature is an HMAC-SHA256 with a per-installation key that lives outside
every model folder (the services keep it in the data directory and name it in FAIRSYNTH_MODEL_KEY_FILE),
so only this installation can make a signature its loader accepts. Backends never import services:
the key file's path reaches them through that variable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from fairsynth.backends.base import ModelFileError

MODEL_KEY_ENV = "FAIRSYNTH_MODEL_KEY_FILE"
KEY_BYTES = 32
ALGORITHM = "HMAC-SHA256"
CHUNK = 1 << 20


def key_file() -> Path:
    """The installation's key file, as the services name it in FAIRSYNTH_MODEL_KEY_FILE."""
    configured = os.environ.get(MODEL_KEY_ENV)
    if not configured:
        raise ModelFileError(
            f"{MODEL_KEY_ENV} is not set, so a pickled model can be neither signed nor checked; set it to the "
            "installation's key file (fairsynth's CLI, API, UI and workers use model-signing.key in the data dir)."
        )
    return Path(configured)


def installation_key(*, create: bool) -> bytes:
    """The signing key; with `create`, a new random one is written (owner-only) when there is none yet."""
    path = key_file()
    if create and not path.exists():
        _write_new_key(path)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(
            f"The model signing key {path} cannot be read ({exc.strerror}); check {MODEL_KEY_ENV}."
        ) from None
    if len(key) < KEY_BYTES:
        raise ModelFileError(f"The model signing key {path} is shorter than {KEY_BYTES} bytes; remove it to make one.")
    return key


def signature(path: Path, key: bytes) -> str:
    """The file's HMAC-SHA256 under key, as hex."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            mac.update(chunk)
    return mac.hexdigest()


def check_signature(path: Path, signed: object, key: bytes) -> None:
    """Refuse a file that is unsigned or whose signature this installation's key did not make."""
    if not isinstance(signed, str) or not signed:
        raise ModelFileError(f"{path.name} carries no signature, so it may not be loaded; fit the backend again.")
    if not hmac.compare_digest(signature(path, key), signed):
        raise ModelFileError(
            f"{path.name} was not signed by this installation's key (changed, or saved elsewhere), so it may not be "
            "loaded; fit the backend again here."
        )


def _write_new_key(path: Path) -> None:
    """A fresh random key, created atomically: of two processes racing, one key wins and both read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
