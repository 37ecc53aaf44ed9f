"""What a saved model takes: `validate` prints it, dataset.json and the SavedModel's signature
name it, and the README's plain-Python calls (run here exactly as written) give what
`nettrain predict` gives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from nettrain.cli import app

from conftest import CONFIGS, REPO, fit_once, tiny_config, write_config

# The "Calling a saved model from plain Python" examples of docs/run-directory.md, exactly as
# shown there (test_the_docs_show_these_examples keeps the two the same).
KERAS_NAMED = '''\
import json
import keras
import tensorflow as tf

run = "runs/renewals/20261122-120000"
model = keras.saving.load_model(f"{run}/model.keras")
print({t.name: t.dtype for t in model.inputs})  # one input per column, named as in
# dataset.json "model_inputs": {'months': 'float32', 'plan': 'string', ...}
rows = {"plan": tf.constant([["premium"], ["basic"]]),      # shape (rows, 1) each
        "region": tf.constant([["north"], ["west"]]),
        "seats": tf.constant([[5], [10]], dtype=tf.int64),
        "months": tf.constant([[12.0], [11.0]]),            # float32
        "support_tickets": tf.constant([[0.0], [1.0]])}
p = model.predict(rows)                  # shape (2, 1): the probability of the last class
classes = json.load(open(f"{run}/dataset.json"))["classes"]   # ['no', 'yes']
'''

SAVEDMODEL_NAMED = '''\
import tensorflow as tf

run = "runs/renewals/20261122-120000"
serve = tf.saved_model.load(f"{run}/saved_model").signatures["serve"]
print(serve.structured_input_signature)  # ((), {'plan': TensorSpec(shape=(None, 1),
# dtype=tf.string, name='plan'), ...}): the names, dtypes and shapes of "model_inputs"
out = serve(plan=tf.constant([["premium"], ["basic"]]),
            region=tf.constant([["north"], ["west"]]),
            seats=tf.constant([[5], [10]], dtype=tf.int64),
            months=tf.constant([[12.0], [11.0]]),
            support_tickets=tf.constant([[0.0], [1.0]]))
p = out["output_0"].numpy()              # what model.predict gives
'''

SAVEDMODEL_ARRAY = '''\
import tensorflow as tf

run = "runs/iris/20261122-120000"
serve = tf.saved_model.load(f"{run}/saved_model").signatures["serve"]
x = tf.constant([[5.1, 3.5, 1.4, 0.2],   # the columns in dataset.json "features" order,
                 [6.7, 3.0, 5.2, 2.3]])  # raw: normalization is inside the model
p = serve(inputs=x)["output_0"].numpy()  # shape (2, 3): one probability per class
'''

IMAGE = '''\
import keras
import tensorflow as tf

run = "runs/images-cnn/20261122-120000"
model = keras.saving.load_model(f"{run}/model.keras")
image = tf.io.decode_image(tf.io.read_file("photo.png"), channels=3, expand_animations=False)
x = tf.image.resize(image, [64, 64])[tf.newaxis]  # float32 pixels 0..255, resized as in
p = model.predict(x)                  # training; data.scale (1/255) is a layer of the model
'''


def _fit_example(folder, name, **changes):
    """An example config of configs/, trained one epoch (paths made absolute)."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    config["fit"] = {**config["fit"], "epochs": 1, "verbose": 0, "callbacks": []}
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    if "csv" in config["data"]:
        config["data"]["csv"] = str(REPO / config["data"]["csv"])
    return fit_once(folder, config)


@pytest.fixture(scope="module")
def renewals(tmp_path_factory):
    return _fit_example(tmp_path_factory.mktemp("renewals"), "renewals_categorical.yaml",
                        save={"formats": ["keras", "savedmodel"]})


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    return _fit_example(tmp_path_factory.mktemp("iris"), "iris.yaml",
                        save={"formats": ["keras", "savedmodel"]})


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from test_data import _images

    folder = tmp_path_factory.mktemp("images")
    _images(folder / "photos")
    return _fit_example(folder, "images_cnn.yaml", data={"images": str(folder / "photos")})


