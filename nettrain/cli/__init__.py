"""The command line: one thin module per command group; TensorFlow loads lazily.

Exit status: 0 success, 1 failure while running, 2 config or usage error, 130 interrupted.
"""

# isort: off
# The order of these imports is the order of the commands in --help.
from nettrain.cli.common import app
from nettrain.cli import train, sweep, evaluate, serve, export, track, init, runs  # noqa: F401  (they add their commands)
# isort: on

__all__ = ["app"]
