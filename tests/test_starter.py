"""Getting started: `nettrain init`, the JSON Schema for editors, `--print-config`, `--help`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from typing import Annotated

import jsonschema
import pytest
import typer

from nettrain.cli import app
from nettrain.cli.help import App
from nettrain.config.load import load_config
from nettrain.config.export import schema_json
from nettrain.config.reading import yaml_load

from conftest import CONFIGS, REPO

PACKAGE = REPO / "nettrain"
SCHEMA = PACKAGE / "config.schema.json"
TEMPLATES = ("cnn-images", "csv-tabular", "mlp-classifier", "regression")
EXAMPLES = sorted(CONFIGS.glob("*.yaml")) + sorted((PACKAGE / "templates").glob("*.yaml"))


# ----------------------------------------------------------------------------- init


def test_init_lists_the_templates_one_line_each(runner):
    listed = runner.invoke(app, ["init", "--list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == (
        "Templates (nettrain init TEMPLATE [PATH]):\n"
        "  cnn-images      A small CNN on pictures: the built-in 8x8 digits as 8x8x1 images, or "
        "a folder of yours.\n"
        "  csv-tabular     A classifier on a CSV table of text and number columns (an example "
        "CSV comes along).\n"
        "  mlp-classifier  A multilayer perceptron classifying the built-in 8x8 handwritten "
        "digits (no download).\n"
        "  regression      A regression MLP on the built-in diabetes data: 10 measurements -> "
        "disease progression.\n")
    assert runner.invoke(app, ["init"]).stdout == listed.stdout  # no TEMPLATE: the same list


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_template_validates_as_written(runner, tmp_path, name):
    result = runner.invoke(app, ["init", name])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == f"Next: nettrain fit {name}.yaml"
    result = runner.invoke(app, ["validate", f"{name}.yaml"])
    assert result.exit_code == 0, result.output
    assert f"OK {name}.yaml:" in result.stdout


@pytest.mark.parametrize("name", ["csv-tabular", "cnn-images"])
def test_a_template_trains_for_an_epoch(runner, tmp_path, name):
    """Into a new folder: the CSV written beside the config is found from where nettrain runs."""
    result = runner.invoke(app, ["init", name, "project"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["fit", f"project/{name}.yaml", "fit.epochs=1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / result.stdout.strip() / "model.keras").is_file()


def test_init_writes_the_data_beside_the_config_and_says_what_to_run(runner, tmp_path):
    result = runner.invoke(app, ["init", "csv-tabular", "churn/first.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Wrote churn/first.yaml and churn/renewals.csv (template csv-tabular).\n"
        "Next: nettrain fit churn/first.yaml\n"
        "      (or first nettrain validate churn/first.yaml: checks it and prints the model, "
        "no training)\n")
    text = (tmp_path / "churn/first.yaml").read_text()
    assert "  csv: churn/renewals.csv   # a CSV file with a header row\n" in text
    assert (tmp_path / "churn/renewals.csv").read_bytes() == \
        (PACKAGE / "templates/renewals.csv").read_bytes()
    # a second config in the same folder uses the same data file
    again = runner.invoke(app, ["init", "csv-tabular", "churn/second.yaml"])
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("Wrote churn/second.yaml and churn/renewals.csv ")


def test_init_names_the_installed_schema_on_the_first_line(runner, tmp_path):
    assert runner.invoke(app, ["init", "regression"]).exit_code == 0
    first = (tmp_path / "regression.yaml").read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    named = Path(first.split("$schema=", 1)[1])
    assert named.is_absolute() and named.read_text() == SCHEMA.read_text()


def test_init_never_overwrites_and_suggests_a_free_name(runner, tmp_path):
    (tmp_path / "mine.yaml").write_text("my own work\n")
    result = runner.invoke(app, ["init", "regression", "mine.yaml"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert result.output == (
        "Error: PATH: expected a new file (init never overwrites one); received 'mine.yaml' "
        "(it exists). Write another: nettrain init regression mine-2.yaml\n")
    assert (tmp_path / "mine.yaml").read_text() == "my own work\n"
    assert runner.invoke(app, ["init", "regression", "mine-2.yaml"]).exit_code == 0  # advice


def test_init_never_overwrites_a_different_data_file(runner, tmp_path):
    (tmp_path / "renewals.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["init", "csv-tabular"])
    assert result.exit_code == 2
    assert result.output == (
        "Error: PATH: expected a folder without a file renewals.csv, or with this template's "
        "(init never overwrites a file); received 'renewals.csv' (a different one exists). "
        "Write into a new folder: nettrain init csv-tabular csv-tabular/\n")
    assert (tmp_path / "renewals.csv").read_text() == "a,b\n1,2\n"
    assert not (tmp_path / "csv-tabular.yaml").exists()  # nothing written
    assert runner.invoke(app, ["init", "csv-tabular", "csv-tabular/"]).exit_code == 0


def test_init_unknown_template_suggests_the_closest(runner):
    result = runner.invoke(app, ["init", "csv-tabluar"])
    assert result.exit_code == 2
    assert result.output == (
        "Error: TEMPLATE: expected one of cnn-images, csv-tabular, mlp-classifier, regression; "
        "received 'csv-tabluar'. Did you mean 'csv-tabular'?\n")


# ----------------------------------------------------------------------------- schema


def test_the_committed_schema_is_the_generated_one():
    """Regenerate it with: nettrain schema --output nettrain/config.schema.json"""
    assert SCHEMA.read_text() == schema_json()


def test_schema_prints_it_or_writes_it(runner, tmp_path):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.stdout == SCHEMA.read_text()
    result = runner.invoke(app, ["schema", "--output", "nettrain.schema.json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "Wrote nettrain.schema.json\n"
    assert (tmp_path / "nettrain.schema.json").read_text() == SCHEMA.read_text()
    result = runner.invoke(app, ["schema", "--output", "editor/nettrain.schema.json"])
    assert result.exit_code == 2
    assert result.output == ("Error: --output: the folder editor does not exist. Create it "
                             "first (mkdir -p editor), or give a file in an existing folder.\n")


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(config: dict) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in _validator().iter_errors(config))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_example_names_the_schema_and_matches_it(path: Path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert (path.parent / first.split("$schema=", 1)[1]).resolve() == SCHEMA
    assert _schema_errors(yaml_load(path.read_text())) == []


def test_the_schema_refuses_what_nettrain_refuses():
    config = yaml_load((CONFIGS / "xor.yaml").read_text())
    assert _schema_errors({**config, "epochs": 5}) == [
        ": Additional properties are not allowed ('epochs' was unexpected)"]
    config["fit"]["epochz"] = 5
    config["data"]["test_split"] = 1.5
    config["model"]["layers"].append({"Dense": {"units": 1}, "Dropout": {"rate": 0.1}})
    assert _schema_errors(config) == [
        "data.test_split: 1.5 is greater than or equal to the maximum of 1.0",
        "fit: Additional properties are not allowed ('epochz' was unexpected)",
        "model.layers.2: {'Dense': {'units': 1}, 'Dropout': {'rate': 0.1}} is not valid under "
        "any of the given schemas"]


def test_the_schema_takes_any_keras_name_and_describes_the_keys():
    """Keras names and their arguments are nettrain's to check (with Keras), not the schema's."""
    config = yaml_load((CONFIGS / "xor.yaml").read_text())
    config["model"]["layers"] = ["Flatten", {"MyLayer": {"any": [1, 2]}}, {"Dense": None}]
    config["compile"]["optimizer"] = {"Lion": {"learning_rate": 0.001}}
    del config["name"]  # the file's name when left out
    assert _schema_errors(config) == []
    schema = json.loads(SCHEMA.read_text())
    fit = schema["$defs"]["FitConfig"]["properties"]
    assert fit["epochs"]["description"] == "How many passes over the training data."
    assert fit["callbacks"]["items"] == {"$ref": "#/$defs/KerasObject"}


def test_schema_init_and_help_do_not_import_tensorflow(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nettrain.cli import app\n"
            "for args in (['schema'], ['init', 'mlp-classifier'], ['init', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


# ----------------------------------------------------------------------------- --print-config

SMALL = """\
name: tiny
data:
  dataset: xor
