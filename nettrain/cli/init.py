"""``nettrain init`` and ``nettrain schema``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from nettrain.cli import common
from nettrain.cli.common import Debug, _errors, app
from nettrain.text import shown

if TYPE_CHECKING:
    pass


def _template_names(incomplete: str) -> list[str]:
    from nettrain.config.starter import templates

    return [name for name in templates() if name.startswith(incomplete)]


@app.command()
def init(
    template: Annotated[Optional[str], typer.Argument(
        autocompletion=_template_names,
        help="The starter config to write (nettrain init --list shows them).")] = None,
    path: Annotated[Optional[Path], typer.Argument(
        help="The config file to write (.yaml or .yml), or a folder for TEMPLATE.yaml "
             "(default: the current folder).")] = None,
    list_templates: Annotated[bool, typer.Option(
        "--list", help="List the templates, one line each.")] = False,
    debug: Debug = False,
) -> None:
    """Write a commented starter config that validates and trains as written.

    Example: nettrain init mlp-classifier digits.yaml

    Templates: mlp-classifier, regression, cnn-images, csv-tabular (with an example CSV
    written beside the config). An existing file is never overwritten.
    """
    with _errors(debug):
        from nettrain.config import starter

        if list_templates or template is None:
            common.out.print(starter.listing(), highlight=False, markup=False, soft_wrap=True, end="")
            return
        written = starter.init(template, path)
        common.out.print(shown(written.report(), lines=True), highlight=False, markup=False,
                         soft_wrap=True, end="")


@app.command()
def schema(
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", metavar="FILE", help="Write the schema to this file "
                                               "(default: stdout).")] = None,
    debug: Debug = False,
) -> None:
    """Print the JSON Schema of config files, for completion and checks in editors.

    Example: nettrain schema --output nettrain.schema.json

    Then start a config with: # yaml-language-server: $schema=nettrain.schema.json
    """
    with _errors(debug):
        from nettrain.config.export import schema_json

        text = schema_json()
        if output is None:
            common.out.print(text, highlight=False, markup=False, soft_wrap=True, end="")
            return
        from nettrain.engine.predict import check_output
        from nettrain.run.directory import write_atomic

        check_output(output)
        write_atomic(output, text)
        common.err.print(f"Wrote {shown(output)}", highlight=False, markup=False, soft_wrap=True)