def _run_snippet(code, run, **replace):
    namespace = {}
    code = code.replace(next(line for line in code.splitlines() if line.startswith("run = ")),
                        f"run = {str(run)!r}")
    for old, new in replace.items():
        code = code.replace(old, new)
    exec(compile(code, "README example", "exec"), namespace)  # noqa: S102 - our own text
    return namespace


def _predict(runner, run, rows, *options):
    result = runner.invoke(app, ["predict", str(run), str(rows), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    from io import StringIO

    return pd.read_csv(StringIO(result.stdout))


def _validate(runner, config: dict, folder):
    result = runner.invoke(app, ["validate", str(write_config(folder / "v.yaml", config))])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


RENEWALS_ROWS = "plan,region,seats,months,support_tickets\npremium,north,5,12,0\n" \
    "basic,west,10,11,1\n"


# --- what the model takes: dataset.json, the SavedModel signature, validate -------------------


def test_dataset_json_names_the_savedmodel_signatures_inputs(renewals, iris):
    import tensorflow as tf

    for run, expected in (
            (renewals, {"plan": ("string", [None, 1], "plan"),
                        "region": ("string", [None, 1], "region"),
                        "seats": ("int64", [None, 1], "seats"),
                        "months": ("float32", [None, 1], "months"),
                        "support_tickets": ("float32", [None, 1], "support_tickets")}),
            (iris, {"inputs": ("float32", [None, 4], None)})):
        described = json.loads((run / "dataset.json").read_text())["model_inputs"]
        assert {k: (v["dtype"], v["shape"], v.get("column")) for k, v in described.items()} \
            == expected
        signature = tf.saved_model.load(str(run / "saved_model")).signatures["serve"]
        args, kwargs = signature.structured_input_signature
        assert args == ()
        assert {k: (s.dtype.name, s.shape.as_list(), s.name) for k, s in kwargs.items()} == \
            {k: (dtype, shape, k) for k, (dtype, shape, _) in expected.items()}


def test_validate_prints_the_csv_header_that_predict_takes(runner, tmp_path, iris):
    config = yaml.safe_load((iris / "config.yaml").read_text())
    lines = _validate(runner, config, tmp_path)
    at = lines.index("predict takes a CSV with a header row holding these 4 columns of numbers, "
                     "in any order (other columns, such as the target 'target', are ignored; "
                     "--keep COLUMN copies one into the output):")
    header = lines[at + 1]
    assert header == "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"
    assert lines[at + 2] == "or a .npy or .npz (array x) of shape [rows, 4], the columns in " \
                            "that order."
    assert lines[at + 3] == "From Python: model.predict(x), or the SavedModel's " \
                            "signatures['serve'](inputs=x), x float32 of shape [rows, 4] (raw " \
                            "values; the model itself normalizes them)."
    assert lines[at + 4] == "The model's output (output_0 of the SavedModel): shape [rows, 3], " \
                            "the probabilities of the classes setosa, versicolor, virginica."
    (tmp_path / "new_rows.csv").write_text(header + "\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    predicted = _predict(runner, iris, tmp_path / "new_rows.csv")
    assert list(predicted.columns) == ["class", "prob_setosa", "prob_versicolor",
                                       "prob_virginica"]
    assert len(predicted) == 2


def test_validate_prints_each_named_input_of_a_categorical_model(runner, tmp_path, renewals):
    config = yaml.safe_load((renewals / "config.yaml").read_text())
    lines = _validate(runner, config, tmp_path)
    at = lines.index("predict takes a CSV with a header row holding these 5 columns, in any "
                     "order (other columns, such as the target 'renewed', are ignored; --keep "
                     "COLUMN copies one into the output):")
    assert lines[at + 1:at + 9] == [
        "plan,region,seats,months,support_tickets",
        "From Python: model.predict(inputs), or the SavedModel's signatures['serve'](**inputs), "
        "inputs a dict of one tensor of shape [rows, 1] per column (raw values; the model "
        "itself encodes them and normalizes them):",
        "  plan: string (column 'plan', categories)",
        "  region: string (column 'region', categories)",
        "  seats: int64 (column 'seats', whole-number categories)",
        "  months: float32 (column 'months', numbers)",
        "  support_tickets: float32 (column 'support_tickets', numbers)",
        "The model's output (output_0 of the SavedModel): shape [rows, 1], the probability of "
        "the class 'yes' (the other: 'no')."]
    (tmp_path / "new_rows.csv").write_text(lines[at + 1] + "\npremium,north,5,12,0\n")
    assert len(_predict(runner, renewals, tmp_path / "new_rows.csv")) == 1


def test_validate_names_the_64_pixel_columns_of_digits(runner, tmp_path):
    config = tiny_config(data={"dataset": "digits", "validation_split": 0.2},
                         model={"layers": [{"Dense": {"units": 10, "activation": "softmax"}}]})
    lines = _validate(runner, config, tmp_path)
    at = next(i for i, line in enumerate(lines) if line.startswith("predict takes"))
    assert "these 64 columns of numbers" in lines[at]
    assert lines[at + 1] == ",".join(f"pixel_{r}_{c}" for r in range(8) for c in range(8))


def test_validate_prints_what_an_image_model_takes(runner, tmp_path, images):
    config = yaml.safe_load((images / "config.yaml").read_text())
    lines = _validate(runner, config, tmp_path)
    at = next(i for i, line in enumerate(lines) if line.startswith("predict takes"))
    assert lines[at:at + 3] == [
        "predict takes an image file (.png, .jpg, .jpeg, .bmp, .gif) or a folder of images, "
        "each resized to 64x64 (rgb) as in training, or a .npy or .npz (array x) of shape "
        "[rows, 64, 64, 3].",
        "From Python: model.predict(x), or the SavedModel's signatures['serve'](inputs=x), x "
        "float32 of shape [rows, 64, 64, 3] (raw values, pixels 0..255 resized with "
        "tf.image.resize; the model itself divides them by 255).",
        "The model's output (output_0 of the SavedModel): shape [rows, 2], the probabilities "
        "of the classes cat, dog."]


# --- the README's plain-Python calls give what nettrain predict gives -----------------------


def test_the_readme_keras_call_of_a_model_of_named_inputs(runner, tmp_path, renewals, capsys):
    (tmp_path / "rows.csv").write_text(RENEWALS_ROWS)
    expected = _predict(runner, renewals, tmp_path / "rows.csv")
    done = _run_snippet(KERAS_NAMED, renewals)
    assert done["classes"] == ["no", "yes"]
    np.testing.assert_allclose(done["p"][:, 0], expected["prob_yes"], rtol=1e-5, atol=1e-6)
    assert "{'months': 'float32', 'plan': 'string', 'region': 'string', 'seats': 'int64', " \
           "'support_tickets': 'float32'}" in capsys.readouterr().out


def test_the_readme_savedmodel_calls(runner, tmp_path, renewals, iris):
    (tmp_path / "rows.csv").write_text(RENEWALS_ROWS)
    expected = _predict(runner, renewals, tmp_path / "rows.csv")
    done = _run_snippet(SAVEDMODEL_NAMED, renewals)
    np.testing.assert_allclose(done["p"][:, 0], expected["prob_yes"], rtol=1e-5, atol=1e-6)
    features = json.loads((iris / "dataset.json").read_text())["features"]
    (tmp_path / "flowers.csv").write_text(",".join(features) + "\n5.1,3.5,1.4,0.2\n"
                                          "6.7,3.0,5.2,2.3\n")
    expected = _predict(runner, iris, tmp_path / "flowers.csv")
    done = _run_snippet(SAVEDMODEL_ARRAY, iris)
    np.testing.assert_allclose(done["p"], expected.filter(like="prob_").to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_the_readme_keras_call_of_an_image_model(runner, tmp_path, images):
    photo = next((images.parent / "photos" / "dog").glob("*.png"))
    expected = _predict(runner, images, photo)
    done = _run_snippet(IMAGE, images, **{'"photo.png"': repr(str(photo))})
    np.testing.assert_allclose(done["p"], expected.filter(like="prob_").to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_the_docs_show_these_examples():
    page = (REPO / "docs" / "run-directory.md").read_text(encoding="utf-8")
    assert "## Calling a saved model from plain Python" in page
    for snippet in (KERAS_NAMED, SAVEDMODEL_NAMED, SAVEDMODEL_ARRAY, IMAGE):
        assert snippet in page
