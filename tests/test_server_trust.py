"""The workflow server's trust boundaries, tried as a hostile user would: each test is one finding
of the review (issue "Trust boundaries"), against the real server process with its default local
executor (every job in its sandbox), a real OpenID provider and real jobs.

A job's model code here is the attacker: it reports what it could reach in its log, and the test
checks that the server's data, other users' data and the host stayed out of reach, and that the
server, not the job, decided how the job ended.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.server
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlaas4hep.auth import AuthError, AuthSettings, TokenVerifier
from mlaas4hep.server.submission import owner_folder

from support.bundles import sample_bundle_folder, tar_folder, tar_members
from support.oidc_provider import AUDIENCE, OidcProvider
from support.workflow_server import SAMPLE_JOB, ServerProcess, submit_job, upload_sample

pytestmark = pytest.mark.integration

MODEL_TAIL = "    from sklearn.linear_model import SGDClassifier\n    return SGDClassifier()\n"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = sample_bundle_folder(tmp_path_factory.mktemp("data"), events=300)
    (folder / "params.json").write_text((folder / "params_local.json").read_text())
    (folder / "model.py").write_text((folder / "sgd_model.py").read_text())
    return tar_folder(folder, "data")


@pytest.fixture(scope="module")
def grid_proxy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proxy = tmp_path_factory.mktemp("proxy") / "x509up"
    proxy.write_text("-----BEGIN CERTIFICATE-----\nalice's proxy\n")
    proxy.chmod(0o600)
    return proxy


@pytest.fixture(scope="module")
def server(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory, grid_proxy: Path
) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("trust"),
        oidc,
        extra={
            "max_running_jobs": 3,
            "submit_limit_kb": 256,
            "x509_proxy_owners": ["alice-sub"],
            "sandbox": {"max_file_mb": 64, "max_processes": 96},
        },
    )
    os.environ["X509_USER_PROXY"] = str(grid_proxy)
    try:
        process.start()
    finally:
        del os.environ["X509_USER_PROXY"]
    yield process
    process.stop()


def run_code(
    server: ServerProcess, client: httpx.Client, archive: bytes, code: str, **extra: object
) -> dict:
    job_id = submit_job(client, archive, model=None, model_code=code, **extra)
    return server.wait_final(client, job_id)


def report_of(client: httpx.Client, job_id: str) -> dict:
    log = client.get(f"/jobs/{job_id}/logs").text
    lines = [line for line in log.splitlines() if line.startswith("REPORT ")]
    assert lines, log[-2000:]
    return json.loads(lines[-1].removeprefix("REPORT "))


def wait_running(client: httpx.Client, job_id: str, marker: str = "") -> None:
    deadline = time.monotonic() + 90
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] == "RUNNING" and (
            not marker or marker in client.get(f"/jobs/{job_id}/logs").text
        ):
            return
        assert job["state"] in ("QUEUED", "RUNNING"), job
        assert time.monotonic() < deadline, f"job {job_id} never got to {marker or 'RUNNING'}"
        time.sleep(0.2)


def sandbox_uid(server: ServerProcess, job_id: str) -> int:
    job = json.loads((server.data_dir / "jobs" / job_id / "job.json").read_text())
    return int(job["sandbox"]["uid"])


def processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    found.append(int(entry.name))
    return found


def peak_rss_mb(process: object) -> float:
    status = Path(f"/proc/{process.pid}/status").read_text()  # type: ignore[attr-defined]
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


# -- 1. user code sees nothing but its own job ------------------------------------------------


def test_a_jobs_code_reaches_nothing_of_the_server_other_users_or_the_host(
    server: ServerProcess, archive: bytes
) -> None:
    bob = server.client("bob")
    bob_job = run_code(server, bob, archive, "def model():\n" + MODEL_TAIL)
    assert bob_job["state"] == "SUCCEEDED", bob_job["reason"]
    data = server.data_dir
    bob_upload = data / "uploads" / owner_folder("bob-sub") / "data" / "params_local.json"
    bob_folder = data / "jobs" / bob_job["id"]
    reads = [
        "/etc/shadow",
        str(data / "jobs.sqlite"),
        str(server.folder / "server.yaml"),
        str(bob_upload),
        str(bob_folder / "job.json"),
        str(bob_folder / "inputs" / "params_local.json"),
        "params_local.json",  # its own input: allowed
    ]
    writes = ["params_local.json", "../job.json", "../job.log", str(bob_folder / "job.json")]
    code = f"""import json, os
