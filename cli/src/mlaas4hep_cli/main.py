"""The `mlaas4hep` command: each verb lives in its own module under commands/."""

from __future__ import annotations

import typer

from mlaas4hep_cli import __version__
from mlaas4hep_cli.commands import (
    demo,
    deploy,
    deployment,
    images,
    jobs,
    models,
    proxy,
    remote,
    token,
    workflow,
)

app = typer.Typer(
    name="mlaas4hep",
    help="MLaaS4HEP: train ML models on ROOT ntuples and deploy the service.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(demo.demo)
app.command()(deployment.init)
app.command()(deployment.render)
app.command()(deployment.validate)
deploy.register(app)
app.command()(remote.login)
app.command(context_settings=remote.PASSTHROUGH)(remote.run)
app.command()(token.token)
jobs.register(app)
models.register(app)
app.add_typer(proxy.app, name="proxy")
app.add_typer(images.app, name="images")
app.command(context_settings=workflow.SETTINGS, add_help_option=False)(workflow.workflow)


@app.command()
def version() -> None:
    """Print the toolkit version."""
    typer.echo(f"mlaas4hep-cli {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
