"""The orchestrator client against a stand-in reproducing the INDIGO PaaS orchestrator's
documented REST shapes (the real orchestrator needs INFN Cloud and cannot run here); tokens come
from the real test OpenID provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.targets import Phase
from mlaas4hep_cli.targets.base import Retry
from mlaas4hep_cli.targets.orchestrator import OrchestratorClient

from support.oidc_provider import AUDIENCE, OidcProvider
from support.orchestrator_stub import OrchestratorStub, start_stub

pytestmark = pytest.mark.integration
FAST = Retry(attempts=4, first_wait=0.01)


@pytest.fixture
def stub(oidc: OidcProvider) -> Iterator[OrchestratorStub]:
    started = start_stub(oidc.issuer, [AUDIENCE])
    yield started
    started.stop()


def client(stub: OrchestratorStub, oidc: OidcProvider, user: str = "alice") -> OrchestratorClient:
    return OrchestratorClient(stub.url, oidc.access_token(user), FAST)


def test_a_deployment_is_created_followed_to_complete_and_destroyed(
    stub: OrchestratorStub, oidc: OidcProvider
) -> None:
    orchestrator = client(stub, oidc)
    created = orchestrator.create(
        "tosca_definitions_version: tosca_simple_yaml_1_0\n", {"num_cpus": 4}
    )
    assert created.phase is Phase.CREATING and created.status == "CREATE_IN_PROGRESS"
    states = [orchestrator.status(created.id) for _ in range(3)]
    assert states[-1].phase is Phase.READY and states[-1].status == "CREATE_COMPLETE"
    assert states[-1].outputs["node_ip"] == "127.0.0.1"
    assert [s.id for s in orchestrator.list()] == [created.id]
    assert "CREATE_COMPLETE" in orchestrator.log(created.id)
    orchestrator.destroy(created.id)
    assert orchestrator.status(created.id).phase is Phase.DELETING
    assert orchestrator.status(created.id).phase is Phase.DELETED
    orchestrator.destroy(created.id)  # idempotent
    assert orchestrator.list() == []


def test_a_failed_deployment_reports_the_reason(stub: OrchestratorStub, oidc: OidcProvider) -> None:
    orchestrator = client(stub, oidc)
    created = orchestrator.create("template", {"project_name": "will-fail"})
    state = [orchestrator.status(created.id) for _ in range(3)][-1]
    assert state.phase is Phase.FAILED and "Ansible failed" in state.reason


def test_other_users_do_not_see_my_deployments(stub: OrchestratorStub, oidc: OidcProvider) -> None:
    created = client(stub, oidc, "alice").create("template", {})
    bob = client(stub, oidc, "bob")
    assert bob.list() == [] and bob.status(created.id).phase is Phase.DELETED


def test_pages_are_followed(stub: OrchestratorStub, oidc: OidcProvider) -> None:
    orchestrator = client(stub, oidc)
    ids = {orchestrator.create("template", {}).id for _ in range(55)}
    assert {s.id for s in orchestrator.list()} == ids


def test_an_overloaded_orchestrator_is_retried_with_backoff(
    stub: OrchestratorStub, oidc: OidcProvider
) -> None:
    orchestrator = client(stub, oidc)
    stub.state.unavailable = 2
    assert orchestrator.create("template", {}).phase is Phase.CREATING
    stub.state.unavailable = 10
    with pytest.raises(CliError, match=r"not answering after 4 attempts .*503"):
        orchestrator.list()


def test_a_down_orchestrator_is_reported_after_retries() -> None:
    waits: list[float] = []
    retry = Retry(attempts=3, first_wait=0.5, sleep=waits.append)
    orchestrator = OrchestratorClient("http://127.0.0.1:1", "token", retry)
    with pytest.raises(CliError, match=r"http://127\.0\.0\.1:1 is not answering after 3 attempts"):
        orchestrator.list()
    assert waits == [0.5, 1.0]


def test_an_expired_token_names_the_token_command(
    stub: OrchestratorStub, oidc: OidcProvider
) -> None:
    import time

    expired = oidc.mint({"exp": int(time.time()) - 120})  # beyond the 30 s clock-skew leeway
    with pytest.raises(CliError, match=r"refused the credentials .*mlaas4hep token"):
        OrchestratorClient(stub.url, expired, FAST).list()
