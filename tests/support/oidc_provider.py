"""A real OpenID provider on loopback (npm oidc-provider, started with Node) for the tests.

The fixture generates the provider's RS256 signing key, so tests can also mint tokens the
provider never would (expired, for another audience) with the genuine key, and forge others with
a different key. Users and clients get random passwords and secrets on every start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt

from mlaas4hep_cli.devidp import AUDIENCE, CLI_CLIENT, SERVICE_CLIENT, DevIdentityProvider, DevUser

from support.net import free_port, wait_for_port

HERE = Path(__file__).resolve().parents[2] / "images" / "dev-oidc"
__all__ = ["AUDIENCE", "CLI_CLIENT", "SERVICE_CLIENT", "OidcProvider", "User", "start_provider"]


User = DevUser


@dataclass
class OidcProvider(DevIdentityProvider):
    """The product's development provider, run from the checkout on a free port."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mlaas4hep-oidc-")))
    process: subprocess.Popen | None = None

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def start(self) -> None:
        if shutil.which("node") is None:
            raise RuntimeError("node is not installed (the test OpenID provider runs on Node)")
        if not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("run scripts/setup-node.sh first (npm ci in images/dev-oidc)")
        config = self.folder / "provider.json"
        config.write_text(json.dumps(self.config()))
        config.chmod(0o600)
        log = (self.folder / "provider.log").open("w")
        self.process = subprocess.Popen(
            ["node", str(HERE / "provider.mjs"), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise RuntimeError((self.folder / "provider.log").read_text()) from None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    # -- tokens the provider issues -----------------------------------------------------

    def password_token(
        self, username: str, scope: str = "openid profile email mlaas", resource: str = AUDIENCE
    ) -> dict[str, Any]:
        user = self.users[username]
        response = httpx.post(
            self.token_endpoint,
            data={
                "grant_type": "password",
                "username": username,
                "password": user.password,
                "scope": scope,
                "resource": resource,
            },
            auth=(CLI_CLIENT, self.cli_secret),
        )
        response.raise_for_status()
        return response.json()

    def access_token(self, username: str = "alice") -> str:
        return self.password_token(username)["access_token"]

    def service_token(self) -> str:
        response = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "mlaas", "resource": AUDIENCE},
            auth=(SERVICE_CLIENT, self.service_secret),
        )
        response.raise_for_status()
        return response.json()["access_token"]

    # -- tokens crafted by the tests ----------------------------------------------------

    def mint(self, claims: dict[str, Any], key: Any = None, kid: str | None = None) -> str:
        """A JWT signed with the provider's key (or `key`), for cases the provider won't make."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "sub": "alice-sub",
            **claims,
        }
        return jwt.encode(
            body, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )


def start_provider(access_ttl: int = 3600) -> OidcProvider:
    provider = OidcProvider(free_port(), access_ttl=access_ttl)
    for username, groups in (
        ("alice", ["mlaas-users"]),
        ("bob", ["mlaas-users"]),
        ("admin", ["mlaas-users", "mlaas-admins"]),
    ):
        provider.users[username] = User(username, groups)
    provider.start()
    return provider
