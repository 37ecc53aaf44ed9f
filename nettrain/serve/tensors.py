"""TensorFlow Serving's side of a model: its signature (``serving_default``: the inputs
:func:`nettrain.data.columns.model_inputs` names, one output ``output_0``), requests read
into the model's inputs (REST ``instances`` in row format or ``inputs`` in columnar format;
gRPC ``TensorProto`` maps), and outputs written back the same ways.

Every refusal is an :class:`nettrain.errors.InputError` naming the field
(``instances[2].plan``, ``inputs['months']``), what was expected and what was received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nettrain.data.dataset import Inputs
from nettrain.errors import InputError
from nettrain.serve import checks

SIGNATURE = "serving_default"
# The signature names a client may give: TF Serving's default and the SavedModel's own
# (model.export() writes both, the same function).
SIGNATURES = ("", SIGNATURE, "serve")
OUTPUT = "output_0"
_DTYPES = {"float32": "DT_FLOAT", "int64": "DT_INT64", "string": "DT_STRING"}

Spec = dict[str, dict[str, Any]]  # input name -> {"dtype": ..., "shape": [None, ...]}


def check_signature(name: str | None) -> None:
    if name not in (None, *SIGNATURES):
        raise InputError(f"signature_name: this model has the signature '{SIGNATURE}' (also "
                         f"'serve'); received {name!r}. Leave it out for the default.")


def signature_def(inputs: Spec, outputs: Spec) -> Any:
    """The signature as a ``tensorflow.SignatureDef`` proto (for GetModelMetadata)."""
    from tensorflow.core.framework import tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for target, spec, prefix in ((sig.inputs, inputs, "serving_default_"),
                                 (sig.outputs, outputs, "StatefulPartitionedCall:")):
        for i, (name, s) in enumerate(spec.items()):
            info = target[name]
            info.name = f"{prefix}{name}:0" if prefix.endswith("_") else f"{prefix}{i}"
            info.dtype = types_pb2.DataType.Value(_DTYPES[s["dtype"]])
            info.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(dim=[
                tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else int(d))
                for d in s["shape"]]))
    return sig


def metadata_json(model: str, version: str, inputs: Spec, outputs: Spec) -> dict[str, Any]:
    """``GET /v1/models/NAME/metadata``'s answer, as TF Serving writes it."""
    from google.protobuf.json_format import MessageToDict

    sig = MessageToDict(signature_def(inputs, outputs), preserving_proto_field_name=True)
    return {"model_spec": {"name": model, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: sig}}}}


def not_found(name: str, version: str | int | None, serves: tuple[str, str],
              status: bool = False) -> str | None:
    """TF Serving's NOT_FOUND message when the model ``name`` (version ``version``; None: the
    latest) is not what this server ``serves`` (name, version), else None: one answer for
    REST's 404 and gRPC's NOT_FOUND. ``status``: worded as GetModelStatus words it."""
    served_name, served_version = serves
    if name == served_name and (version is None or str(version) == served_version):
        return None
    if status:
        what = f"version {version} of model {name}" if version is not None else \
            f"any versions of model {name}"
        return f"Could not find {what}; this server serves '{served_name}' version " \
               f"{served_version}."
    what = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return f"Servable not found for request: {what}; this server serves '{served_name}' " \
           f"version {served_version}."


def status_proto(version: str) -> Any:
    """The served version's status as TF Serving's ``GetModelStatusResponse``: loaded, so
    AVAILABLE, with an OK status (gRPC's answer, and REST's as JSON)."""
    from tensorflow_serving.apis import get_model_status_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.add(
        version=int(version), state=get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        status={"error_code": 0, "error_message": ""})  # tensorflow.error.Code OK
    return response


