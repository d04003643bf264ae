"""A real oidc-agent (Debian oidc-agent-cli) holding an account at the test provider."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.oidc_provider import CLI_CLIENT, OidcProvider


@dataclass
class OidcAgent:
    folder: Path
    env: dict[str, str]

    def stop(self) -> None:
        subprocess.run(["oidc-agent", "-k"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_agent(provider: OidcProvider, account: str, username: str) -> OidcAgent:
    if shutil.which("oidc-agent") is None:
        raise RuntimeError("oidc-agent is not installed: apt-get install oidc-agent-cli")
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-agent-"))
    (folder / "config").mkdir()
    env = {
        **os.environ,
        "OIDC_CONFIG_DIR": str(folder / "config"),
        "OIDC_ENCRYPTION_PW": "encrypts-the-test-account-only",
    }
    started = subprocess.run(
        ["oidc-agent", f"--socket-path={folder}/agent.sock", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    info = json.loads(started.stdout)
    env.update(OIDC_SOCK=info["socket"], OIDCD_PID=str(info["dpid"]))
    agent = OidcAgent(folder, env)
    user = provider.users[username]
    generated = subprocess.run(
        [
            "oidc-gen",
            account,
            f"--iss={provider.issuer}/",
            f"--client-id={CLI_CLIENT}",
            f"--client-secret={provider.cli_secret}",
            "--flow=password",
            f"--op-username={username}",
            f"--op-password={user.password}",
            "--scope=openid offline_access profile email mlaas",
            "--redirect-uri=http://localhost:4242/",
            "--pw-env",
            "--confirm-default",
        ],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    if generated.returncode != 0:
        agent.stop()
        raise RuntimeError(f"oidc-gen failed: {generated.stdout}\n{generated.stderr}")
    return agent
