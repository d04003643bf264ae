"""One HTTP client for the MLaaS4HEP services; HTTP errors become operator messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from mlaas4hep_cli.errors import CliError


def verify_option(ca_bundle: str | None, insecure: bool) -> bool | str:
    if insecure or os.environ.get("MLAAS4HEP_INSECURE") == "1":
        return False
    return ca_bundle or os.environ.get("MLAAS4HEP_CA_BUNDLE") or True


class ServiceClient:
    def __init__(
        self, base_url: str, token: str | None, verify: bool | str = True, timeout: float = 60
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            verify=verify,
            timeout=timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from None
        check(response)
        return response

    def json(self, method: str, path: str, **options: Any) -> Any:
        return self.request(method, path, **options).json()

    @contextmanager
    def stream(self, path: str, **options: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream("GET", path, **options) as response:
                if response.status_code >= 400:
                    response.read()
                    check(response)
                yield response
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.base_url}: {exc}") from None


def check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    hint = ""
    if response.status_code == 401 and "mlaas4hep token" not in str(detail):
        hint = " (get a fresh token with `mlaas4hep token`)"
    raise CliError(
        f"{response.request.method} {response.request.url.path}: "
        f"{response.status_code} {detail}{hint}"
    )