def status_json(version: str) -> dict[str, Any]:
    """``GET /v1/models/NAME``'s answer, as TF Serving writes it (its proto's JSON)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(status_proto(version), preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


def from_json(body: Any, inputs: Spec, limit: int = checks.MAX_ROWS) -> tuple[Inputs, bool]:
    """A REST predict body's inputs as the model takes them, and whether they came in
    columnar format (``inputs``; the answer is then ``outputs``, else ``predictions``), at
    most ``limit`` rows (:class:`checks.OverLimit`)."""
    if not isinstance(body, dict):
        raise InputError(f"request body: expected a JSON object with 'instances' (row format) "
                         f"or 'inputs' (columnar format); received {_what(body)}.")
    check_signature(body.get("signature_name"))
    if ("instances" in body) == ("inputs" in body):
        raise InputError("request body: expected one of 'instances' (row format) or 'inputs' "
                         f"(columnar format); received {'both' if 'inputs' in body else 'neither'}"
                         f" (keys: {', '.join(map(repr, body)) or 'none'}).")
    names = list(inputs)
    if "inputs" in body:
        value = body["inputs"]
        bare = len(names) == 1 and (not isinstance(value, dict) or checks.is_base64(value))
        if bare:
            value = {names[0]: value}
        value = _by_input_name(value, inputs)
        _check_keys(value, names, "inputs")
        return _rows_of(inputs, {n: value[n] for n in names},
                        lambda n, i: "inputs" + ("" if bare else f"['{n}']") +
                        (f"[{i}]" if i is not None else ""), limit), True
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        raise InputError(f"instances: expected a list of rows, one or more; received "
                         f"{_what(rows)}.")
    checks.check_rows(len(rows), limit, "instances")
    # a row that is {"b64": ...} is one value (of a model of one string input), not names
    bare = len(names) == 1 and not all(isinstance(r, dict) and not checks.is_base64(r)
                                       for r in rows)
    rows = [_by_input_name(row, inputs) for row in rows] if _columns(inputs) and not bare \
        else rows
    if bare:
        columns = {names[0]: rows}
    else:
        want = set(names)
        if not all(type(row) is dict and row.keys() == want for row in rows):
            for i, row in enumerate(rows):  # find the row, to name it
                _check_keys(row, names, f"instances[{i}]")
        columns = {n: [row[n] for row in rows] for n in names}
    return _rows_of(inputs, columns, lambda n, i: "instances" + (f"[{i}]" if i is not None
                                                                 else "") +
                    ("" if bare else f".{n}"), limit), False


def from_protos(protos: Any, inputs: Spec, limit: int = checks.MAX_ROWS) -> Inputs:
    """A gRPC PredictRequest's ``inputs`` (name -> TensorProto) as the model takes them, each
    proto's shape checked against its values and ``limit`` rows before it is expanded."""
    import tensorflow as tf

    protos = _by_input_name(protos, inputs)
    _check_keys(protos, list(inputs), "inputs")
    columns = {}
    for name, spec in inputs.items():
        checks.proto(protos[name], spec, f"inputs['{name}']", limit)
        try:
            array = tf.make_ndarray(protos[name])
        except Exception as exc:  # noqa: BLE001  (a malformed proto)
            raise InputError(f"inputs['{name}']: not a readable TensorProto: {exc}") from None
        if array.dtype == object:
            flat = array.reshape(len(array), -1)
            try:
                array = np.array([v.decode() for v in array.ravel()], dtype=object).reshape(
                    array.shape)
            except UnicodeDecodeError:
                i, v = next((i, v) for i, row in enumerate(flat) for v in row if not _utf8(v))
                raise InputError(f"inputs['{name}'][{i}]: {v[:40]!r} is not UTF-8 text; send "
                                 "categories as UTF-8.") from None
        columns[name] = array
    return _rows_of(inputs, columns, lambda n, i: f"inputs['{n}']" + (f"[{i}]" if i is not None
                                                                      else ""), limit)


def _utf8(value: bytes) -> bool:
    try:
        value.decode()
        return True
    except UnicodeDecodeError:
        return False


def to_json(out: np.ndarray, columnar: bool) -> bytes:
    """The answer to a REST predict, as the body's bytes: ``predictions`` (one per row) or
    ``outputs``. (Written here, not by FastAPI's encoder, which walks every number in
    Python: 4.5 ms for 1,000 rows against 1.4 ms.)"""
    import json

    return json.dumps({"outputs" if columnar else "predictions": out.tolist()},
                      separators=(",", ":")).encode()


def to_protos(out: np.ndarray) -> dict[str, Any]:
    import tensorflow as tf

    return {OUTPUT: tf.make_tensor_proto(np.asarray(out, dtype="float32"))}


def _columns(inputs: Spec) -> dict[str, str]:
    """Column -> input name, where a column's own name is not its input's (``Origin`` ->
    ``origin``, ``class`` -> ``class_``: see :func:`nettrain.data.columns.input_names`)."""
    return {spec["column"]: name for name, spec in inputs.items()
            if spec.get("column", name) != name}


def _by_input_name(value: Any, inputs: Spec) -> Any:
    """A request's mapping keyed by the model's input names: as given, or by the columns' own
    names (the CSV's header, as ``POST /predict`` takes them) when it names exactly the
    columns."""
    renamed = _columns(inputs)
    if not renamed or not hasattr(value, "keys"):
        return value
    keys = set(value.keys())
    if keys == set(inputs) or keys != {spec.get("column", n) for n, spec in inputs.items()}:
        return value
    return {renamed.get(k, k): value[k] for k in keys}


