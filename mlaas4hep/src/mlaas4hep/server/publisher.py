"""Publishing a finished job's model bundle to the inference service (TFaaS API).

The server authenticates as itself (OIDC client credentials), so publishing works after the
user's request, and the user's token, are long gone. It publishes on behalf of the job's owner:
TFaaS stores the model under the name the server gives (never the one inside the bundle) and
as the owner's, so the owner lists and deletes it like a model of their own. TFaaS accepts the
`owner` only from the subjects it lists in its `publishers` setting.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx

from mlaas4hep.server.settings import PublishSettings

logger = logging.getLogger("mlaas4hep")


class Publisher:
    def __init__(self, settings: PublishSettings) -> None:
        self.settings = settings
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.tfaas_url)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_bundle_mb * 2**20

    def _service_token(self) -> str | None:
        s = self.settings
        if not (s.token_url and s.client_id and s.client_secret_file):
            return None
        with self._lock:
            if self._token and self._token[1] > time.time() + 30:
                return self._token[0]
            secret = Path(s.client_secret_file).read_text().strip()
            data = {"grant_type": "client_credentials"}
            if s.audience:
                data["resource"] = s.audience
            response = httpx.post(
                s.token_url, data=data, auth=(s.client_id, secret), timeout=20, verify=s.verify_tls
            )
            response.raise_for_status()
            body = response.json()
            self._token = (body["access_token"], time.time() + float(body.get("expires_in", 60)))
            return self._token[0]

    def publish(self, archive: bytes, name: str, owner: str) -> dict[str, str]:
        """Upload the bundle `archive` as model `name` of `owner`; returns what to record."""
        assert self.settings.tfaas_url
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
        token = self._service_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.settings.tfaas_url.rstrip("/") + "/upload"
        response = httpx.post(
            url,
            params={"name": name, "owner": owner},
            content=archive,
            headers=headers,
            timeout=120,
            verify=self.settings.verify_tls,
        )
        if response.status_code >= 300:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        logger.info("published model %s to %s", name, self.settings.tfaas_url)
        return {"model": name, "url": self.settings.tfaas_url}
