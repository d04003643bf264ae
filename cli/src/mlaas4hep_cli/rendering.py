"""What a deployment configuration renders to, and the checks `mlaas4hep validate` runs.

render: the TOSCA template with its inputs filled and the orchestrator's parameters (cloud
targets), the Ansible variables and inventory for a direct run, and the compose environment —
the last made by the stack role's own template through Ansible, so it cannot drift from what a
deployment writes.
validate: the TOSCA template against the INDIGO/INFN types (tosca-parser + the constraints it
skips), the playbook's syntax with these variables, and the compose file's variables; run side
by side, a second or two in all.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlaas4hep_cli.config import LOCAL_ISSUER, DeploymentConfig
from mlaas4hep_cli.deployment_vars import ansible_vars
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.playbook import ansible_environment, ansible_tool
from mlaas4hep_cli.targets import target_class


@dataclass
class Finding:
    source: str  # tosca | ansible | compose | config
    where: str
    message: str


@dataclass
class Rendered:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)


def cloud_like(config: DeploymentConfig) -> bool:
    return config.oidc.issuer != LOCAL_ISSUER


def write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def render(config: DeploymentConfig, out: Path) -> Rendered:
    rendered = Rendered(out)
    local = target_class(config.target.kind).on_this_host
    variables = ansible_vars(config, local=local)
    rendered.files["ansible vars"] = write_private(
        out / "ansible" / "vars.json", json.dumps(variables, indent=1)
    )
    inventory = (
        "[mlaas4hep]\nlocalhost ansible_connection=local\n"
        if local
        else "[mlaas4hep]\n# the VM: its address (`mlaas4hep outputs ID`) and login user\n"
        f"VM_ADDRESS ansible_user={config.vm.os_user} ansible_become=true\n"
    )
    rendered.files["ansible inventory"] = write_private(
        out / "ansible" / "inventory.ini", inventory
    )
    rendered.files["compose env"] = render_compose_env(variables, out / "compose" / "compose.env")
    if cloud_like(config) and not local:
        from mlaas4hep_cli.tosca import render_template

        tosca = render_template(config, out / "tosca")
        rendered.files["tosca template"] = tosca.template
        rendered.files["orchestrator parameters"] = tosca.parameters
    return rendered


def render_compose_env(variables: dict[str, Any], target: Path) -> Path:
    """The stack role's env.j2, rendered by Ansible's own template engine with the role's vars.

    The engine runs in a forked child of this process: the `ansible` command's start-up and the
    copy module it runs would cost about two seconds, and importing Ansible here would leave its
    patches of interpreter globals (`sys.intern`) in the caller, which breaks PyTorch's compiler
    in any process that renders and later trains (the demo, a notebook, the tests).
    """
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as child:
        return child.apply(_render_compose_env, (variables, target))


def _render_compose_env(variables: dict[str, Any], target: Path) -> Path:
    """Variables take the precedence a deployment gives them (role defaults, then role vars,
    then the deployment's values), each loaded the way Ansible loads an `-e @file`, and the
    template gets the template module's own variables and options, so the result is what the
    role writes on a deployment."""
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, generate_ansible_template_vars, trust_as_template

    role = toolkit_home() / "ansible" / "roles" / "mlaas4hep_stack"
    engine = variables.get("mlaas4hep_container_engine", "docker")
    source = role / "templates" / "env.j2"
    scratch = target.parent / ".ansible"
    values = write_private(scratch / "vars.json", json.dumps(variables))
    loader = DataLoader()
    try:
        available: dict[str, Any] = {}
        for path in (
            role / "defaults" / "main.yml",
            role / "vars" / "main.yml",
            role / "vars" / f"{engine}.yml",
            values,
        ):
            available.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
        available.update(generate_ansible_template_vars(str(source), str(source), str(target)))
        templar = Templar(loader=loader, variables=available)
        text = templar.template(
            trust_as_template(loader.get_text_file_contents(str(source))),
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"},
        )
    except AnsibleError as exc:
        from mlaas4hep_cli.errors import CliError

        raise CliError(f"rendering the compose environment failed:\n{str(exc)[-1500:]}") from None
    return write_private(target, text or "")


def syntax_check(variables: dict[str, Any], scratch: Path) -> list[Finding]:
    home = toolkit_home() / "ansible"
    values = write_private(scratch / "vars.json", json.dumps(variables))
    command = [
        ansible_tool("ansible-playbook"),
        "--syntax-check",
        "-i",
        str(home / "inventory" / "local.ini"),
        str(home / "site.yml"),
        "-e",
        f"@{values}",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=ansible_environment(scratch), check=False
    )
    if result.returncode == 0:
        return []
    text = (result.stderr or result.stdout).strip().splitlines()
    return [Finding("ansible", "ansible/site.yml", "\n".join(text[-8:]))]


VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:-[^}]*)?\}")


def compose_check(env: dict[str, str]) -> list[Finding]:
    """Every variable compose.yaml uses without a default is set; every service has an image."""
    path = toolkit_home() / "images" / "compose.yaml"
    text = path.read_text()
    findings = []
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [Finding("compose", str(path), f"not valid YAML: {exc}")]
    for number, line in enumerate(text.splitlines(), 1):
        for name, default in VARIABLE.findall(line):
            if not default and name not in env:
                findings.append(
                    Finding(
                        "compose",
                        f"{path.name}:{number}",
                        f"${{{name}}} has no value and no default",
                    )
                )
    for service, spec in (document.get("services") or {}).items():
        if not spec.get("image"):
            findings.append(Finding("compose", f"{path.name}: services.{service}", "no image"))
    for name, secret in (document.get("secrets") or {}).items():
        if "file" not in secret:
            findings.append(Finding("compose", f"{path.name}: secrets.{name}", "no file"))
    return findings


def validate(
    config: DeploymentConfig,
    scratch: Path,
    template: Path | None = None,
    types_dir: Path | None = None,
) -> tuple[list[Finding], float]:
    """All checks, the playbook's syntax check in parallel with the rest."""
    began = time.perf_counter()
    local = target_class(config.target.kind).on_this_host
    variables = ansible_vars(config, local=local)
    findings: list[Finding] = []
    ansible_findings: list[Finding] = []
    checker = threading.Thread(
        target=lambda: ansible_findings.extend(syntax_check(variables, scratch / "ansible"))
    )
    checker.start()
    if template is not None or (cloud_like(config) and not local):
        from mlaas4hep_cli.tosca import render_template, validate_template
        from mlaas4hep_cli.tosca.locations import source_of

        path = template or render_template(config, scratch / "tosca").template
        for problem in validate_template(path, types_dir, source=source_of(config)):
            findings.append(Finding("tosca", problem_where(problem), problem_text(problem)))
    env = {"MLAAS4HEP_IMAGE_TAG": config.images.tag}
    findings += compose_check(env)
    checker.join()
    return findings + ansible_findings, time.perf_counter() - began


def problem_where(problem: Any) -> str:
    parts = [
        str(getattr(problem, name))
        for name in ("file", "line", "field")
        if getattr(problem, name, None) not in (None, "")
    ]
    return ":".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else "")


def problem_text(problem: Any) -> str:
    message = str(getattr(problem, "message", problem))
    fix = getattr(problem, "fix", None)
    return f"{message}{'; ' + fix if fix else ''}"
