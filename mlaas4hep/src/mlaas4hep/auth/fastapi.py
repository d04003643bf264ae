"""FastAPI glue: a dependency giving the verified caller, or a 401 naming what is wrong."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, Request

from mlaas4hep.auth.tokens import AuthError, Principal, TokenVerifier


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def principal_dependency(
    get_verifier: Callable[[Request], TokenVerifier],
) -> Callable[..., Principal]:
    """`Depends(...)` target: verifies the request's bearer token (sync: keys may be fetched)."""

    def current_principal(request: Request) -> Principal:
        try:
            return get_verifier(request).verify(bearer_token(request))
        except AuthError as exc:
            headers = (
                {"WWW-Authenticate": 'Bearer error="invalid_token"'} if exc.status == 401 else None
            )
            raise HTTPException(exc.status, detail=str(exc), headers=headers) from None

    return current_principal
