"""Verifying OIDC access tokens (JWTs) the way every service here does it.

The issuer's discovery document gives its canonical `issuer` and `jwks_uri`; signing keys are
cached and fetched again when a token names an unknown key (the provider rotated its keys).
A token must be signed by the issuer, unexpired (`exp`, `nbf`), for this service (`aud`) and
from this issuer (`iss`). oauth2-proxy in front of a deployment checks tokens too; the services
check again, so that nothing reachable behind the proxy trusts a request blindly.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, Field

logger = logging.getLogger("mlaas4hep")

HINT = "get a fresh token with `mlaas4hep token`"


class AuthSettings(BaseModel):
    """Who may call a service."""

    issuer: str = Field(description="OIDC issuer URL (its /.well-known/openid-configuration)")
    audience: list[str] = Field(description="accepted `aud` values (this service's identifiers)")
    groups_claim: str = Field("groups", description="claim listing the user's groups")
    admin_group: str = Field("mlaas-admins", description="members see every user's jobs")
    leeway_s: int = Field(30, ge=0, description="clock skew tolerated on exp/nbf")
    jwks_cache_s: int = Field(300, ge=0, description="how long signing keys are cached")
    jwks_refresh_cooldown_s: int = Field(
        30, ge=0, description="least time between fetches forced by unknown key ids"
    )
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256"])
    token_cache_size: int = Field(
        0, ge=0, description="verified tokens remembered until they expire (0: check every time)"
    )
    token_cache_s: int = Field(
        60, ge=0, description="longest a verified token is trusted without checking it again"
    )


class AuthError(Exception):
    """A request without a valid token; `status` is 401, or 503 if the issuer is unreachable."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """The caller, as the token describes them."""

    subject: str
    groups: tuple[str, ...] = ()
    is_admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return str(
            self.claims.get("preferred_username") or self.claims.get("email") or self.subject
        )


class TokenVerifier:
    def __init__(self, settings: AuthSettings, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.Client(timeout=10)
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None
        # token -> (caller, monotonic time until which it is trusted); a busy service sees the
        # same token on many requests, and a signature check costs more than the request.
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._verified_lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        with self._lock:
            if self._discovery is None:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    response = self._http.get(url)
                    response.raise_for_status()
                    document = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise AuthError(
                        f"cannot reach the identity provider at {url} to check the token: {exc}",
                        status=503,
                    ) from None
                claimed = str(document.get("issuer", ""))
                if claimed.rstrip("/") != self.settings.issuer.rstrip("/"):
                    # RFC 8414 / OpenID discovery: the document must name the issuer we asked;
                    # otherwise whoever serves it could vouch for tokens of another issuer.
                    raise AuthError(
                        f"the identity provider at {url} calls itself {claimed!r}, not the "
                        f"configured issuer {self.settings.issuer!r}: tokens are not accepted",
                        status=503,
                    )
                self._discovery = document
                options: dict[str, Any] = {
                    "cache_keys": True,
                    "timeout": 10,
                    "lifespan": max(self.settings.jwks_cache_s, 1),
                }
                if "cooldown_duration" in inspect.signature(jwt.PyJWKClient).parameters:
                    options["cooldown_duration"] = self.settings.jwks_refresh_cooldown_s
                self._jwks = jwt.PyJWKClient(document["jwks_uri"], **options)
            return self._discovery

    def signing_key(self, token: str) -> Any:
        self.discovery()
        assert self._jwks is not None
        try:
            # PyJWKClient fetches the key set again when the kid is not among the cached keys.
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(f"cannot fetch the identity provider's keys: {exc}", 503) from None
        except jwt.PyJWKClientError:
            raise AuthError(
                "token signed by a key the identity provider does not publish; " + HINT
            ) from None
        except jwt.DecodeError:
            raise AuthError("malformed token: expected a JWT access token") from None

    def cached(self, token: str | None) -> Principal | None:
        """The caller of a token verified recently and not expired since, without any I/O."""
        if not token:
            return None
        entry = self._verified.get(token)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            with self._verified_lock:
                self._verified.pop(token, None)
            return None
        return entry[0]

    def _remember(self, token: str, principal: Principal) -> None:
        size = self.settings.token_cache_size
        if not size:
            return
        expires_in = float(principal.claims["exp"]) - time.time()
        trust_s = min(expires_in, float(self.settings.token_cache_s))
        if trust_s <= 0:
            return
        with self._verified_lock:
            while len(self._verified) >= size:
                self._verified.pop(next(iter(self._verified)), None)  # the oldest entry
            self._verified[token] = (principal, time.monotonic() + trust_s)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <token>'; " + HINT)
        known = self.cached(token)
        if known is not None:
            return known
        principal = self._check(token)
        self._remember(token, principal)
        return principal

    def _check(self, token: str) -> Principal:
        issuer = self.discovery()["issuer"]
        key = self.signing_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.settings.algorithms,
                audience=self.settings.audience,
                issuer=issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            expired = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expired))
            raise AuthError(f"token expired at {when}; {HINT}") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(
                "token is not meant for this service (audience "
                f"{', '.join(self.settings.audience)} expected)"
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token was not issued by {issuer}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        groups = claims.get(self.settings.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        groups = tuple(str(g).strip("/") for g in groups)
        return Principal(str(claims["sub"]), groups, self.settings.admin_group in groups, claims)
