"""TOSCA for INFN Cloud: the orchestrator's inputs from a deployment configuration, a rendered
template with those inputs as defaults, and validation (the upstream types read from a folder
given, or fetched once into a cache and checked against pinned hashes)."""

from mlaas4hep_cli.tosca.inputs import tosca_inputs
from mlaas4hep_cli.tosca.locations import DEFAULT_SOURCE, ProjectSource, upstream_types_dir
from mlaas4hep_cli.tosca.problems import Problem
from mlaas4hep_cli.tosca.render import RenderedTosca, render_template
from mlaas4hep_cli.tosca.validate import validate_template

__all__ = [
    "DEFAULT_SOURCE",
    "Problem",
    "ProjectSource",
    "RenderedTosca",
    "render_template",
    "tosca_inputs",
    "upstream_types_dir",
    "validate_template",
]
