"""A run's model of named columns as an MLflow pyfunc model that takes raw rows (a DataFrame of
the CSV's columns) and answers what ``nettrain predict`` writes, by predict's own rules.

MLflow's Keras flavour cannot take such a model: its pyfunc gives the model one array of a
DataFrame's values (``Invalid dtype: object`` for text), and the model takes one named tensor
per column. What MLflow stores instead ("models from code", no pickle): the script
:data:`CODE` (it imports :class:`RunModel` from nettrain), and as the artifact ``run`` the
run's ``model.keras``, ``config.yaml`` and ``dataset.json``. ``mlflow.pyfunc.load_model`` runs
the script, then :meth:`RunModel.load_context` loads the model in Keras's safe mode through
:func:`nettrain.engine.predict.load_run`, as ``nettrain predict RUN`` does; loading needs
nettrain installed (the model's requirements name it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from nettrain.run import directory as rundir

RUN_ARTIFACT = "run"  # the artifact (a folder like a run directory) the model is loaded from
RUN_FILES = (rundir.KERAS_FILE, rundir.CONFIG, rundir.DATASET)
CODE = '''"""A nettrain run's model: raw rows in, what nettrain predict writes out."""
from mlflow.models import set_model

from nettrain.tracking.pyfunc import RunModel

set_model(RunModel())
'''
ROWS = "model_input"  # how messages about the rows name them


class RunModel(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame of raw rows)`` -> the DataFrame ``nettrain predict`` writes (the
    class and a probability per class, or the values of a regression)."""

    def load_context(self, context: Any) -> None:
        from nettrain.engine.predict import load_run

        self.predictor = load_run(Path(context.artifacts[RUN_ARTIFACT]))

    # model_input's hint is one MLflow knows and infers no schema from (the signature is it)
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return answer(self.predictor, model_input)


def answer(predictor: Any, rows: Any) -> Any:
    """What ``nettrain predict`` writes for ``rows`` (a DataFrame of raw rows)."""
    from nettrain.engine.predict import call_model, outputs, rows_inputs

    x = rows_inputs(predictor, rows, ROWS)
    return outputs(predictor, call_model(predictor, x, ROWS))


def raw_rows(x: dict[str, Any], info: dict[str, Any]) -> Any:
    """Model inputs of a few rows (input name -> values) as the raw rows they were read from:
    a DataFrame of the CSV's feature columns, text categories as ``str``, whole-number ones as
    integers, numbers as float64 (what a caller's DataFrame holds)."""
    columns = {}
    for name, spec in (info.get("model_inputs") or {}).items():
        values = np.asarray(x[name]).reshape(-1)
        if spec["dtype"] == "string":
            columns[spec["column"]] = [v.decode() if isinstance(v, bytes) else str(v)
                                       for v in values.tolist()]
        elif spec["dtype"] == "int64":
            columns[spec["column"]] = values.astype("int64")
        else:
            columns[spec["column"]] = values.astype("float64")
    return pd.DataFrame({c: columns[c] for c in info.get("features") or columns})


def inputs_schema(info: dict[str, Any]) -> Any:
    """The signature's inputs: one column per feature, text categories ``string``, whole-number
    ones ``long``; numbers any type, because MLflow refuses int64 for a ``double`` column (a
    column of whole numbers read by pandas) where ``nettrain predict`` takes it."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    kinds = {spec["column"]: spec["dtype"] for spec in (info.get("model_inputs") or {}).values()}
    types = {"string": "string", "int64": "long"}
    return Schema([ColSpec(types[kinds[c]] if kinds[c] in types else AnyType(), c)
                   for c in info.get("features") or kinds])


def save(folder: Path, run: Path, example: Any, requirements: list[str],
         mlflow_model: Any = None) -> None:
    """Save the model of the run directory ``run`` into ``folder`` (to be made) as a pyfunc
    model with a signature and the input example ``example`` (raw rows, :func:`raw_rows`)."""
    from mlflow.models import ModelSignature, infer_signature

    from nettrain.engine.predict import load_run

    work = folder.parent / f"{folder.name}-files"
    staged = work / RUN_ARTIFACT
    staged.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(run / name, staged / name)
    code = work / "nettrain_model.py"
    code.write_text(CODE, encoding="utf-8")
    predictor = load_run(staged)
    signature = ModelSignature(inputs_schema(predictor.info),
                               infer_signature(answer(predictor, example)).inputs)
    mlflow.pyfunc.save_model(str(folder), python_model=str(code),
                             artifacts={RUN_ARTIFACT: str(staged)}, signature=signature,
                             input_example=example, pip_requirements=requirements,
                             mlflow_model=mlflow_model)