def _check_keys(value: Any, names: list[str], where: str) -> None:
    if not hasattr(value, "keys"):
        raise InputError(f"{where}: expected an object with the model's inputs "
                         f"({', '.join(names)}); received {_what(value)}.")
    missing = [n for n in names if n not in value]
    extra = [k for k in value if k not in names]
    if missing or extra:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + \
            ([f"unknown {', '.join(map(repr, extra))}"] if extra else [])
        raise InputError(f"{where}: {'; '.join(parts)}. The model's inputs are: "
                         f"{', '.join(names)} (GET /v1/models/NAME/metadata lists them).")


def _rows_of(inputs: Spec, columns: dict[str, Any],
             where: Callable[[str, int | None], str], limit: int) -> Inputs:
    """Each input's values as an array of its dtype and shape, all with one number of rows."""
    x, rows = {}, None
    for name, spec in inputs.items():
        array = _array(columns[name], spec, lambda i, n=name: where(n, i), limit)
        if rows is not None and len(array) != rows:
            raise InputError(f"{where(name, None)}: {len(array)} rows; the other inputs have "
                             f"{rows}. Give every input the same number of rows.")
        rows = len(array)
        x[name] = array
    return x if len(inputs) > 1 or next(iter(inputs)) != "inputs" else x["inputs"]


def _array(value: Any, spec: dict[str, Any], where: Callable[[int | None], str],
           limit: int) -> np.ndarray:
    """One input's values (JSON's, or a TensorProto's array) as an array of its dtype and
    shape, checked whole (:mod:`nettrain.serve.checks`) before it can join a batch."""
    dtype, shape = spec["dtype"], [int(d) for d in spec["shape"][1:]]
    expected = f"{checks.KINDS[dtype]} per value, shape [rows{''.join(f', {d}' for d in shape)}]"
    if isinstance(value, np.ndarray):  # a TensorProto's (checks.proto checked its shape)
        array = value
    else:
        if isinstance(value, list):
            checks.check_rows(len(value), limit, where(None))
        array = checks.cells(value, spec, where)
    if array.ndim == len(shape) and shape == [1]:  # [5, 10] for a [rows, 1] input
        array = array.reshape(-1, 1)
    if array.ndim == 0 or list(array.shape[1:]) != shape:
        received = "one value" if array.ndim == 0 else f"shape {list(array.shape)}"
        if array.dtype == object and array.ndim and any(
                isinstance(v, (list, dict)) for v in array.ravel()):
            received = "rows of different lengths or kinds"
        raise InputError(f"{where(None)}: expected {expected}; received {received}.")
    if len(array) == 0:
        raise InputError(f"{where(None)}: no rows; expected one or more.")
    checks.check_rows(len(array), limit, where(None))
    flat = array.reshape(len(array), -1)
    if dtype == "string":
        if array.dtype != object:  # a TensorProto's numbers
            raise InputError(f"{where(0)}: expected a string; received {flat[0][0].item()!r}. "
                             "Write categories as the text in the training CSV, in quotes.")
        return array
    if array.dtype == object:  # JSON's numbers, checked: Python ints and floats
        try:
            array = array.astype("int64" if dtype == "int64" else "float64")
        except OverflowError:  # an int beyond a float's range
            i = next(i for i, row in enumerate(flat) for v in row
                     if type(v) is int and v.bit_length() > 1000)
            raise InputError(f"{where(i)}: expected finite 32-bit numbers; received a "
                             "number over 300 digits long.") from None
        flat = array.reshape(len(array), -1)
    elif array.dtype.kind not in "iuf":
        raise InputError(f"{where(0)}: expected {checks.KINDS[dtype]}; received {array.dtype} "
                         "values.")
    if dtype == "int64":
        if array.dtype.kind == "f":
            whole = np.isfinite(flat) & (flat == np.round(flat)) & (np.abs(flat) <= 2**53)
        else:
            whole = flat <= np.iinfo("int64").max if array.dtype.kind == "u" \
                else np.ones(flat.shape, bool)
        if not whole.all():
            i = int(np.argwhere(~whole)[0][0])
            raise InputError(f"{where(i)}: expected a whole number (a category: within 64 "
                             f"bits, exact); received {flat[i][~whole[i]][0].item()!r}.")
        return array.astype("int64")
    with np.errstate(over="ignore", invalid="ignore"):
        floats = array.astype("float32")
    finite = np.isfinite(floats.reshape(len(floats), -1))
    if not finite.all():
        i = int(np.argwhere(~finite)[0][0])
        raise InputError(f"{where(i)}: expected finite 32-bit numbers; received "
                         f"{flat[i][~finite[i]][0].item()!r}.")
    return floats


def _what(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'JSON object' if isinstance(value, dict) else 'list'} of {len(value)}"
    return f"{type(value).__name__} {value!r}"[:80]
