"""A stand-in for the INDIGO PaaS orchestrator, which cannot run here (it needs INFN Cloud's
CMDB, SLAM, IM and clouds). It reproduces the documented REST shapes only: deployments created
with POST /deployments go CREATE_IN_PROGRESS -> CREATE_COMPLETE (or CREATE_FAILED) after a few
polls, are listed in Spring pages, and go DELETE_IN_PROGRESS -> gone. PUT /deployments/ID (the
documented update: a template and parameters) is accepted only for a deployment that is not
in progress, and goes UPDATE_IN_PROGRESS -> UPDATE_COMPLETE; GET /deployments/ID/template
returns the template in use. Tokens are checked
against the real test OpenID provider. `unavailable` answers 503 to the first N requests, to
exercise the client's backoff.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from mlaas4hep.auth import AuthError, AuthSettings, TokenVerifier
from mlaas4hep.auth.fastapi import bearer_token

from support.net import free_port, wait_for_port


@dataclass
class StubState:
    polls_until_ready: int = 2
    unavailable: int = 0
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)  # the PUT bodies, in order


def make_app(issuer: str, audience: list[str], state: StubState) -> FastAPI:
    app = FastAPI()
    verifier = TokenVerifier(AuthSettings(issuer=issuer, audience=audience))

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Any:
        state.requests.append((request.method, request.url.path))
        if state.unavailable > 0:
            state.unavailable -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        try:
            principal = verifier.verify(bearer_token(request))
        except AuthError as exc:
            return JSONResponse(
                {"code": 401, "title": "Unauthorized", "message": str(exc)}, status_code=401
            )
        request.state.subject = principal.subject
        return await call_next(request)

    def links(base: str, deployment_id: str) -> list[dict[str, str]]:
        href = f"{base}/deployments/{deployment_id}"
        return [
            {"rel": "self", "href": href},
            {"rel": "template", "href": f"{href}/template"},
            {"rel": "log", "href": f"{href}/log"},
        ]

    @app.post("/deployments", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        if "template" not in body or not isinstance(body.get("parameters", {}), dict):
            raise HTTPException(400, "template and parameters are required")
        deployment_id = str(uuid.uuid4())
        now = time.strftime("%Y-%m-%dT%H:%M+0000", time.gmtime())
        deployment = {
            "uuid": deployment_id,
            "creationTime": now,
            "updateTime": now,
            "status": "CREATE_IN_PROGRESS",
            "statusReason": None,
            "task": "NONE",
            "cloudProviderName": "provider-stub",
            "outputs": {},
            "createdBy": {"issuer": issuer, "subject": request.state.subject},
            "links": links(str(request.base_url).rstrip("/"), deployment_id),
            "_template": body["template"],
            "_parameters": body.get("parameters", {}),
        }
        state.deployments[deployment_id] = deployment
        state.polls[deployment_id] = 0
        return public(deployment)

    def advance(deployment: dict[str, Any]) -> None:
        deployment_id = deployment["uuid"]
        state.polls[deployment_id] += 1
        if (
            deployment["status"] == "UPDATE_IN_PROGRESS"
            and state.polls[deployment_id] >= state.polls_until_ready
        ):
            deployment["status"] = "UPDATE_COMPLETE"
        if (
            deployment["status"] == "CREATE_IN_PROGRESS"
            and state.polls[deployment_id] >= state.polls_until_ready
        ):
            if "fail" in str(deployment["_parameters"].get("project_name", "")):
                deployment["status"] = "CREATE_FAILED"
                deployment["statusReason"] = "Error while configuring the VM: Ansible failed"
            else:
                deployment["status"] = "CREATE_COMPLETE"
                deployment["outputs"] = {
                    "node_ip": "127.0.0.1",
                    "node_creds": {"user": "mlaas"},
                    "workflow_endpoint": "https://127.0.0.1:4433",
                }

    def owned(request: Request, deployment_id: str) -> dict[str, Any]:
        deployment = state.deployments.get(deployment_id)
        if deployment is None or deployment["createdBy"]["subject"] != request.state.subject:
            raise HTTPException(404, f"The deployment <{deployment_id}> doesn't exist")
        return deployment

    @app.get("/deployments/{deployment_id}")
    def show(request: Request, deployment_id: str) -> dict[str, Any]:
        deployment = owned(request, deployment_id)
        if deployment["status"] == "DELETE_IN_PROGRESS":
            del state.deployments[deployment_id]
            return {**public(deployment), "status": "DELETE_IN_PROGRESS"}
        advance(deployment)
        return public(deployment)

    @app.get("/deployments/{deployment_id}/log", response_class=PlainTextResponse)
    def log(request: Request, deployment_id: str) -> str:
        deployment = owned(request, deployment_id)
        return f"deployment {deployment_id}: {deployment['status']}\n"

    @app.get("/deployments/{deployment_id}/template", response_class=PlainTextResponse)
    def template(request: Request, deployment_id: str) -> str:
        return owned(request, deployment_id)["_template"]

    @app.put("/deployments/{deployment_id}", status_code=202)
    async def update(request: Request, deployment_id: str) -> None:
        deployment = owned(request, deployment_id)
        body = await request.json()
        if "template" not in body or not isinstance(body.get("parameters", {}), dict):
            raise HTTPException(400, "template and parameters are required")
        if deployment["status"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED"):
            raise HTTPException(409, f"Cannot update a deployment in {deployment['status']} state")
        state.updates.append(body)
        deployment.update(
            status="UPDATE_IN_PROGRESS",
            updateTime=time.strftime("%Y-%m-%dT%H:%M+0000", time.gmtime()),
            _template=body["template"],
            _parameters=body.get("parameters", {}),
        )
        state.polls[deployment_id] = 0

    @app.delete("/deployments/{deployment_id}", status_code=204)
    def delete(request: Request, deployment_id: str) -> None:
        owned(request, deployment_id)["status"] = "DELETE_IN_PROGRESS"

    @app.get("/deployments")
    def listing(request: Request, page: int = 0, size: int = 10) -> dict[str, Any]:
        mine = [
            public(d)
            for d in state.deployments.values()
            if d["createdBy"]["subject"] == request.state.subject
        ]
        pages = max(1, -(-len(mine) // size))
        return {
            "content": mine[page * size : (page + 1) * size],
            "page": {"size": size, "totalElements": len(mine), "totalPages": pages, "number": page},
            "links": [{"rel": "self", "href": str(request.url)}],
        }

    return app


def public(deployment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in deployment.items() if not k.startswith("_")}


@dataclass
class OrchestratorStub:
    url: str
    state: StubState
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_stub(issuer: str, audience: list[str]) -> OrchestratorStub:
    state = StubState()
    port = free_port()
    config = uvicorn.Config(
        make_app(issuer, audience, state), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    return OrchestratorStub(f"http://127.0.0.1:{port}", state, server, thread)
