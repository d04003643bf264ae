"""The INFN Cloud dashboard's catalogue files for our template stay in step with it."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from mlaas4hep_cli.config import FLAVORS

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = yaml.safe_load((REPO / "tosca" / "mlaas4hep.yaml").read_text())
METADATA = REPO / "tosca" / "metadata"
DASHBOARD_ONLY = {"instance_flavor"}  # the dashboard's size menu: fills num_cpus and mem_size


def test_the_catalogue_entry_names_the_template() -> None:
    catalogue = yaml.safe_load((METADATA / "metadata.yml").read_text())
    [service] = catalogue["services"]
    assert set(service) == {"description", "metadata", "templates"}
    assert {"display_name", "bookmark_id", "guide_url", "icon", "visibility"} <= set(
        service["metadata"]
    )
    assert [t["name"] for t in service["templates"]] == [TEMPLATE["metadata"]["template_name"]]
    assert service["metadata"]["icon"] == TEMPLATE["metadata"]["icon"]


def test_every_input_is_shown_in_one_of_the_declared_tabs() -> None:
    parameters = yaml.safe_load((METADATA / "mlaas4hep.parameters.yml").read_text())
    tabs = parameters["tabs"]
    assert all(" " not in tab for tab in tabs)  # the dashboard uses them as HTML ids
    assert "Advanced" not in tabs  # the dashboard adds that tab itself
    inputs = TEMPLATE["topology_template"]["inputs"]
    assert set(parameters["inputs"]) == set(inputs) | DASHBOARD_ONLY
    assert {entry["tab"] for entry in parameters["inputs"].values()} == set(tabs)


def test_the_dashboard_size_menu_offers_the_clis_flavors_within_the_templates_choices() -> None:
    parameters = yaml.safe_load((METADATA / "mlaas4hep.parameters.yml").read_text())
    inputs = TEMPLATE["topology_template"]["inputs"]
    offered = {}
    for choice in parameters["inputs"]["instance_flavor"]["constraints"]:
        pair = ast.literal_eval(choice["value"])  # the dashboard's format: a Python dict literal
        assert set(pair) == {"num_cpus", "mem_size"}
        cpus, memory = int(pair["num_cpus"]), pair["mem_size"]
        assert cpus in inputs["num_cpus"]["constraints"][0]["valid_values"]
        assert memory in inputs["mem_size"]["constraints"][0]["valid_values"]
        offered[choice["label"].split()[0]] = (cpus, memory)
    assert offered == FLAVORS