READS = {reads!r}
WRITES = {writes!r}

def attempt(action):
    try:
        action()
        return "DONE"
    except OSError as exc:
        return type(exc).__name__

def model():
    report = {{}}
    for path in READS:
        report["read " + path] = attempt(lambda: open(path, "rb").read(16))
    for path in WRITES:
        report["write " + path] = attempt(lambda: open(path, "a").write("owned"))
    report["uid"] = os.getuid()
    report["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
    report["proxy"] = os.environ.get("X509_USER_PROXY")
    report["root"] = sorted(os.listdir("/"))
    print("REPORT " + json.dumps(report), flush=True)
{MODEL_TAIL}"""
    alice = server.client("alice")
    job = run_code(server, alice, archive, code)
    assert job["state"] == "SUCCEEDED", job["reason"]
    report = report_of(alice, job["id"])
    assert report["read params_local.json"] == "DONE", "a job reads its own inputs"
    for path in reads[:-1]:
        assert report[f"read {path}"] != "DONE", f"the job read {path}"
    for path in writes:
        assert report[f"write {path}"] != "DONE", f"the job wrote {path}"
    assert report["uid"] >= 200_000, "jobs run under their own unprivileged user id"
    assert report["uid"] != sandbox_uid(server, bob_job["id"]) or report["uid"] == 200_000
    assert report["pids"] < 10, "the job sees only its own processes"
    assert "home" not in report["root"] and "var" not in report["root"]
    assert report["proxy"] == "/run/mlaas4hep/x509up", "alice is an owner of the grid proxy"
    assert bob_upload.read_text().startswith("{"), "bob's upload is intact"


def test_the_grid_proxy_reaches_only_the_jobs_of_its_owner(
    server: ServerProcess, archive: bytes, grid_proxy: Path
) -> None:
    code = f"""import json, os
def model():
    path = os.environ.get("X509_USER_PROXY")
    seen = {{}}
    for candidate in (path, {str(grid_proxy)!r}):
        try:
            seen[str(candidate)] = open(candidate).read()
        except (OSError, TypeError) as exc:
            seen[str(candidate)] = type(exc).__name__
    print("REPORT " + json.dumps({{"variable": path, "seen": seen}}), flush=True)
{MODEL_TAIL}"""
    alice, bob = server.client("alice"), server.client("bob")
    alice_job = run_code(server, alice, archive, code)
    bob_job = run_code(server, bob, archive, code)
    alice_saw, bob_saw = report_of(alice, alice_job["id"]), report_of(bob, bob_job["id"])
    assert "alice's proxy" in alice_saw["seen"]["/run/mlaas4hep/x509up"]
    assert bob_saw["variable"] is None
    assert not any("alice's proxy" in text for text in bob_saw["seen"].values())
    assert not (server.data_dir / "jobs" / alice_job["id"] / "x509up").exists(), "copy removed"


# -- 2. the server decides outcomes -----------------------------------------------------------


def test_what_a_job_writes_about_itself_cannot_make_it_succeed(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    forged = (
        "import json, os\n\ndef model():\n"
        "    status = {'state': 'SUCCEEDED', 'exit_code': 0, 'result': {'auc': 1.0}}\n"
        "    open('../work/status.json', 'w').write(json.dumps(status))\n"
        "    os._exit(3)\n"
    )
    job = run_code(server, alice, archive, forged)
    assert job["state"] == "FAILED" and job["exit_code"] == 3
    assert job["result"] == {}
    linked = (
        "import os\n\ndef model():\n"
        "    os.symlink('/etc/passwd', '../work/status.json')\n    os._exit(4)\n"
    )
    job = run_code(server, alice, archive, linked)
    assert job["state"] == "FAILED" and job["reason"] == "exited with code 4"


# -- 3 and 7. logs: streams end with their clients, pieces are bounded -------------------------


def test_abandoned_log_follows_hold_nothing_and_the_server_answers(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    code = "import time\n\ndef model():\n    print('waiting', flush=True)\n    time.sleep(120)\n"
    job_id = submit_job(alice, archive, model=None, model_code=code)
    wait_running(alice, job_id, "waiting")
    follower = httpx.Client(
        base_url=server.url,
        headers=alice.headers,
        timeout=30,
        limits=httpx.Limits(max_connections=80, max_keepalive_connections=0),
    )
    with contextlib.ExitStack() as streams:
        for _ in range(60):
            response = streams.enter_context(
                follower.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "true"})
            )
            assert response.status_code == 200
        began = time.perf_counter()
        assert server.client(None).get("/health", timeout=5).json()["status"] == "ok"
        assert alice.get("/jobs", timeout=5).status_code == 200
        assert time.perf_counter() - began < 3, "60 open follows slowed the server down"
    follower.close()
    time.sleep(1)
    assert server.client(None).get("/health", timeout=5).status_code == 200
    alice.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert server.wait_final(alice, job_id, timeout=30)["state"] == "CANCELLED"


def test_a_huge_log_is_sent_in_pieces_and_files_have_a_size_limit(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    chatty = (
        "import sys\n\ndef model():\n    line = 'x' * 1023 + '\\n'\n"
        "    for _ in range(60):\n        sys.stdout.write(line * 1024)\n"
        "    sys.stdout.flush()\n" + MODEL_TAIL
    )
    job = run_code(server, alice, archive, chatty)
    assert job["state"] == "SUCCEEDED", job["reason"]
    before = peak_rss_mb(server.process)
    received = 0
    with alice.stream("GET", f"/jobs/{job['id']}/logs") as response:
        assert int(response.headers["x-log-size"]) > 60 * 2**20
        for block in response.iter_bytes():
            received += len(block)
    assert received > 60 * 2**20
    assert peak_rss_mb(server.process) - before < 48, "the log went through memory whole"
    piece = alice.get(f"/jobs/{job['id']}/logs", params={"offset": 1024, "limit": 10**9})
    assert len(piece.content) == 256 * 1024 and piece.headers["x-next-offset"] == str(
        1024 + 256 * 1024
    )
    hog = (
        "def model():\n    block = b'0' * 2**20\n"
        "    with open('../work/big.bin', 'wb') as out:\n"
        "        for _ in range(100):\n            out.write(block)\n"
    )
    job = run_code(server, alice, archive, hog)
    assert job["state"] == "FAILED" and "File too large" in job["reason"]


# -- 6. links the job makes are never followed --------------------------------------------------


def test_links_a_job_plants_are_never_followed(server: ServerProcess, archive: bytes) -> None:
    code = f"""import os, pathlib

def model():
    work = pathlib.Path('..') / 'work'
    for partial in work.glob('.run.partial-*'):
        os.symlink('/etc/passwd', partial / 'passwd-link')
        os.symlink('/', partial / 'host-root')
    for target in ('../job.log', '../results.tar.gz', '../exit.json'):
        try:
            os.symlink('/etc/passwd', target)
        except OSError as exc:
            print('refused', target, type(exc).__name__, flush=True)
{MODEL_TAIL}"""
    alice = server.client("alice")
    job = run_code(server, alice, archive, code)
    assert job["state"] == "SUCCEEDED", job["reason"]
    log = alice.get(f"/jobs/{job['id']}/logs").text
    assert "refused ../job.log" in log and "refused ../results.tar.gz" in log
    assert "root:x:0:0" not in log
    results = alice.get(f"/jobs/{job['id']}/results")
    assert results.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(results.content)) as tar:
        members = tar.getmembers()
        assert {m.name.rsplit("/", 1)[-1] for m in members} >= {"metrics.json"}
        assert not any(m.issym() or m.islnk() for m in members)
        assert not any(m.name.endswith(("passwd-link", "host-root")) for m in members)
        for member in members:
            if member.isfile():
                assert b"root:x:0:0" not in tar.extractfile(member).read()  # type: ignore[union-attr]


# -- 8. bodies: token first, bounded before parsing --------------------------------------------


def test_submit_checks_the_token_before_the_body_and_bounds_the_body(
    server: ServerProcess, archive: bytes
) -> None:
    anonymous = server.client(None)
    assert anonymous.post("/submit", content=b"{not json").status_code == 401
    before = peak_rss_mb(server.process)
    began = time.perf_counter()
    big = anonymous.post(
        "/submit", content=b"x" * (50 * 2**20), headers={"content-type": "application/json"}
    )
    assert big.status_code in (401, 413)
    assert time.perf_counter() - began < 10
    alice = server.client("alice")
    body = {**SAMPLE_JOB, "model": None, "model_code": "#" * (300 * 1024)}
    assert alice.post("/submit", json=body).status_code == 413

    def chunked() -> Iterator[bytes]:
        yield b'{"files": "'
        for _ in range(64):
            yield b"a" * 16384
        yield b'"}'

    streamed = alice.post(
        "/submit", content=chunked(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    invalid = alice.post("/submit", json={"files": 3})
    assert invalid.status_code == 422 and len(invalid.text) < 3000
    assert peak_rss_mb(server.process) - before < 40, "a refused body was held in memory"


# -- 9. limits the kernel enforces -------------------------------------------------------------


def test_a_job_past_its_wall_clock_limit_is_stopped(server: ServerProcess, archive: bytes) -> None:
    alice = server.client("alice")
    began = time.monotonic()
    code = "import time\n\ndef model():\n    time.sleep(300)\n"
    job = run_code(server, alice, archive, code, resources={"wall_clock_s": 4})
    assert job["state"] == "FAILED" and "wall-clock limit of 4 s" in job["reason"]
    assert time.monotonic() - began < 60
    response = alice.post("/submit", json={**SAMPLE_JOB, "resources": {"wall_clock_s": 10**9}})
    assert response.status_code == 400 and "wall_clock_s" in response.text


def test_a_fork_bomb_stops_at_the_process_limit(server: ServerProcess, archive: bytes) -> None:
    alice = server.client("alice")
    code = (
        "import subprocess\n\ndef model():\n    children = []\n    try:\n"
        "        for _ in range(1000):\n"
        "            children.append(subprocess.Popen(['sleep', '60']))\n"
        "    except OSError as exc:\n"
        "        raise RuntimeError(f'stopped after {len(children)} processes: {exc}')\n"
        "    raise RuntimeError('no process limit')\n"
    )
    job = run_code(server, alice, archive, code)
    assert job["state"] == "FAILED" and "stopped after" in job["reason"], job["reason"]
    assert int(job["reason"].split("stopped after ")[1].split()[0]) < 96
    assert not processes_of(sandbox_uid(server, job["id"])), "the children outlived the job"
    assert server.client(None).get("/health").json()["status"] == "ok"


def test_shared_memory_counts_against_the_memory_limit(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    code = (
        "import mmap\n\ndef model():\n"
        "    shared = mmap.mmap(-1, 3 * 2**30, flags=mmap.MAP_SHARED)\n"
        "    for offset in range(0, len(shared), 4096):\n        shared[offset] = 1\n"
        "    raise RuntimeError('3 GB of shared memory in a 700 MB job')\n"
    )
    job = run_code(server, alice, archive, code, resources={"memory_mb": 700})
    assert job["state"] == "FAILED"
    assert "out of memory" in job["reason"], job["reason"]


def test_cancel_kills_the_whole_tree_even_processes_that_ignore_sigterm(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    code = (
        "import os, signal, time\n\ndef model():\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    for _ in range(40):\n"
        "        if os.fork() == 0:\n"
        "            os.setsid()\n            time.sleep(600)\n            os._exit(0)\n"
        "    print('forked', flush=True)\n    time.sleep(600)\n"
    )
    job_id = submit_job(alice, archive, model=None, model_code=code)
    wait_running(alice, job_id, "forked")
    uid = sandbox_uid(server, job_id)
    assert len(processes_of(uid)) >= 41
    alice.post(f"/jobs/{job_id}/cancel").raise_for_status()
    assert server.wait_final(alice, job_id, timeout=30)["state"] == "CANCELLED"
    deadline = time.monotonic() + 10
    while processes_of(uid):
        assert time.monotonic() < deadline, f"{len(processes_of(uid))} processes survived"
        time.sleep(0.2)


# -- 10, 12, 14: inputs, bundles, file modes, the issuer ---------------------------------------


def test_inline_inputs_never_write_through_to_the_bundle_or_other_jobs(
    server: ServerProcess, archive: bytes
) -> None:
    alice = server.client("alice")
    upload_sample(alice, archive)
    bundle = server.data_dir / "uploads" / owner_folder("alice-sub") / "data"
    original = (bundle / "params.json").read_text()
    inline = {**json.loads(original), "epochs": 2}
    first = alice.post(
        "/submit",
        json={**SAMPLE_JOB, "params": inline, "model": None, "model_code": "# mine\n"},
    )
    assert first.status_code == 201, first.text
    second = alice.post("/submit", json={**SAMPLE_JOB, "params": "params.json"})
    assert second.status_code == 201, second.text
    jobs = server.data_dir / "jobs"
    assert (bundle / "params.json").read_text() == original
    assert (bundle / "model.py").read_text() != "# mine\n"
    assert (jobs / second.json()["job_id"] / "inputs" / "params.json").read_text() == original
    assert json.loads((jobs / first.json()["job_id"] / "inputs" / "params.json").read_text()) == (
        inline
    )
    for answer in (first, second):
        server.wait_final(alice, answer.json()["job_id"])


def test_bundles_count_folders_refuse_deep_paths_and_take_concurrent_uploads(
    server: ServerProcess,
) -> None:
    alice = server.client("alice")
    folders = [tarfile.TarInfo(f"d{n}") for n in range(2000)]
    for info in folders:
        info.type = tarfile.DIRTYPE
    many = tar_members(*[(info, None) for info in folders])
    answer = alice.post("/upload", params={"name": "many"}, content=many)
    assert answer.status_code == 400 and "entries" in answer.text
    deep_name = "/".join(["a"] * 2000) + "/f.txt"
    deep = tarfile.TarInfo(deep_name)
    deep.size = 1
    answer = alice.post("/upload", params={"name": "deep"}, content=tar_members((deep, b"x")))
    assert answer.status_code == 400 and "too long or too deep" in answer.text
    small = tarfile.TarInfo("f.txt")
    small.size = 2
    payload = tar_members((small, b"ok"))
    token = server.provider.access_token("alice")

    def upload(_: int) -> int:
        with server.client(token=token) as client:
            return client.post("/upload", params={"name": "same"}, content=payload).status_code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(upload, range(10)))
    assert codes == [201] * 10
    bundle = server.data_dir / "uploads" / owner_folder("alice-sub") / "same"
    assert (bundle / "f.txt").read_text() == "ok"


def test_the_servers_files_are_private(server: ServerProcess, archive: bytes) -> None:
    alice = server.client("alice")
    job = run_code(server, alice, archive, "def model():\n" + MODEL_TAIL)
    assert (server.data_dir.stat().st_mode & 0o777) == 0o700
    assert (server.data_dir / "jobs.sqlite").stat().st_mode & 0o077 == 0
    assert (server.data_dir / "jobs" / job["id"] / "job.log").stat().st_mode & 0o077 == 0


def test_a_discovery_document_naming_another_issuer_is_refused(oidc: OidcProvider) -> None:
    """A server that serves a discovery document may not vouch for another issuer's tokens."""
    real = httpx.get(f"{oidc.issuer.rstrip('/')}/.well-known/openid-configuration").json()
    document = json.dumps({"issuer": oidc.issuer, "jwks_uri": real["jwks_uri"]}).encode()

    class Discovery(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            pass

    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        verifier = TokenVerifier(
            AuthSettings(issuer=f"http://127.0.0.1:{impostor.server_port}", audience=[AUDIENCE])
        )
        with pytest.raises(AuthError, match="calls itself"):
            verifier.verify(oidc.access_token("alice"))
        genuine = TokenVerifier(AuthSettings(issuer=oidc.issuer, audience=[AUDIENCE]))
        assert genuine.verify(oidc.access_token("alice")).subject == "alice-sub"
    finally:
        impostor.shutdown()