model:
  layers:
    - Dense: {units: 1, activation: sigmoid}
compile:
  loss: binary_crossentropy
fit:
  epochs: 2
"""

SMALL_RESOLVED = """\
# The resolved config of small.yaml.
# After each value, where it came from: file, command line or default.
name: tiny                                  # file
deterministic: false                        # default
mixed_precision: float32                    # default
data:
  dataset: xor                              # file
  missing: error                            # default
  delimiter: ','                            # default
  stream: auto                              # default
  validation_split: 0.0                     # default
  test_split: 0.0                           # default
  stratify: false                           # default
  normalize: false                          # default
  flatten: false                            # default
  one_hot: false                            # default
model:
  layers:                                   # file
  - Dense: {units: 1, activation: sigmoid}  # file
compile:
  optimizer: rmsprop                        # default
  loss: binary_crossentropy                 # file
  metrics: []                               # default
  weighted_metrics: []                      # default
  run_eagerly: false                        # default
  steps_per_execution: auto                 # default
  jit_compile: auto                         # default
fit:
  epochs: 3                                 # command line
  verbose: auto                             # default
  callbacks: []                             # default
  shuffle: true                             # default
  initial_epoch: 0                          # default
  validation_freq: 1                        # default
  checkpoint_every_seconds: 30.0            # default
