"""The INDIGO PaaS orchestrator (INFN Cloud) REST API, as its documentation describes it:

    POST   /deployments            {template, parameters, keepLastAttempt, ...} -> deployment
    GET    /deployments?createdBy=me&page=N     Spring pages: {content: [...], page: {...}, links}
    GET    /deployments/{uuid}     {uuid, status, statusReason, outputs, createdBy, links, ...}
    GET    /deployments/{uuid}/log the infrastructure's log
    GET    /deployments/{uuid}/template    the deployment's TOSCA template
    PUT    /deployments/{uuid}     {template, parameters, ...}: update (UPDATE_IN_PROGRESS)
    DELETE /deployments/{uuid}

Statuses: CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED, UPDATE_*, DELETE_IN_PROGRESS,
DELETE_COMPLETE, DELETE_FAILED, UNKNOWN. Every call carries the user's IAM bearer token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlaas4hep_cli.registry import DeploymentRecord
from mlaas4hep_cli.targets.base import (
    DeploymentState,
    Phase,
    Retry,
    Target,
    cloud_template,
    not_a_cluster,
    raise_for,
)
from mlaas4hep_cli.tosca.inputs import WORKERS_INPUT, has_workers

if TYPE_CHECKING:
    from mlaas4hep_cli.config import DeploymentConfig

PHASES = {
    "CREATE_IN_PROGRESS": Phase.CREATING,
    "CREATE_COMPLETE": Phase.READY,
    "CREATE_FAILED": Phase.FAILED,
    "UPDATE_IN_PROGRESS": Phase.CREATING,
    "UPDATE_COMPLETE": Phase.READY,
    "UPDATE_FAILED": Phase.FAILED,
    "DELETE_IN_PROGRESS": Phase.DELETING,
    "DELETE_COMPLETE": Phase.DELETED,
    "DELETE_FAILED": Phase.FAILED,
}


class OrchestratorClient:
    def __init__(
        self, url: str, token: str, retry: Retry | None = None, verify: bool | str = True
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry()
        self.http = httpx.Client(
            base_url=self.url,
            timeout=60,
            verify=verify,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = self.retry.call(
            f"the orchestrator at {self.url}", lambda: self.http.request(method, path, **options)
        )
        raise_for(response, f"the orchestrator ({method} {path})")
        return response

    def create(self, template: str, parameters: dict[str, Any]) -> DeploymentState:
        body = {"template": template, "parameters": parameters, "keepLastAttempt": False}
        return self._state(self._request("POST", "/deployments", json=body).json())

    def status(self, uuid: str) -> DeploymentState:
        response = self.retry.call(
            f"the orchestrator at {self.url}", lambda: self.http.get(f"/deployments/{uuid}")
        )
        if response.status_code == 404:
            return DeploymentState(uuid, Phase.DELETED, "NOT_FOUND", "no such deployment")
        raise_for(response, f"the orchestrator (GET /deployments/{uuid})")
        return self._state(response.json())

    def list(self) -> list[DeploymentState]:
        states: list[DeploymentState] = []
        page = 0
        while True:
            body = self._request(
                "GET", "/deployments", params={"createdBy": "me", "page": page, "size": 50}
            ).json()
            states += [self._state(item) for item in body.get("content", [])]
            info = body.get("page", {})
            page += 1
            if page >= int(info.get("totalPages", 1)):
                return states

    def log(self, uuid: str) -> str:
        return self._request("GET", f"/deployments/{uuid}/log").text

    def template(self, uuid: str) -> str:
        path = f"/deployments/{uuid}/template"
        return self._request("GET", path, headers={"Accept": "text/plain"}).text

    def update(self, uuid: str, template: str, parameters: dict[str, Any]) -> None:
        """Ask for an update; the deployment goes UPDATE_IN_PROGRESS, then UPDATE_COMPLETE."""
        body = {"template": template, "parameters": parameters, "keepLastAttempt": False}
        self._request("PUT", f"/deployments/{uuid}", json=body)

    def destroy(self, uuid: str) -> None:
        response = self.retry.call(
            f"the orchestrator at {self.url}", lambda: self.http.delete(f"/deployments/{uuid}")
        )
        if response.status_code == 404:
            return  # already gone: destroy is idempotent
        raise_for(response, f"the orchestrator (DELETE /deployments/{uuid})")

    @staticmethod
    def _state(body: dict[str, Any]) -> DeploymentState:
        status = str(body.get("status", "UNKNOWN"))
        return DeploymentState(
            id=str(body.get("uuid", "")),
            phase=PHASES.get(status, Phase.UNKNOWN),
            status=status,
            reason=str(body.get("statusReason") or ""),
            outputs=dict(body.get("outputs") or {}),
            details={
                k: body.get(k)
                for k in ("creationTime", "updateTime", "cloudProviderName", "task")
                if k in body
            },
        )


class OrchestratorTarget(Target):
    """INFN Cloud: the template and its inputs go to the orchestrator, which picks a cloud."""

    kind = "orchestrator"

    @contextmanager
    def client(self, url: str) -> Iterator[OrchestratorClient]:
        client = OrchestratorClient(url, self.tokens())
        try:
            yield client
        finally:
            client.close()

    def create(
        self, config: DeploymentConfig, config_path: Path | None, extra: dict[str, Any]
    ) -> DeploymentRecord:
        template, inputs = cloud_template(config)
        url = config.target.orchestrator_url
        with self.client(url) as client:
            state = client.create(template, inputs)
        return DeploymentRecord(
            state.id,
            self.kind,
            url,
            config.name,
            config=str(config_path or ""),
            ssh={"user": config.vm.os_user},
            extra=extra,
        )

    def status(self, record: DeploymentRecord) -> DeploymentState:
        with self.client(record.endpoint) as client:
            return client.status(record.id)

    def log(self, record: DeploymentRecord) -> str:
        with self.client(record.endpoint) as client:
            return client.log(record.id)

    def destroy(self, record: DeploymentRecord) -> None:
        with self.client(record.endpoint) as client:
            client.destroy(record.id)

    def scale(self, record: DeploymentRecord, workers: int) -> DeploymentState:
        """The documented update: the deployment's own template again, with the new worker
        count as its one parameter (every other input keeps its value, the template's default
        since rendering). The orchestrator chooses which workers go when the count drops."""
        with self.client(record.endpoint) as client:
            template = client.template(record.id)
            if not has_workers(template):
                raise not_a_cluster(record.id)
            client.update(record.id, template, {WORKERS_INPUT: workers})
            state = client.status(record.id)
        state.details["workers_requested"] = workers
        return state
