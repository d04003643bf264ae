"""Which endpoints need a bearer token, and the check itself (the services' one TokenVerifier).

The check is async so the hot /json path can use it: a token verified before is found in the
verifier's cache without leaving the event loop; a new one is verified in a thread, since that
may fetch the issuer's keys.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from mlaas4hep.auth import AuthError, Principal, TokenVerifier
from mlaas4hep.tfaas.errors import Forbidden, TfaasError
from mlaas4hep.tfaas.settings import Endpoint, TfaasSettings


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Guard:
    def __init__(self, settings: TfaasSettings, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.verifier = verifier or (TokenVerifier(settings.auth) if settings.auth else None)

    def protects(self, endpoint: Endpoint) -> bool:
        return self.verifier is not None and self.settings.is_protected(endpoint)

    async def caller(self, endpoint: Endpoint, authorization: str | None) -> Principal | None:
        """The verified caller of a protected endpoint; None for an open one."""
        if not self.protects(endpoint):
            return None
        assert self.verifier is not None
        token = bearer(authorization)
        known = self.verifier.cached(token)
        if known is not None:
            return known
        try:
            return await run_in_threadpool(self.verifier.verify, token)
        except AuthError as exc:
            headers = (
                {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
            )
            raise TfaasError(str(exc), exc.status, headers) from None


def require_owner(caller: Principal | None, owner: str | None, name: str, action: str) -> None:
    """Only a model's uploader (or an admin) may replace or delete it, when tokens are on."""
    if caller is None or owner is None or caller.is_admin or caller.subject == owner:
        return
    raise Forbidden(f"model {name!r} was uploaded by another user; you may not {action} it")