save:
  formats: [keras]                          # default
backend: auto                               # default

"""


def test_validate_print_config_marks_where_each_value_came_from(runner, tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL)
    result = runner.invoke(app, ["validate", "small.yaml", "fit.epochs=3", "--print-config"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(SMALL_RESOLVED + 'Model: "tiny"\n')
    assert "\nOK small.yaml: 3 parameters; data: train 4 samples of shape [2].\n" in result.stdout
    # without the comments it is the config the run records
    config = load_config(tmp_path / "small.yaml", ["fit.epochs=3"])
    assert yaml_load(SMALL_RESOLVED) == yaml_load(config.to_yaml())


def test_fit_print_config_prints_on_stderr_then_trains(runner, tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL)
    result = runner.invoke(app, ["fit", "small.yaml", "fit.epochs=3", "fit.verbose=0",
                                 "--print-config"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(SMALL_RESOLVED.replace(
        "  verbose: auto                             # default",
        "  verbose: 0                                # command line"))
    run, = result.stdout.splitlines()  # stdout: only the run directory, as ever
    assert (Path(run) / "model.keras").is_file()
    resumed = runner.invoke(app, ["fit", "--resume", result.stdout.strip(), "--print-config"])
    assert resumed.exit_code == 2
    assert resumed.output.startswith("Error: --print-config: only for a new run")


def test_provenance_comes_from_the_override_engine(tmp_path):
    """What each override set, as it set it: a whole section, an argument of an expanded bare
    Keras name, a list item; the rest of the file stays 'file'."""
    path = tmp_path / "c.yaml"
    path.write_text(SMALL.replace("  loss: binary_crossentropy",
                                  "  optimizer: adam\n  loss: binary_crossentropy")
                    .replace("  dataset: xor", "  dataset: xor\n  validation_split: 0.5"))
    config = load_config(path, ["compile.optimizer.adam.learning_rate=0.1",
                                "data={dataset: xor, flatten: true}",
                                "model.layers.0.Dense.units=1"])
    assert config.origin(("compile", "optimizer")) == "file"
    assert config.origin(("compile", "optimizer", "adam", "learning_rate")) == "command line"
    assert config.origin(("data", "flatten")) == "command line"
    assert config.origin(("data", "dataset")) == "command line"  # the override set data whole
    assert config.origin(("data", "missing")) == "default"  # not in what it set
    assert config.origin(("data", "validation_split")) == "default"  # it replaced the file's
    assert config.origin(("model", "layers", 0, "Dense", "activation")) == "file"
    lines = [" ".join(line.split()) for line in config.to_annotated_yaml().splitlines()]
    assert "optimizer: {adam: {learning_rate: 0.1}} # file; command line: adam.learning_rate" \
        in lines
    assert "- Dense: {units: 1, activation: sigmoid} # file; command line: Dense.units" in lines
    assert "flatten: true # command line" in lines and "missing: error # default" in lines


# ----------------------------------------------------------------------------- --help


def _commands(command: typer.core.TyperGroup | typer.core.TyperCommand,
              path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI: (), ('fit',), ..., ('runs', 'compare')."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _help(runner, *args: str, cli: typer.Typer = app) -> str:
    """The help text at a width of 100 columns."""
    result = runner.invoke(cli, [*args, "--help"], terminal_width=100, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert max(map(len, result.output.splitlines())) <= 100
    return result.output


# typer's type labels (<bool>, <path>, <list[str]>) and a required argument in braces ({run})
TYPE_LABELS = r"<[a-z_\[\]|, ]+>|\{[a-z_]+\}"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "nettrain")
def test_help_shows_names_not_python_types(runner, path):
    text = _help(runner, *path)
    assert re.findall(TYPE_LABELS, text) == []
    assert "Example: nettrain " in text  # every command shows how it is used


def test_help_of_a_sub_command_group_is_plain_too(runner):
    """A group added with a plain typer.Typer (as `nettrain runs` may be) shows the same way."""
    cli, runs = App(), typer.Typer()

    @cli.command()
    def fit(debug: bool = False) -> None:
        """Train."""

    @runs.command()
    def compare(run: Path, json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Compare runs."""

    cli.add_typer(runs, name="runs")
    text = _help(runner, "runs", "compare", cli=cli)
    assert "Usage: root runs compare [OPTIONS] RUN" in text  # CliRunner names the app root
    assert re.findall(TYPE_LABELS, text) == [] and re.findall(TYPE_LABELS,
                                                                _help(runner, cli=cli)) == []


