"""Where deployments go: the INDIGO PaaS orchestrator, an Infrastructure Manager, or this host.

`target_for` is the one place that turns a target's name (from the configuration or a
deployment's record) into its implementation; nothing else asks which target it holds.
"""

from __future__ import annotations

import importlib

from mlaas4hep_cli.errors import CliError
from mlaas4hep_cli.targets.base import DeploymentState, Phase, Target, TokenSource

# Imported on first use: each pulls in its own client code.
TARGETS = {
    "local": "mlaas4hep_cli.targets.local:LocalTarget",
    "orchestrator": "mlaas4hep_cli.targets.orchestrator:OrchestratorTarget",
    "im": "mlaas4hep_cli.targets.im:ImTarget",
}


def target_class(kind: str) -> type[Target]:
    if kind not in TARGETS:
        raise CliError(f"unknown target {kind!r}: one of {', '.join(TARGETS)}")
    module, name = TARGETS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def target_for(kind: str, tokens: TokenSource) -> Target:
    """The target named `kind` (local, orchestrator, im), asking `tokens` for a token when it
    needs one."""
    return target_class(kind)(tokens)


__all__ = ["TARGETS", "DeploymentState", "Phase", "Target", "target_class", "target_for"]
