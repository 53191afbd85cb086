"""Build the project's Dockerfile with podman from a locally made base image (no daemon, no registry here).

The base image (Debian bookworm's Python 3.11, like python:3.11-slim), a wheelhouse and podman's layer
storage are cached in FAIRSYNTH_CONTAINER_CACHE (default ~/.cache/fairsynth/containers) so later runs
are fast; from nothing the whole build takes several minutes. See ../shared/CONTAINERS.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port, wait_for, wait_for_url

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FAIRSYNTH_CONTAINER_CACHE", Path.home() / ".cache" / "fairsynth" / "containers"))
BASE_IMAGE = "localhost/fairsynth-base:bookworm"
IMAGE = "localhost/fairsynth:test"
STANDINS = Path(__file__).resolve().parent / "standins"
POSTGRES_STANDIN = "localhost/fairsynth-postgres:test"
REDIS_STANDIN = "localhost/fairsynth-redis:test"
INPUTS_LABEL = "fairsynth.build-inputs"  # digest of everything a build reads; equal digest, no rebuild
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
MOSTLY_VARIANT = {"WITH_SDV": "1", "WITH_YDATA": "0", "WITH_MOSTLY": "1"}


@dataclass
class Engine:
    """podman with this test's configuration (runc, capped ulimits, storage in the cache)."""

    env: dict

    def run(self, *args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs
        )
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
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        f'[engine]\nruntime = "runc"\ntmp_dir = "{CACHE / "tmp"}"\n'
        f'[network]\nnetwork_config_dir = "{CACHE / "netconf"}"\n'
    )
    (CACHE / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{CACHE / "run"}"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(CACHE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(CACHE / "storage.conf"),
        "BUILDAH_FORMAT": "docker",
    }
    return Engine(env)


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    """A python:3.11-slim stand-in: Debian bookworm minbase with python3, made by debootstrap."""
    if engine.run("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    rootfs = CACHE / f"rootfs-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(
            [_tool("debootstrap"), "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}", "bookworm", str(rootfs)],
            check=True,
            capture_output=True,
            timeout=900,
        )
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
        subprocess.run(
            [
                "podman",
                "import",
                "-q",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                'CMD ["python3"]',
                "-",
                BASE_IMAGE,
            ],
            stdin=tar.stdout,
            env=engine.env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Every pinned wheel, from pip's cache or PyPI, so the build installs with --no-index."""
    house = CACHE / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    pin_sets = [ROOT / "constraints.txt", *(ROOT / "requirements").glob("*.txt")]  # one set per venv
    for pins in filter(Path.is_file, pin_sets):
        if not missing_from(house, pins):  # pip would only re-resolve what is there (~20 s a set)
            continue
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "-d",
                str(house),
                "-r",
                str(pins),
                "setuptools",
                "wheel",
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
    return house


def missing_from(house: Path, pins: Path) -> list[str]:
    """The `name==version` pins (plus setuptools and wheel) with no wheel or sdist in house; any other line counts."""

    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "_", name).lower()

    present, names = set(), set()
    for file in house.iterdir():
        if file.suffix == ".whl":  # name-version-tags.whl, with '-' in the name escaped
            name, version = file.name.split("-")[:2]
        else:  # an sdist: name-version.tar.gz
            name, _, version = file.name.removesuffix(".tar.gz").removesuffix(".zip").rpartition("-")
        present.add((key(name), version.split("+")[0]))  # ==2.13.0 matches 2.13.0+cpu (PEP 440)
        names.add(key(name))
    missing = [tool for tool in ("setuptools", "wheel") if tool not in names]
    for line in pins.read_text().splitlines():
        line = line.split("#")[0].strip()
        pin = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        if line and (pin is None or (key(pin.group(1)), pin.group(3).split("+")[0]) not in present):
            missing.append(line)
    return missing


@pytest.fixture(scope="session")
def image(engine: Engine, base_image: str, wheelhouse: Path) -> str:
    """The project's image, built from its Dockerfile; skipped when nothing it reads has changed."""
    args = build_args(base_image, wheelhouse)
    wheels = sorted(f"{w.name}:{w.stat().st_size}" for w in wheelhouse.iterdir())
    build_cached(engine, IMAGE, ROOT / "Dockerfile", ROOT, args, extra=[image_id(engine, base_image), *args, *wheels])
    return IMAGE


@pytest.fixture(scope="session")
def mostly_image(engine: Engine, base_image: str, wheelhouse: Path) -> str:
    """The image built with WITH_MOSTLY=1 (and WITH_YDATA=0, as the size goals pair them): the MOSTLY AI venv inside."""
    return build_variant(engine, base_image, wheelhouse, "with-mostly", **MOSTLY_VARIANT)


def build_variant(engine: Engine, base_image: str, wheelhouse: Path, name: str, **variant: str) -> str:
    """`IMAGE-name`, built with these build arguments (cached like the default image)."""
    tag = f"{IMAGE}-{name}"
    args = build_args(base_image, wheelhouse, **variant)
    wheels = sorted(f"{w.name}:{w.stat().st_size}" for w in wheelhouse.iterdir())
    build_cached(engine, tag, ROOT / "Dockerfile", ROOT, args, extra=[image_id(engine, base_image), *args, *wheels])
    return tag


def build_args(base_image: str, wheelhouse: Path, **variant: str) -> list[str]:
    """podman build arguments: the local base, every wheel from the wheelhouse (torch from the CPU index's wheel)."""
    args = ["--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", "PIP_ARGS=--no-index"]
    for name, value in variant.items():
        args += ["--build-arg", f"{name}={value}"]
    return [*args, "--build-context", f"wheels={wheelhouse}"]


@pytest.fixture(scope="session")
def standin_images(engine: Engine, base_image: str) -> dict[str, str]:
    """Local stand-ins for postgres:16-alpine and redis:7-alpine (no registry here), built once and cached."""
    args = ["--build-arg", f"BASE_IMAGE={base_image}"]
    extra = [image_id(engine, base_image)]
    build_cached(engine, POSTGRES_STANDIN, STANDINS / "postgres.Dockerfile", STANDINS, args, extra=extra)
    build_cached(engine, REDIS_STANDIN, STANDINS / "redis.Dockerfile", STANDINS, args, extra=extra)
    return {"POSTGRES_IMAGE": POSTGRES_STANDIN, "REDIS_IMAGE": REDIS_STANDIN}


def image_id(engine: Engine, name: str) -> str:
    """The engine's id of a local image."""
    return engine.run("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


def build_cached(
    engine: Engine, tag: str, dockerfile: Path, context: Path, args: list[str], *, extra: list[str]
) -> None:
    """Build tag unless an image with the same inputs digest exists; then drop what the build left dangling.

    Even a fully cached podman build takes minutes here (it re-hashes gigabytes for every COPY --from), so
    the digest of the Dockerfile, the files its COPY lines read and `extra` decides instead.
    """
    digest = build_inputs_digest(dockerfile, context, extra)
    found = engine.run("image", "inspect", "--format", f'{{{{index .Labels "{INPUTS_LABEL}"}}}}', tag, check=False)
    if found.returncode == 0 and found.stdout.strip() == digest:
        return
    built = engine.run(
        "build",
        "-f",
        str(dockerfile),
        *args,
        "--label",
        f"{INPUTS_LABEL}={digest}",
        "-t",
        tag,
        str(context),
        timeout=3000,
    )
    keep_stage_caches(engine, tag, built.stdout + "\n" + built.stderr)
    prune_dangling(engine)


def prune_dangling(engine: Engine) -> None:
    """Remove images no name or child refers to (replaced builds), unless another build is running now.

    Every rebuild leaves its predecessor's layers behind (the cache grew to 23 GB); a build in progress
    shows as an external (buildah) container, and its unnamed stage images must not go under it.
    """
    if engine.run("ps", "-a", "--external", "-q", check=False).stdout.strip():
        return
    engine.run("image", "prune", "-f", check=False)


def build_inputs_digest(dockerfile: Path, context: Path, extra: list[str]) -> str:
    """SHA-256 over the Dockerfile, .dockerignore, every file its COPY lines take from the context, and extra."""
    digest = hashlib.sha256(dockerfile.read_bytes())
    ignore = context / ".dockerignore"
    digest.update(ignore.read_bytes() if ignore.is_file() else b"")
    for item in extra:
        digest.update(item.encode())
    for source in copy_sources(dockerfile):
        root = context / source
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(context)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def copy_sources(dockerfile: Path) -> list[str]:
    """The context paths the Dockerfile's COPY lines read (not COPY --from, which reads a stage or context)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] != ["COPY"] or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def keep_stage_caches(engine: Engine, tag: str, build_log: str) -> None:
    """Name each earlier stage's last layer (`<tag>-stage-N`) so pruning dangling images keeps its build cache.

    A multi-stage build's earlier stages end in images nothing refers to: `podman image prune` would take them,
    and with them the cache of the slow dependency installs. Images of replaced builds stay unnamed and go.
    """
    last_id = None
    for line in build_log.splitlines():
        header = re.match(r"\[(\d+)/\d+\] STEP 1/", line)  # a stage begins: last_id ended the one before
        if header and last_id and int(header.group(1)) > 1:
            engine.run("tag", last_id, f"{tag}-stage-{int(header.group(1)) - 1}", check=False)
        step = re.fullmatch(r"--> ([0-9a-f]{11,64})", line.strip())
        if step:
            last_id = step.group(1)


def stderr_if_exited(process: subprocess.Popen) -> str:
    """The tail of an exited process's stderr (reading a running one's would block)."""
    return process.stderr.read().decode()[-2000:] if process.poll() is not None else "(still running)"


@pytest.fixture(scope="session")
def docker_socket(engine: Engine, tmp_path_factory) -> str:
    """podman's Docker-compatible API on a private unix socket (base URL); the service is stopped by PID."""
    socket_path = tmp_path_factory.mktemp("podman-api") / "podman.sock"
    url = f"unix://{socket_path}"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        env=engine.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            socket_path.exists,
            60,
            process=service,
            message=lambda: f"podman system service did not start: {stderr_if_exited(service)}",
        )
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
    wait_for(lambda: answers_ping(client), 30, interval=0.5, message="podman's Docker API did not answer ping")
    yield client
    client.close()


