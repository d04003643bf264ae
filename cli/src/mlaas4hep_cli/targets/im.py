"""The Infrastructure Manager (IM) REST API, as `dodas create` uses it:

    POST   /infrastructures                 TOSCA (text/yaml) -> {"uri": ".../infrastructures/ID"}
    GET    /infrastructures                 {"uri-list": [{"uri": ...}]}
    GET    /infrastructures/ID/state        {"state": {"state": ..., "vm_states": {...}}}
    GET    /infrastructures/ID/outputs      {"outputs": {...}}
    GET    /infrastructures/ID/contmsg      the contextualisation log
    GET    /infrastructures/ID/vms/N        the VM's RADL (IP, user, the SSH key IM made)
    GET    /infrastructures/ID/tosca        {"tosca": the infrastructure's TOSCA document}
    POST   /infrastructures/ID              TOSCA merged into the infrastructure's: a new count
                                            of a scalable node adds VMs, or removes those in
                                            its removal_list
    DELETE /infrastructures/ID

The Authorization header holds credential lines (`id = im; type = InfrastructureManager; ...`,
`id = ost; type = OpenStack; ...; password = <OIDC token>`) joined by a literal backslash-n.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlaas4hep_cli.errors import CliError
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
from mlaas4hep_cli.tosca.inputs import WORKER_REMOVAL_INPUT, WORKERS_INPUT, has_workers

if TYPE_CHECKING:
    from mlaas4hep_cli.config import DeploymentConfig
    from mlaas4hep_cli.remote import SshEndpoint

IM_CREDENTIALS = (
    "check the IM authorization file (an 'id = im; type = InfrastructureManager' "
    "line, and a fresh token where it uses one: `mlaas4hep token`)"
)

WORKER_NODE = "workers"  # the worker Compute node of tosca/mlaas4hep-cluster.yaml
# IM answers a request adding VMs once the cloud has started them: minutes on a real cloud.
ADD_VMS_TIMEOUT = 900

PHASES = {
    "pending": Phase.CREATING,
    "running": Phase.CREATING,
    "unknown": Phase.CREATING,
    "configured": Phase.READY,
    "unconfigured": Phase.FAILED,
    "failed": Phase.FAILED,
    "stopped": Phase.FAILED,
    "off": Phase.FAILED,
    "deleting": Phase.DELETING,
    "deleted": Phase.DELETED,
}


def read_auth(path: Path, token: str | None = None) -> str:
    """IM authorization lines from a file (one credential per line, '#' comments);
    `{token}` or a `token = ` placeholder in a line is replaced by the OIDC access token."""
    try:
        lines = [line.strip() for line in Path(path).expanduser().read_text().splitlines()]
    except OSError as exc:
        raise CliError(f"{path}: cannot read the IM authorization file ({exc.strerror})") from None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not any("InfrastructureManager" in line for line in lines):
        raise CliError(f"{path}: needs an 'id = im; type = InfrastructureManager; ...' line")
    if token:
        lines = [line.replace("{token}", token) for line in lines]
    return "\\n".join(lines)


class ImClient:
    def __init__(
        self, url: str, auth: str, retry: Retry | None = None, verify: bool | str = True
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry()
        self.http = httpx.Client(
            base_url=self.url,
            timeout=120,
            verify=verify,
            headers={"Authorization": auth, "Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, what: str = "", **options: Any) -> httpx.Response:
        response = self.retry.call(
            f"the Infrastructure Manager at {self.url}",
            lambda: self.http.request(method, path, **options),
        )
        raise_for(
            response, f"the Infrastructure Manager ({what or method + ' ' + path})", IM_CREDENTIALS
        )
        return response

    @staticmethod
    def infrastructure_id(uri: str) -> str:
        return uri.rstrip("/").rsplit("/", 1)[-1]

    def create(self, template: str, dry_run: bool = False) -> str:
        params = {"async": "yes"}
        if dry_run:
            params["dry_run"] = "yes"
        response = self._request(
            "POST",
            "/infrastructures",
            "create",
            content=template,
            params=params,
            headers={"Content-Type": "text/yaml"},
        )
        return self.infrastructure_id(response.json()["uri"])

    def status(self, infrastructure: str) -> DeploymentState:
        response = self.retry.call(
            f"the Infrastructure Manager at {self.url}",
            lambda: self.http.get(f"/infrastructures/{infrastructure}/state"),
        )
        if response.status_code == 404:
            return DeploymentState(
                infrastructure, Phase.DELETED, "deleted", "no such infrastructure"
            )
        raise_for(response, "the Infrastructure Manager (state)", IM_CREDENTIALS)
        state = response.json().get("state", {})
        word = str(state.get("state", "unknown"))
        outputs = self.outputs(infrastructure) if word == "configured" else {}
        reason = (
            ""
            if word != "unconfigured"
            else "contextualisation failed: see `mlaas4hep status --log`"
        )
        vm_states = state.get("vm_states") or {}
        details: dict[str, Any] = {"vm_states": vm_states}
        if len(vm_states) > 1:  # a cluster's front and workers (one VM: no workers to list)
            details["workers"] = self.workers(infrastructure, vm_states)
        return DeploymentState(
            infrastructure, PHASES.get(word, Phase.UNKNOWN), word, reason, outputs, details
        )

    def workers(
        self, infrastructure: str, vm_states: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The worker VMs of a cluster, oldest first: {"id", "state", "address"} each."""
        if vm_states is None:
            body = self._request("GET", f"/infrastructures/{infrastructure}/state", "state")
            vm_states = body.json().get("state", {}).get("vm_states") or {}
        found = []
        for vm in sorted(vm_states, key=lambda name: (len(name), name)):
            response = self.retry.call(
                f"the Infrastructure Manager at {self.url}",
                lambda vm=vm: self.http.get(f"/infrastructures/{infrastructure}/vms/{vm}"),
            )
            if response.status_code >= 400:  # removed meanwhile
                continue
            body = response.json()
            radl = body.get("radl", []) if isinstance(body, dict) else body
            system = next((item for item in radl if item.get("class") == "system"), {})
            if system.get("id") == WORKER_NODE:
                address = ssh_details(radl)["host"]
                found.append({"id": vm, "state": vm_states[vm], "address": address})
        return found

    def template(self, infrastructure: str) -> str:
        """The infrastructure's TOSCA document (as IM keeps it)."""
        body = self._request("GET", f"/infrastructures/{infrastructure}/tosca", "tosca").json()
        return str(body.get("tosca", ""))

    def update(self, infrastructure: str, tosca: str) -> list[str]:
        """Merge a TOSCA document into the infrastructure's: the ids of the VMs it added."""
        response = self._request(
            "POST",
            f"/infrastructures/{infrastructure}",
            "update",
            content=tosca,
            headers={"Content-Type": "text/yaml"},
            timeout=ADD_VMS_TIMEOUT,
        )
        return [self.infrastructure_id(item["uri"]) for item in response.json()["uri-list"]]

    def outputs(self, infrastructure: str) -> dict[str, Any]:
        response = self.retry.call(
            f"the Infrastructure Manager at {self.url}",
            lambda: self.http.get(f"/infrastructures/{infrastructure}/outputs"),
        )
        if response.status_code >= 400:
            return {}
        return dict(response.json().get("outputs") or {})

    def list(self) -> list[str]:
        body = self._request("GET", "/infrastructures", "list").json()
        return [self.infrastructure_id(item["uri"]) for item in body.get("uri-list", [])]

    def log(self, infrastructure: str) -> str:
        return self._request(
            "GET", f"/infrastructures/{infrastructure}/contmsg", headers={"Accept": "text/plain"}
        ).text

    def vm_info(self, infrastructure: str, vm: int = 0) -> list[dict[str, Any]]:
        body = self._request("GET", f"/infrastructures/{infrastructure}/vms/{vm}").json()
        return body.get("radl", []) if isinstance(body, dict) else body

    def destroy(self, infrastructure: str) -> None:
        response = self.retry.call(
            f"the Infrastructure Manager at {self.url}",
            lambda: self.http.delete(f"/infrastructures/{infrastructure}"),
        )
        if response.status_code == 404:
            return
        raise_for(response, "the Infrastructure Manager (destroy)", IM_CREDENTIALS)


