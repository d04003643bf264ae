"""`mlaas4hep images build`: the stack's container images."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlaas4hep_cli.errors import user_errors
from mlaas4hep_cli.home import toolkit_home
from mlaas4hep_cli.images import IMAGES, build_images, push_images

app = typer.Typer(
    help="Container images of the stack.\n\nExample: mlaas4hep images build --engine podman",
    no_args_is_help=True,
)
console = Console()


@app.command()
def build(
    offline: Annotated[
        bool, typer.Option(help="no registry: debootstrap base + host wheelhouse")
    ] = False,
    engine: Annotated[str, typer.Option(help="podman or docker")] = "podman",
    prefix: Annotated[str, typer.Option(help="image name prefix, e.g. a registry")] = "localhost/",
    tag: Annotated[str, typer.Option(help="image tag")] = "latest",
    only: Annotated[
        list[str] | None,
        typer.Option(help="build only these (" + ", ".join(s.name for s in IMAGES) + ")"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build every image (the pipeline first: the Python services are built on it).

    Example: mlaas4hep images build --engine podman --only pipeline --only server
    """
    with user_errors():
        built = build_images(
            toolkit_home(),
            engine,
            offline,
            prefix,
            tag,
            only,
            progress=lambda text: console.print(text) if not as_json else None,
        )
    if as_json:
        print(json.dumps([image.__dict__ for image in built]))
        return
    table = Table("image", "size", "build time")
    for image in built:
        table.add_row(image.reference, f"{image.size_mb:,.0f} MB", f"{image.seconds:.0f} s")
    console.print(table)


@app.command()
def push(
    registry: Annotated[
        str, typer.Option(help="HOST[:PORT]/PROJECT, e.g. harbor.cloud.infn.it/mlaas4hep")
    ],
    engine: Annotated[str, typer.Option(help="podman or docker")] = "podman",
    prefix: Annotated[str, typer.Option(help="prefix of the built images")] = "localhost/",
    tag: Annotated[str, typer.Option(help="image tag")] = "latest",
    only: Annotated[
        list[str] | None,
        typer.Option(help="push only these (" + ", ".join(s.name for s in IMAGES) + ")"),
    ] = None,
    tls_verify: Annotated[
        bool, typer.Option(help="verify the registry's TLS (off: a loopback registry over HTTP)")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Push the built images to a registry; deployments whose images.prefix is REGISTRY/ then
    pull them instead of building them.

    Example: mlaas4hep images push --registry harbor.cloud.infn.it/mlaas4hep --tag 0.1.0
    """
    with user_errors():
        pushed = push_images(
            engine,
            registry,
            prefix,
            tag,
            only,
            tls_verify,
            progress=lambda text: console.print(text) if not as_json else None,
        )
    if as_json:
        print(json.dumps(pushed))
