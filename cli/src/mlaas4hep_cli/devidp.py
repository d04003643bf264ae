"""The development OpenID provider's configuration for the local target (images/dev-oidc).

Everything secret is generated here, on this machine, at create time: the RS256 signing key,
the client secrets and the demo user's password. The files live in the deployment's own folder
(mode 0600) and nowhere else.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIENCE = "urn:mlaas4hep:api"
CLI_CLIENT = "mlaas4hep-cli"
SERVICE_CLIENT = "mlaas4hep-services"
HUB_CLIENT = "mlaas4hep-jupyterhub"


@dataclass
class DevUser:
    username: str
    groups: list[str]
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def sub(self) -> str:
        return f"{self.username}-sub"


@dataclass
class DevIdentityProvider:
    port: int
    key: Any = None  # an RSA private key (cryptography); generated when None
    kid: str = field(default_factory=lambda: secrets.token_hex(8))
    cli_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    service_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    hub_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    users: dict[str, DevUser] = field(default_factory=dict)
    access_ttl: int = 3600
    hub_redirect: str = "https://127.0.0.1:8443/hub/oauth_callback"

    def __post_init__(self) -> None:
        if self.key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            self.key = rsa.generate_private_key(65537, 2048)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

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
                {
                    "client_id": HUB_CLIENT,
                    "client_secret": self.hub_secret,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "redirect_uris": [self.hub_redirect],
                    "token_endpoint_auth_method": "client_secret_post",
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

    def credentials(self) -> dict[str, Any]:
        """What the operator's CLI needs to get tokens from this provider."""
        return {
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "token_endpoint": f"{self.issuer}/token",
            "client_id": CLI_CLIENT,
            "client_secret": self.cli_secret,
            "users": {name: u.password for name, u in self.users.items()},
        }

    def write(self, folder: Path) -> dict[str, Path]:
        """provider.json (the container reads it), credentials.json and the client secrets."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        files = {
            "provider": (folder / "provider.json", json.dumps(self.config())),
            "credentials": (folder / "credentials.json", json.dumps(self.credentials())),
            "hub_client_secret": (folder / "hub_client_secret", self.hub_secret),
            "service_client_secret": (folder / "service_client_secret", self.service_secret),
        }
        for path, content in files.values():
            path.write_text(content)
            path.chmod(0o600)
        return {name: path for name, (path, _) in files.items()}


def demo_provider(port: int) -> DevIdentityProvider:
    provider = DevIdentityProvider(port)
    provider.users["demo"] = DevUser("demo", ["mlaas-users", "mlaas-admins"])
    return provider


def password_token(credentials: dict[str, Any], username: str) -> str:
    """An access token for a local user (the provider's test-only password grant)."""
    import httpx

    response = httpx.post(
        credentials["token_endpoint"],
        timeout=20,
        data={
            "grant_type": "password",
            "username": username,
            "password": credentials["users"][username],
            "scope": "openid profile email mlaas",
            "resource": credentials["audience"],
        },
        auth=(credentials["client_id"], credentials["client_secret"]),
    )
    response.raise_for_status()
    return response.json()["access_token"]
