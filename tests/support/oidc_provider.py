"""A real OpenID provider on loopback (npm oidc-provider, started with Node) for the tests.

The fixture generates the provider's RS256 signing key, so tests can also mint tokens the
provider never would (expired, for another audience) with the genuine key, and forge others with
a different key. Users and clients get random passwords and secrets on every start.
"""

from __future__ import annotations

import json
import os
import secrets
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
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from support.net import free_port, wait_for_port

HERE = Path(__file__).resolve().parents[2] / "images" / "dev-oidc"
AUDIENCE = "urn:mlaas4hep:api"
CLI_CLIENT = "mlaas4hep-cli"
SERVICE_CLIENT = "mlaas4hep-services"


@dataclass
class User:
    username: str
    sub: str
    groups: list[str]
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))


@dataclass
class OidcProvider:
    port: int
    folder: Path
    access_ttl: int = 3600
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    cli_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    service_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    users: dict[str, User] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def config(self) -> dict[str, Any]:
        private = json.loads(RSAAlgorithm.to_jwk(self.key))
        private.pop("key_ops", None)  # PyJWT says ["sign"]; the provider also verifies with it
        private.update(kid=self.kid, alg="RS256", use="sig")
        return {
            "port": self.port,
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "access_ttl": self.access_ttl,
            "jwks": {"keys": [private]},
            "clients": [
                {
                    "client_id": CLI_CLIENT,
                    "client_secret": self.cli_secret,
                    "grant_types": [
                        "password",
                        "refresh_token",
                        "authorization_code",
                        "urn:ietf:params:oauth:grant-type:device_code",
                    ],
                    "response_types": ["code"],
                    "redirect_uris": ["http://localhost:4242/"],
                    "token_endpoint_auth_method": "client_secret_basic",
                },
                {
                    "client_id": SERVICE_CLIENT,
                    "client_secret": self.service_secret,
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "redirect_uris": [],
                    "token_endpoint_auth_method": "client_secret_basic",
                },
            ],
            "users": [
                {
                    "sub": u.sub,
                    "username": u.username,
                    "password": u.password,
                    "email": f"{u.username}@example.org",
                    "name": u.username.title(),
                    "groups": u.groups,
                }
                for u in self.users.values()
            ],
        }

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
    folder = Path(tempfile.mkdtemp(prefix="mlaas4hep-oidc-"))
    provider = OidcProvider(free_port(), folder, access_ttl=access_ttl)
    for username, groups in (
        ("alice", ["mlaas-users"]),
        ("bob", ["mlaas-users"]),
        ("admin", ["mlaas-users", "mlaas-admins"]),
    ):
        provider.users[username] = User(username, f"{username}-sub", groups)
    provider.start()
    return provider
