"""The `mlaas4hep` command: each verb lives in its own module under commands/; this is the only
module that imports them."""

from __future__ import annotations

import typer

from mlaas4hep_cli import __version__, helptext
from mlaas4hep_cli.commands import (
    cancel,
    create,
    demo,
    destroy,
    images,
    init,
    jobs,
    listing,
    login,
    logs,
    models,
    outputs,
    predict,
    proxy,
    render,
    results,
    run,
    scale,
    status,
    submit,
    token,
    upload,
    use,
    validate,
    workflow,
)

app = typer.Typer(
    name="mlaas4hep",
    help="MLaaS4HEP: train ML models on ROOT ntuples and deploy the service.\n\n"
    "Example: mlaas4hep init mlaas4hep.yaml && mlaas4hep create -c mlaas4hep.yaml",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(demo.demo)
# deployments
app.command()(init.init)
app.command()(render.render)
app.command()(validate.validate)
app.command()(create.create)
app.command()(status.status)
app.command()(outputs.outputs)
app.command("list")(listing.list_deployments)
app.command()(scale.scale)
app.command()(destroy.destroy)
app.command()(login.login)
app.command(context_settings=run.SETTINGS)(run.run)
app.command()(use.use)
app.command()(token.token)
# workflow runs on a server
app.command()(submit.submit)
app.command()(jobs.jobs)
app.command()(logs.logs)
app.command()(results.results)
app.command()(cancel.cancel)
# models on an inference service
app.command()(models.models)
app.command()(upload.upload)
app.command()(predict.predict)
app.add_typer(proxy.app, name="proxy")
app.add_typer(images.app, name="images")
app.command(context_settings=workflow.SETTINGS, add_help_option=False)(workflow.workflow)


@app.command()
def version() -> None:
    """Print the toolkit version.

    Example: mlaas4hep version
    """
    typer.echo(f"mlaas4hep-cli {__version__}")


helptext.apply(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
