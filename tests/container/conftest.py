"""Build the project's Dockerfile with podman from a locally made base image (no daemon, no registry here).

The base image (Debian bookworm's Python 3.11, like python:3.11-slim), a wheelhouse and podman's layer
storage are cached in FAIRSYNTH_CONTAINER_CACHE (default ~/.cache/fairsynth/containers) so later runs
are fast; from nothing the whole build takes several minutes. See ../shared/CONTAINERS.md.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FAIRSYNTH_CONTAINER_CACHE", Path.home() / ".cache" / "fairsynth" / "containers"))
BASE_IMAGE = "localhost/fairsynth-base:bookworm"
IMAGE = "localhost/fairsynth:test"
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"


@dataclass
class Engine:
    """podman with this test's configuration (runc, capped ulimits, storage in the cache)."""

    env: dict

    def run(self, *args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              **kwargs)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-3000:]}")
        return done


def _tool(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


@pytest.fixture(scope="session")
def engine() -> Engine:
    missing = [t for t in ("podman", "debootstrap", "runc") if _tool(t) is None]
    if missing:
        pytest.skip(f"container tests need {', '.join(missing)} (scripts/system-deps.sh installs them as root)")
    if os.geteuid() != 0:
        pytest.skip("container tests build a base image with debootstrap, which needs root")
    for sub in ("storage", "run", "tmp", "netconf"):
        (CACHE / sub).mkdir(parents=True, exist_ok=True)
    (CACHE / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        f'[engine]\nruntime = "runc"\ntmp_dir = "{CACHE / "tmp"}"\n[network]\nnetwork_config_dir = "{CACHE / "netconf"}"\n')
    (CACHE / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{CACHE / "run"}"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(CACHE / "storage.conf"), "BUILDAH_FORMAT": "docker"}
    return Engine(env)


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """A python:3.11-slim stand-in: Debian bookworm minbase with python3, made by debootstrap."""
    if engine.run("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    rootfs = CACHE / f"rootfs-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([_tool("debootstrap"), "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", "bookworm",
                        str(rootfs)], check=True, capture_output=True, timeout=900)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        local_cas = list(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for ca in local_cas:  # builds reach PyPI through this host's TLS setup
            shutil.copy(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        if local_cas:
            subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "-q", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                        "/usr/bin:/sbin:/bin", "--change", 'CMD ["python3"]', "-", BASE_IMAGE],
                       stdin=tar.stdout, env=engine.env, check=True, capture_output=True, timeout=600)
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Every pinned wheel, from pip's cache or PyPI, so the build installs with --no-index."""
    house = CACHE / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    pin_sets = [ROOT / "constraints.txt", ROOT / "requirements" / "ydata-constraints.txt"]  # two venvs, two sets
    for pins in filter(Path.is_file, pin_sets):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(house), "-r", str(pins),
                        "setuptools", "wheel"], check=True, capture_output=True, timeout=1800)
    return house


@pytest.fixture(scope="session")
def image(engine: Engine, base_image: str, wheelhouse: Path) -> str:
    """The project's image, built from its Dockerfile (cached layers make rebuilds quick)."""
    engine.run("build", "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", "TORCH_INDEX_URL=",
               "--build-arg", "PIP_ARGS=--no-index", "--build-context", f"wheels={wheelhouse}",
               "-t", IMAGE, str(ROOT), timeout=3000)
    return IMAGE


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 180, headers: dict | None = None) -> httpx.Response:
    """Poll url until it answers 200 (the first tries are refused while the container starts)."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=3, headers=headers)
            if response.status_code == 200:
                return response
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise AssertionError(f"{url} did not answer in {seconds} s (last: {last})")


@pytest.fixture(scope="session")
def docker_socket(engine: Engine, tmp_path_factory) -> str:
    """podman's Docker-compatible API on a private unix socket (base URL); the service is stopped by PID."""
    socket_path = tmp_path_factory.mktemp("podman-api") / "podman.sock"
    url = f"unix://{socket_path}"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", url], env=engine.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"podman system service did not start: {service.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()


@pytest.fixture(scope="session")
def docker_client(docker_socket: str):
    """The docker Python SDK speaking to the engine through podman's socket."""
    import docker
    client = docker.DockerClient(base_url=docker_socket, timeout=120)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except docker.errors.DockerException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield client
    client.close()


@pytest.fixture
def container(engine: Engine, image: str):
    """Start containers from the image; every one is removed (with its volume) at the end."""
    started, volumes = [], []

    def start(*args: str, command: tuple[str, ...] = ()) -> str:
        volume = f"fairsynth-test-{uuid.uuid4().hex[:8]}"
        volumes.append(volume)
        cid = engine.run("run", "-d", "--read-only", "--tmpfs", "/tmp", "-v", f"{volume}:/data", *args, image,
                         *command).stdout.strip()
        started.append(cid)
        return cid

    yield start
    for cid in started:
        engine.run("rm", "-f", "-t", "2", cid, check=False)
    for volume in volumes:
        engine.run("volume", "rm", "-f", volume, check=False)
