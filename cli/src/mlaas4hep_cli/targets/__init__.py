"""Where deployments go: the INDIGO PaaS orchestrator, an Infrastructure Manager, or this host."""

from mlaas4hep_cli.targets.base import DeploymentState, Phase

__all__ = ["DeploymentState", "Phase"]
