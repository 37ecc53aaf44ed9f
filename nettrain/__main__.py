"""``python -m nettrain``: the same as the ``nettrain`` command."""

from nettrain.cli import app

app(prog_name="nettrain")
