"""The IM client (the `im` target) against a real Infrastructure Manager on loopback with its
Dummy connector: create, follow the state, outputs, contextualisation log, VM info (as `dodas
login` reads it), list and destroy."""

from __future__ import annotations

import time

import pytest

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.targets import Phase
from mlaas4hep_cli.targets.base import Retry
from mlaas4hep_cli.targets.im import ImClient, ssh_details

from support.im_server import AUTH, ImServer

pytestmark = pytest.mark.integration

TEMPLATE = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    server:
      type: tosca.nodes.Compute
      capabilities:
        host:
          properties: {num_cpus: 2, mem_size: 4 GB}
        os:
          properties: {type: linux, distribution: ubuntu, version: "22.04"}
  outputs:
    node_ip:
      value: { get_attribute: [ server, public_address ] }
"""


def test_an_infrastructure_is_created_followed_inspected_and_destroyed(im: ImServer) -> None:
    client = ImClient(im.url, AUTH, Retry(attempts=3, first_wait=0.1))
    infrastructure = client.create(TEMPLATE)
    deadline = time.monotonic() + 120
    state = client.status(infrastructure)
    while not state.phase.final:
        assert time.monotonic() < deadline, f"still {state.status}"
        time.sleep(1)
        state = client.status(infrastructure)
    assert state.phase is Phase.READY and state.status == "configured"
    assert "node_ip" in state.outputs
    assert infrastructure in client.list()
    assert isinstance(client.log(infrastructure), str)
    details = ssh_details(client.vm_info(infrastructure, 0))
    assert details == {"host": "10.0.0.1", "user": "username", "private_key": None, "port": 22}
    client.destroy(infrastructure)
    assert client.status(infrastructure).phase is Phase.DELETED
    client.destroy(infrastructure)  # idempotent
    assert infrastructure not in client.list()


def test_wrong_credentials_are_refused_clearly(im: ImServer) -> None:
    client = ImClient(im.url, "no credentials here", Retry(attempts=2, first_wait=0.01))
    with pytest.raises(CliError, match=r"refused the credentials \(401\): check the IM auth"):
        client.create(TEMPLATE)


def test_a_down_im_is_retried_then_reported() -> None:
    client = ImClient("http://127.0.0.1:1", AUTH, Retry(attempts=2, first_wait=0.01))
    with pytest.raises(CliError, match="not answering after 2 attempts"):
        client.list()
