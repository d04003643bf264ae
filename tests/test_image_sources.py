"""Which images `create` rebuilds: each image is labelled with a digest of the sources it was
built from, so a toolkit whose code changed never deploys images of older code (the server image
used to stay stale after the pipeline image was rebuilt). A real podman image is labelled and
read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlaas4hep_cli.images import IMAGES, SOURCE_LABEL, image_source, source_digest

REPO = Path(__file__).resolve().parents[1]
BY_NAME = {spec.name: spec for spec in IMAGES}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copy of the sources the images are built from."""
    for part in ("mlaas4hep/src", "cli/src", "images/pipeline", "images/server", "images/gateway"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in (
        "mlaas4hep/pyproject.toml",
        "cli/pyproject.toml",
        "images/wheelhouse-constraints.txt",
    ):
        shutil.copy(REPO / part, tmp_path / part)
    return tmp_path


def test_a_change_to_the_pipeline_code_makes_the_python_images_stale(home: Path) -> None:
    before = {
        name: source_digest(home, BY_NAME[name]) for name in ("pipeline", "server", "gateway")
    }
    cache = home / "mlaas4hep/src/mlaas4hep/__pycache__"
    cache.mkdir()
    (cache / "workflow.cpython-311.pyc").write_bytes(b"compiled")
    assert source_digest(home, BY_NAME["server"]) == before["server"], "caches are not sources"

    broker = home / "mlaas4hep/src/mlaas4hep/cluster/broker.py"
    broker.write_text(broker.read_text() + "\n# changed\n")
    assert source_digest(home, BY_NAME["pipeline"]) != before["pipeline"]
    assert source_digest(home, BY_NAME["server"]) != before["server"]
    assert source_digest(home, BY_NAME["gateway"]) == before["gateway"], "no Python in it"


@pytest.mark.integration
def test_the_label_of_a_built_image_is_read_back(tmp_path: Path) -> None:
    from support.podman import ensure_base_image

    base = ensure_base_image()
    reference = "localhost/mlaas4hep-label-test:latest"
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\n")
    try:
        assert image_source("podman", reference) is None
        subprocess.run(
            [
                "podman",
                "build",
                "-q",
                "--label",
                f"{SOURCE_LABEL}=abc123",
                "-t",
                reference,
                str(tmp_path),
            ],
            check=True,
            capture_output=True,
        )
        assert image_source("podman", reference) == "abc123"
    finally:
        subprocess.run(["podman", "rmi", "-f", reference], capture_output=True, check=False)
    assert image_source("podman", base) == ""


@pytest.mark.integration
def test_a_build_reports_each_step_with_the_time_spent(tmp_path: Path) -> None:
    """`images build` (and `create`) say which step each image is on, not minutes of silence."""
    import time

    from mlaas4hep_cli.images import run_build

    from support.podman import ensure_base_image

    base = ensure_base_image()
    reference = "localhost/mlaas4hep-steps-test:latest"
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo one > /one\nRUN echo two > /two\n")
    seen: list[str] = []
    command = ["podman", "build", "--no-cache", "-t", reference, str(tmp_path)]
    try:
        code, _ = run_build(command, reference, time.perf_counter(), seen.append)
    finally:
        subprocess.run(["podman", "rmi", "-f", reference], capture_output=True, check=False)
    assert code == 0
    steps = [line for line in seen if ": step " in line]
    assert [line.split(": step ")[1].split(" ")[0] for line in steps] == ["1/3", "2/3", "3/3"]
    assert "RUN echo two > /two" in steps[-1] and " s) " in steps[-1]

    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN exit 3\n")
    code, tail = run_build(
        ["podman", "build", "-t", reference, str(tmp_path)], reference, time.perf_counter(), print
    )
    assert code != 0 and "exit 3" in tail
