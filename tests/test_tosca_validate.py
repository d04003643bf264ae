"""validate_template: tosca-parser with the INFN Cloud types read from the shared local copy,
plus the input checks tosca-parser skips. Every problem names its file, line and field."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mlaas4hep_cli.tosca import validate_template
from mlaas4hep_cli.tosca.locations import upstream_types_dir

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "tosca" / "mlaas4hep.yaml"


@pytest.fixture
def edited(tmp_path: Path):
    """A copy of the template with one textual edit."""

    def edit(old: str, new: str) -> Path:
        text = TEMPLATE.read_text()
        assert old in text, old
        path = tmp_path / "mlaas4hep.yaml"
        path.write_text(text.replace(old, new, 1))
        return path

    return edit


def test_the_template_validates_offline_and_fast() -> None:
    validate_template(TEMPLATE)  # first call pays for loading tosca-parser's definitions
    started = time.perf_counter()
    problems = validate_template(TEMPLATE)
    elapsed = time.perf_counter() - started
    assert problems == []
    assert elapsed < 1.0, f"validation took {elapsed:.2f} s"


def test_an_unknown_property_is_named_with_its_line_and_a_suggestion(edited) -> None:
    path = edited(
        "        xrootd_port: { get_input: xrootd_port }\n",
        "        xrootd_port: { get_input: xrootd_port }\n        xrootd_portt: 1094\n",
    )
    problems = validate_template(path)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.field == "topology_template.node_templates.mlaas4hep.properties.xrootd_portt"
    assert "xrootd_portt" in problem.message
    assert path.read_text().splitlines()[problem.line - 1].strip() == "xrootd_portt: 1094"
    assert problem.fix == 'did you mean "xrootd_port"?'


def test_an_input_read_inside_the_stacks_variables_must_exist(edited) -> None:
    """tosca-parser does not follow get_input inside a map property; IM would fail on it."""
    path = edited("{ get_input: x509_vo }", "{ get_input: x509_voo }")
    [problem] = validate_template(path)
    assert (
        problem.field
        == "topology_template.node_templates.mlaas4hep.properties.vars.mlaas4hep_x509_vo"
    )
    assert "x509_voo" in problem.message
    assert path.read_text().splitlines()[problem.line - 1].strip().startswith("mlaas4hep_x509_vo:")
    assert problem.fix == 'did you mean "x509_vo"?'


def test_a_cpu_count_that_is_not_offered_is_reported_on_its_input(edited) -> None:
    path = edited("      default: 4\n", "      default: 3\n")
    [problem] = validate_template(path)
    assert problem.field == "topology_template.inputs.num_cpus.default"
    assert "3" in problem.message
    assert "1, 2, 4, 8, 16, 32" in problem.fix
    assert path.read_text().splitlines()[problem.line - 1].strip() == "default: 3"


def test_a_port_out_of_range_is_reported_on_its_entry(edited) -> None:
    path = edited(
        "tfaas: { protocol: tcp, source: 8081 }", "tfaas: { protocol: tcp, source: 80810 }"
    )
    [problem] = validate_template(path)
    assert problem.field == "topology_template.inputs.service_ports.default.tfaas.source"
    assert "80810" in problem.message
    assert "1 to 65535" in problem.fix


def test_parameter_values_are_checked_against_the_inputs() -> None:
    problems = validate_template(
        TEMPLATE,
        parameters={"mem_size": "3 GB", "xrootd_port": 0, "front_proxy": "nginx", "num_cpu": 4},
    )
    by_field = {problem.field: problem for problem in problems}
    assert set(by_field) == {
        "parameters.mem_size",
        "parameters.xrootd_port",
        "parameters.front_proxy",
        "parameters.num_cpu",
    }
    assert "8 GB" in by_field["parameters.mem_size"].fix
    assert by_field["parameters.num_cpu"].fix == 'did you mean "num_cpus"?'


def test_memory_sizes_compare_by_amount_not_spelling() -> None:
    assert validate_template(TEMPLATE, parameters={"mem_size": "16GB"}) == []


def test_the_stack_needs_a_port_for_each_service(edited) -> None:
    path = edited("        jupyterhub: { protocol: tcp, source: 8443 }\n", "")
    problems = validate_template(path)
    assert [p.field for p in problems] == ["topology_template.inputs.service_ports.default"]
    assert "jupyterhub" in problems[0].message


def test_an_output_indexing_a_list_property_is_reported_before_it_crashes_the_parser(
    edited,
) -> None:
    path = edited(
        "  outputs:\n",
        "  outputs:\n    os_users:\n      value: { get_property: [ server, os_users, 0 ] }\n",
    )
    [problem] = validate_template(path)
    assert problem.field == "topology_template.outputs.os_users"
    assert "crashes" in problem.message


def test_an_import_without_a_local_copy_is_reported_not_fetched(edited) -> None:
    path = edited(
        "https://baltig.infn.it/infn-cloud/tosca-types/raw/v3.4.0/tosca_types/base/basic_types.yaml",
        "https://example.org/types.yaml",
    )
    [problem] = validate_template(path)
    assert problem.field == "imports.0"
    assert "https://example.org/types.yaml" in problem.message
    assert problem.line == 4


def test_a_types_folder_given_by_the_user_is_used(tmp_path: Path) -> None:
    types = tmp_path / "types"
    shutil.copytree(upstream_types_dir(), types)
    assert validate_template(TEMPLATE, types) == []
    (types / "infn-cloud" / "tosca_types" / "base" / "basic_types.yaml").unlink()
    problems = validate_template(TEMPLATE, types)
    assert problems and all("does not exist" in problem.message for problem in problems)
    assert (TEMPLATE, "imports.0") in {(problem.file, problem.field) for problem in problems}


def test_upstream_templates_validate_against_the_same_types() -> None:
    examples = upstream_types_dir() / "examples"
    assert validate_template(examples / "docker_compose_im.yaml") == []
    [problem] = validate_template(examples / "infn_docker_compose.yaml")
    assert problem.field == "topology_template.outputs.os_users"