def answers_ping(client) -> bool:
    """True when the engine answers the SDK's ping now."""
    import docker

    try:
        return client.ping()
    except docker.errors.DockerException:
        return False


@pytest.fixture
def container(image: str, docker_client):
    """Start containers from the image through the docker SDK: read-only root, a tmpfs /tmp and a fresh /data
    volume; every one is removed with its volume at the end."""
    import docker

    started, volumes = [], []

    def start(*, ports: dict | None = None, environment: dict | None = None, command: tuple[str, ...] = ()):
        volume = docker_client.volumes.create(f"fairsynth-test-{uuid.uuid4().hex[:8]}")
        volumes.append(volume)
        created = docker_client.containers.run(
            image,
            list(command) or None,
            detach=True,
            read_only=True,
            tmpfs={"/tmp": ""},
            ports=ports or {},
            environment=environment or {},
            volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        )
        started.append(created)
        return created

    yield start
    for created in started:
        with contextlib.suppress(docker.errors.NotFound):
            created.remove(force=True, v=True)
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)


@dataclass
class ComposeStack:
    """A running `distributed` profile: its project name, URLs, token, database password, time to each stage."""

    project: str
    api: str
    ui: str
    token: str
    password: str
    seconds: dict

    def container(self, service: str) -> str:
        """The name podman-compose gives the service's (only) container."""
        return f"{self.project}_{service}_1"


