"""The upstream TOSCA types outside the reference copy: fetched from a real HTTP server on
loopback ($MLAAS4HEP_TOSCA_TYPES_MIRROR, standing for baltig.infn.it and GitHub) into the user's
cache, each file checked against its pinned SHA-256."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.tosca import validate_template
from mlaas4hep_cli.tosca.upstream import (
    MIRROR_ENV,
    TYPES_DIR_ENV,
    cache_dir,
    pins,
    upstream_path,
)

from support.tosca_mirror import ToscaMirror

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "tosca-types"
TEMPLATE = REPO / "tosca" / "mlaas4hep.yaml"
# Imports docker_types.yaml at v3.4.0, which imports basic_types.yaml at master.
UPSTREAM_EXAMPLE = REFERENCE / "examples" / "docker_compose_im.yaml"
BASIC = "infn-cloud/tosca_types/base/basic_types.yaml"
BASIC_URL = (
    "https://baltig.infn.it/infn-cloud/tosca-types/raw/v3.4.0/tosca_types/base/basic_types.yaml"
)
CLI = str(Path(sys.executable).with_name("mlaas4hep"))
CLOUD = {
    "name": "hep-ml",
    "target": {"kind": "orchestrator"},
    "vm": {"num_cpus": 8, "mem_size": "16 GB", "ssh_public_key": "ssh-ed25519 AAAA op@example"},
    "oidc": {"issuer": "https://iam.cloud.infn.it/", "client_id": "mlaas-client"},
}


class UpstreamMirror(ToscaMirror):
    """The upstream files byte for byte, as baltig.infn.it and GitHub serve them (the IM mirror
    rewrites their URLs); paths in `tampered` come with one byte changed."""

    def __init__(self, types_dir: Path) -> None:
        super().__init__(types_dir, REPO / "tosca", b"")
        self.tampered: set[str] = set()

    def content(self, path: str) -> bytes | None:
        relative = path.lstrip("/")
        file = (self.types_dir / relative).resolve()
        if not relative.startswith(("infn-cloud/", "indigo-dc/")) or not file.is_file():
            return None
        body = bytearray(file.read_bytes())
        if relative in self.tampered:
            body[len(body) // 2] ^= 0x01
        return bytes(body)


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[UpstreamMirror]:
    """No types folder: validation fetches the pinned files from a mirror on loopback."""
    served = UpstreamMirror(REFERENCE).start()
    monkeypatch.delenv(TYPES_DIR_ENV, raising=False)
    monkeypatch.setenv(MIRROR_ENV, served.base)
    yield served
    if served.thread.is_alive():
        served.stop()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "deploy.yaml"
    config.write_text(yaml.safe_dump(CLOUD))
    return subprocess.run(
        [CLI, "validate", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pins_name_the_reference_files_at_their_versions() -> None:
    pinned = json.loads((REPO / "cli/src/mlaas4hep_cli/tosca/pinned_types.json").read_text())
    assert len(pins()) == len(pinned) >= 2
    for url, sha256 in pinned.items():
        relative = upstream_path(url)
        assert relative is not None and pins()[relative].url == url
        assert hashlib.sha256((REFERENCE / relative).read_bytes()).hexdigest() == sha256
        assert "/master/" not in url  # a moving branch cannot be pinned
    assert pins()[BASIC].url == BASIC_URL


def test_a_fresh_cache_is_filled_from_the_network_and_validation_passes(
    upstream: UpstreamMirror,
) -> None:
    assert not cache_dir().exists()
    assert validate_template(UPSTREAM_EXAMPLE) == []
    assert sorted(upstream.requests) == [
        "/infn-cloud/tosca_types/base/basic_types.yaml",
        "/infn-cloud/tosca_types/infrastructure/docker_types.yaml",
    ]
    assert validate_template(TEMPLATE) == []
    assert len(upstream.requests) == 2  # basic_types.yaml was cached already
    cached = sorted(p for p in cache_dir().rglob("*") if p.is_file())
    assert [p.relative_to(cache_dir()).as_posix() for p in cached] == [
        BASIC,
        "infn-cloud/tosca_types/infrastructure/docker_types.yaml",
    ]
    for file in cached:
        assert file.read_bytes() == (REFERENCE / file.relative_to(cache_dir())).read_bytes()
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    for folder in (cache_dir(), *(p for p in cache_dir().rglob("*") if p.is_dir())):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_second_run_reads_the_cache_without_the_network(
    upstream: UpstreamMirror, tmp_path: Path
) -> None:
    assert validate_template(TEMPLATE) == []
    upstream.stop()
    assert validate_template(TEMPLATE) == []
    result = cli(tmp_path, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert upstream.requests == ["/infn-cloud/tosca_types/base/basic_types.yaml"]


def test_a_damaged_cached_copy_is_fetched_again(upstream: UpstreamMirror) -> None:
    assert validate_template(TEMPLATE) == []
    (cache_dir() / BASIC).write_text("node_types: {}\n")
    assert validate_template(TEMPLATE) == []
    assert (cache_dir() / BASIC).read_bytes() == (REFERENCE / BASIC).read_bytes()
    assert len(upstream.requests) == 2


def test_a_tampered_file_is_refused_and_not_cached(
    upstream: UpstreamMirror, tmp_path: Path
) -> None:
    upstream.tampered.add(BASIC)
    expected = pins()[BASIC].sha256
    body = bytearray((REFERENCE / BASIC).read_bytes())
    body[len(body) // 2] ^= 0x01
    got = hashlib.sha256(body).hexdigest()
    with pytest.raises(CliError) as refused:
        validate_template(TEMPLATE)
    assert str(refused.value) == (
        f"refused {upstream.base}/{BASIC}: expected SHA-256 {expected}, got {got} (not cached)"
    )
    result = cli(tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"{upstream.base}/{BASIC}" in line and expected in line and got in line
    assert not [p for p in cache_dir().rglob("*") if p.is_file()]


def test_without_network_cache_or_types_folder_one_line_says_what_to_do(
    upstream: UpstreamMirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")
    result = cli(tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot fetch the upstream TOSCA types")
    assert "--types-dir" in line and f"${TYPES_DIR_ENV}" in line
    assert "run once with network" in line
    assert not cache_dir().exists() or not any(cache_dir().rglob("*.yaml"))


def test_a_types_folder_given_is_read_offline_without_pins(
    upstream: UpstreamMirror, tmp_path: Path
) -> None:
    upstream.stop()
    result = cli(tmp_path, "--types-dir", str(REFERENCE), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    result = cli(tmp_path, "--types-dir", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "no upstream TOSCA types at" in result.stderr
    assert not cache_dir().exists()
