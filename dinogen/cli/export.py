"""`dinogen export`: the model for use outside Python, as an ONNX graph of one step or a one-file web page."""

import click

from dinogen.cli.common import PathText, checkpoint_path, global_options


@click.command()
@click.argument("checkpoint", required=False, type=PathText())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "html"]),
    help="onnx: one step of the network, for onnxruntime (needs pip install 'dinogen[export]'); "
    "html: a web page that writes names [default: html for a .html output, else onnx].",
)
@click.option(
    "-o", "--output", type=PathText(dir_okay=False), help="File to write [default: model.onnx, or names.html]."
)
@global_options
def export(checkpoint, fmt, output) -> None:
    """Write the model for use outside Python: an ONNX graph of one step (and its .json description),
    or one self-contained web page [default checkpoint: the latest run in checkpoints/, or before any
    run the bundled dinosaur model].

    \b
    Examples:
      dinogen export checkpoints/default -o model.onnx
      dinogen export checkpoints/default --format html -o names.html
    """
    from dinogen.export import export_model

    for path in export_model(checkpoint_path(checkpoint), output, fmt):
        click.echo(f"wrote {path}", err=True)