def compose_command(project: str, *profiles: str) -> list[str]:
    """podman-compose on the project's docker-compose.yml with these profiles."""
    command = [
        str(Path(sys.executable).with_name("podman-compose")),
        "-p",
        project,
        "-f",
        str(ROOT / "docker-compose.yml"),
    ]
    for profile in profiles:
        command += ["--profile", profile]
    return command


def wait_healthy(engine: Engine, container: str, seconds: float = 120) -> None:
    """Run the container's own healthcheck until it passes (podman here has no systemd timer to run it)."""

    def logs() -> str:
        tail = engine.run("logs", "--tail", "30", container, check=False)
        return f"{container} not healthy:\n{tail.stdout[-2000:]}{tail.stderr[-2000:]}"

    wait_for(
        lambda: engine.run("healthcheck", "run", container, check=False).returncode == 0,
        seconds,
        interval=1,
        message=logs,
    )


def process_status(engine: Engine, container: str) -> dict[str, str]:
    """The /proc/1/status fields of a running container's main process (CapEff, NoNewPrivs, ...)."""
    status = engine.run("exec", container, "cat", "/proc/1/status").stdout
    return dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)


def assert_hardened(engine: Engine, container: str) -> None:
    """The container runs on a read-only root with no capabilities and cannot gain privileges."""
    info = json.loads(engine.run("inspect", container).stdout)[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True, container
    status = process_status(engine, container)
    assert int(status["CapEff"].strip(), 16) == 0, (container, status["CapEff"])
    assert int(status["CapBnd"].strip(), 16) == 0, (container, status["CapBnd"])
    assert status["NoNewPrivs"].strip() == "1", container


def compose_env(engine: Engine, tmp_path: Path, **variables: str) -> dict:
    """The environment compose runs in: a token and a PostgreSQL password file (readable by the services' users)."""
    password = tmp_path / "postgres_password"
    password.write_text(uuid.uuid4().hex + "\n")
    password.chmod(0o644)
    return {
        **engine.env,
        "FAIRSYNTH_API_TOKEN": uuid.uuid4().hex,
        "FAIRSYNTH_POSTGRES_PASSWORD_FILE": str(password),
        **variables,
    }


@pytest.fixture
def compose_stack(engine: Engine, image: str, standin_images: dict[str, str], tmp_path: Path):
    """docker-compose.yml's `distributed` profile, brought up with podman-compose and always taken down.

    podman-compose skips `depends_on: condition: service_healthy` with podman < 4.6 (this machine has 4.3,
    whose healthchecks also need a systemd timer it lacks), so the stack comes up in the order those
    conditions give: postgres + redis, then the API, then the UI and the workers (`up -d --no-deps`),
    each stage waiting for the containers' own healthchecks (run by hand).
    """
    project = f"fstest{uuid.uuid4().hex[:8]}"
    api_port, ui_port, app_port = free_port(), free_port(), free_port()
    env = compose_env(
        engine,
        tmp_path,
        **standin_images,
        FAIRSYNTH_IMAGE=image,
        FAIRSYNTH_API_PORT=str(api_port),
        FAIRSYNTH_DISTRIBUTED_UI_PORT=str(ui_port),
        FAIRSYNTH_UI_PORT=str(app_port),
    )
    command = compose_command(project, "distributed")
    token, password = env["FAIRSYNTH_API_TOKEN"], Path(env["FAIRSYNTH_POSTGRES_PASSWORD_FILE"]).read_text().strip()
    stack = ComposeStack(project, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}", token, password, {})

    def up(*services: str) -> None:
        done = subprocess.run(
            [*command, "up", "-d", "--no-deps", *services],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    try:
        start = time.monotonic()
        up("postgres", "redis")
        wait_healthy(engine, stack.container("postgres"))
        wait_healthy(engine, stack.container("redis"))
        stack.seconds["stores_healthy"] = time.monotonic() - start
        up("api")
        wait_for_url(f"{stack.api}/health")
        wait_healthy(engine, stack.container("api"))
        stack.seconds["api_healthy"] = time.monotonic() - start
        up("ui", "worker-torch-sdv", "worker-ydata", "worker-mostly")
        wait_for_url(f"{stack.ui}/_stcore/health")
        wait_healthy(engine, stack.container("ui"))
        stack.seconds["all_healthy"] = time.monotonic() - start
        yield stack
    finally:
        compose_down(engine, command, env)


def compose_down(engine: Engine, command: list[str], env: dict) -> None:
    """`down -t 2 -v`, then remove by name whatever it missed (a half-started project)."""
    project = command[command.index("-p") + 1]
    subprocess.run([*command, "down", "-t", "2", "-v"], env=env, capture_output=True, timeout=300, cwd=ROOT)
    label = f"label=io.podman.compose.project={project}"
    for cid in engine.run("ps", "-a", "-q", "--filter", label, check=False).stdout.split():
        engine.run("rm", "-f", "-v", "-t", "2", cid, check=False)
    for volume in ("fairsynth-app-data", "fairsynth-data", "postgres-data", "redis-data"):
        engine.run("volume", "rm", "-f", f"{project}_{volume}", check=False)
    engine.run("network", "rm", "-f", f"{project}_default", check=False)
