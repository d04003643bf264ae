"""Publishing a finished job's model bundle to the inference service (TFaaS API).

The server authenticates as itself (OIDC client credentials), so publishing works after the
user's request, and the user's token, are long gone.
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

    def publish(self, archive: Path) -> dict[str, str]:
        """Upload `archive` (tfaas/<name>.tar.gz); returns what to record with the job."""
        assert self.settings.tfaas_url
        name = archive.name.removesuffix(".tar.gz")
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
        token = self._service_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.settings.tfaas_url.rstrip("/") + "/upload"
        response = httpx.post(
            url,
            content=archive.read_bytes(),
            headers=headers,
            timeout=120,
            verify=self.settings.verify_tls,
        )
        if response.status_code >= 300:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        logger.info("published model %s to %s", name, self.settings.tfaas_url)
        return {"model": name, "url": self.settings.tfaas_url}