def ssh_details(radl: list[dict[str, Any]]) -> dict[str, Any]:
    """Host, user and private key of a VM from IM's RADL (as `dodas login` reads them)."""
    system = next((item for item in radl if item.get("class") == "system"), {})
    host = next(
        (
            system[key]
            for key in sorted(system)
            if key.startswith("net_interface.") and key.endswith(".ip") and system[key]
        ),
        None,
    )
    return {
        "host": host,
        "user": system.get("disk.0.os.credentials.username"),
        "private_key": system.get("disk.0.os.credentials.private_key"),
        "port": int(system.get("disk.0.os.credentials.port", 22) or 22),
    }


class ImTarget(Target):
    """An Infrastructure Manager: the template goes to IM, which makes and configures the VMs.

    IM's credentials are lines of the authorization file; a `{token}` there is replaced by the
    operator's access token (asked for only then).
    """

    kind = "im"

    @contextmanager
    def client(self, url: str, auth_file: Path) -> Iterator[ImClient]:
        auth_file = auth_file.expanduser()
        try:
            wants_token = "{token}" in auth_file.read_text()
        except OSError as exc:
            raise CliError(
                f"{auth_file}: cannot read the IM authorization file ({exc.strerror})"
            ) from None
        client = ImClient(url, read_auth(auth_file, self.tokens() if wants_token else None))
        try:
            yield client
        finally:
            client.close()

    def recorded_client(self, record: DeploymentRecord) -> Any:
        auth_file = record.extra.get("im_auth_file")
        if not auth_file:
            raise CliError(f"deployment {record.id}: no IM authorization file recorded")
        return self.client(record.endpoint, Path(auth_file))

    def create(
        self, config: DeploymentConfig, config_path: Path | None, extra: dict[str, Any]
    ) -> DeploymentRecord:
        if config.target.im_auth_file is None:
            raise CliError("target.im_auth_file is required for the im target")
        auth_file = config.target.im_auth_file.expanduser()
        template, _ = cloud_template(config)
        with self.client(config.target.im_url, auth_file) as client:
            infrastructure = client.create(template)
        return DeploymentRecord(
            infrastructure,
            self.kind,
            config.target.im_url,
            config.name,
            config=str(config_path or ""),
            extra={**extra, "im_auth_file": str(auth_file)},
        )

    def status(self, record: DeploymentRecord) -> DeploymentState:
        with self.recorded_client(record) as client:
            return client.status(record.id)

    def log(self, record: DeploymentRecord) -> str:
        with self.recorded_client(record) as client:
            return client.log(record.id)

    def destroy(self, record: DeploymentRecord) -> None:
        with self.recorded_client(record) as client:
            client.destroy(record.id)

    def scale(self, record: DeploymentRecord, workers: int) -> DeploymentState:
        """A new worker count in IM's TOSCA for the infrastructure: IM adds worker VMs, or
        removes the newest ones (named in the removal list), and configures the cluster again."""
        with self.recorded_client(record) as client:
            if not has_workers(client.template(record.id)):
                raise not_a_cluster(record.id)
            before = client.status(record.id)
            # IM counts the VMs it has when it works out what to add or remove.
            if before.status == "pending" or before.phase in (Phase.DELETING, Phase.DELETED):
                raise CliError(
                    f"deployment {record.id} is {before.status}: scale it once its VMs are "
                    "running (`mlaas4hep status`)"
                )
            current = before.details.get("workers", [])
            if workers != len(current):
                removed = [vm["id"] for vm in current[workers:]]
                client.update(record.id, worker_count_update(workers, removed))
            state = client.status(record.id)
        state.details.setdefault("workers", [])  # a cluster, even with none left
        return state

    def ssh_endpoint(self, record: DeploymentRecord, vm: int = 0) -> SshEndpoint:
        """IM made the VM's login: its address, user and key come from the VM's RADL."""
        if record.ssh.get("host"):
            return super().ssh_endpoint(record, vm)
        from mlaas4hep_cli.remote import private_key_file

        with self.recorded_client(record) as client:
            details = ssh_details(client.vm_info(record.id, vm))
        if details.get("private_key"):
            details["key_file"] = str(private_key_file(record.id, vm, details.pop("private_key")))
        known = {k: v for k, v in details.items() if v and k != "private_key"}
        return super().ssh_endpoint(
            DeploymentRecord(record.id, record.target, record.endpoint, record.name, ssh=known),
            vm,
        )


def worker_count_update(workers: int, removed: list[str]) -> str:
    """The TOSCA document IM merges into a cluster's to set its worker count: only the two
    inputs change. The removal list names exactly the VMs to go (IM removes the first entries
    of the merged list, so an older, longer list left in IM's copy does no harm)."""
    import yaml

    document = {
        "tosca_definitions_version": "tosca_simple_yaml_1_0",
        "topology_template": {
            "inputs": {
                WORKERS_INPUT: {"type": "integer", "default": workers},
                WORKER_REMOVAL_INPUT: {
                    "type": "list",
                    "entry_schema": {"type": "string"},
                    "default": removed,
                },
            }
        },
    }
    return yaml.safe_dump(document, sort_keys=False)
