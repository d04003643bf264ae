"""Proxies for the tests, made with the renewer's own code, and the pipeline reading through GSI.

GSI reads run in a subprocess: the XRootD client reads X509_USER_PROXY and X509_CERT_DIR once per
process, so each read gets a fresh process with exactly the credentials the test chose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlaas4hep.x509 import (
    PassphraseSource,
    RenewerSettings,
    build_proxy,
    load_user_credential,
    write_atomically,
)
from mlaas4hep.x509.proxyfile import FileOwner

from support.pki import UserFiles


def renewer_settings(user: UserFiles, proxy: Path, **overrides: object) -> RenewerSettings:
    """Settings for `user`'s credential writing `proxy`, isolated from the machine's X509_*."""
    values: dict[str, object] = {"cert": user.cert, "key": user.key, "proxy": proxy}
    values.update(overrides)
    return RenewerSettings.build(**values)


def passphrase_of(user: UserFiles) -> PassphraseSource:
    return PassphraseSource(file=user.passphrase_file)


def write_expired_proxy(user: UserFiles, path: Path, owner: FileOwner | None = None) -> None:
    """A well-formed proxy whose validity ended an hour ago."""
    credential = load_user_credential(user.cert, user.key, passphrase_of(user))
    now = datetime.now(timezone.utc)
    pem = build_proxy(credential, now - timedelta(hours=3), now - timedelta(hours=1), 2048)
    write_atomically(path, pem, owner)


@dataclass(frozen=True)
class PipelineRead:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events_read(self) -> int:
        return int(json.loads(self.stdout)["events_read"])


def pipeline_read(
    url: str,
    params_json: Path,
    run_dir: Path,
    proxy: Path | None,
    cert_dir: Path | None,
    timeout: float = 120,
) -> PipelineRead:
    """`mlaas4hep-pipeline chunks` on one remote file, in its own process and credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("X509_")}
    if proxy is not None:
        env["X509_USER_PROXY"] = str(proxy)
    if cert_dir is not None:
        env["X509_CERT_DIR"] = str(cert_dir)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlaas4hep.commands.pipeline",
            "chunks",
            "--files",
            url,
            "--labels",
            "1",
            "--params",
            str(params_json),
            "--fout",
            str(run_dir),
            "--json",
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return PipelineRead(result.returncode, result.stdout, result.stderr)