def test_help_usage_lines(runner):
    usage = {name: _help(runner, name).split("\n")[1].strip()
             for name in ("fit", "validate", "evaluate", "predict", "init", "schema")}
    assert usage == {
        "fit": "Usage: nettrain fit [OPTIONS] [CONFIG] [KEY=VALUE]...",
        "validate": "Usage: nettrain validate [OPTIONS] CONFIG [KEY=VALUE]...",
        "evaluate": "Usage: nettrain evaluate [OPTIONS] RUN",
        "predict": "Usage: nettrain predict [OPTIONS] RUN INPUT",
        "init": "Usage: nettrain init [OPTIONS] [TEMPLATE] [PATH]",
        "schema": "Usage: nettrain schema [OPTIONS]",
    }
    evaluate = _help(runner, "evaluate")
    assert "│ --split                     [test|validation|train]  Which part" in evaluate
    assert "│ --debug                                              Show Python" in evaluate


def test_version_and_shell_completion(runner):
    version = runner.invoke(app, ["--version"])
    assert (version.exit_code, version.stdout) == (0, "nettrain 0.1.0\n")
    # typer detects the shell from the processes above (shellingham; "bash" after the flag is
    # not read), and some runs of the suite have no shell above pytest: a bash of its own.
    nettrain = Path(sys.executable).parent / "nettrain"
    script = subprocess.run(["bash", "-c", f"'{nettrain}' --show-completion; exit $?"],
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_NETTRAIN_COMPLETE=complete_bash" in script.stdout, \
        (script.stdout, script.stderr)
    completed = runner.invoke(app, [], prog_name="nettrain", env={
        "_NETTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": "nettrain init csv",
        "COMP_CWORD": "2"})
    assert completed.stdout == "csv-tabular\n"  # template names complete
