"""Which endpoints need a bearer token, the check itself (the services' one TokenVerifier), and
who may replace or delete a model: its owner, an admin, or for an upload a publisher acting for
the owner it names.

The check is async so the hot /json path can use it: a token verified before is found in the
verifier's cache without leaving the event loop; a new one is verified in a thread, since that
may fetch the issuer's keys.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from mlaas4hep.auth import AuthError, Principal, TokenVerifier
from mlaas4hep.tfaas.errors import BadRequest, Forbidden, TfaasError, clip
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


def upload_owner(
    caller: Principal | None, owner: str | None, publishers: list[str]
) -> Principal | None:
    """Whom an upload is for: the caller, or the user a publisher names with `owner=SUBJECT`.

    A publisher (the workflow server, with its own service token) stores models for the job's
    user; it then has that user's rights on the name, never an admin's or its own, so it cannot
    replace a model of anyone but the owner it names.
    """
    if owner is None:
        return caller
    if caller is None or caller.subject not in publishers:
        raise Forbidden(
            "only a publisher (a token subject listed in the service's `publishers`) may upload "
            "on behalf of another user (owner=...)"
        )
    if not owner or len(owner) > 255 or not owner.isprintable():
        raise BadRequest(f"owner {clip(owner)} is not a token subject")
    return Principal(owner)
