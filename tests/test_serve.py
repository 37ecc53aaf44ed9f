"""`nettrain serve`: TF Serving's REST and gRPC protocols and nettrain's /predict answer as
`nettrain predict` does, for a tabular run with string categories (a real server process,
talked to with a plain HTTP client and tensorflow-serving-api's PredictionServiceStub) and
for an image run (a server in a thread of this process, on real ports)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrain.cli import app

from conftest import REPO, fit_once, tiny_config

ROWS = [  # raw rows as in the training CSV; the last has a plan never seen in training
    {"plan": "premium", "region": "north", "seats": 5, "months": 12, "support_tickets": 0},
    {"plan": "basic", "region": "west", "seats": 10, "months": 11, "support_tickets": 1},
    {"plan": "gold", "region": "south", "seats": 1, "months": 40, "support_tickets": 3},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: object = None, headers: dict | None = None) -> \
        tuple[int, dict]:
    """A plain HTTP call (urllib): the status and the JSON answer."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(url: str, process: subprocess.Popen | None = None) -> None:
    for _ in range(600):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url}")


def _predicted(runner, run: Path, path: Path) -> pd.DataFrame:
    result = runner.invoke(app, ["predict", str(run), str(path)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.fixture(scope="module")
def renewals(tmp_path_factory) -> Path:
    config = tiny_config(
        name="renewals",
        data={"csv": str(REPO / "configs" / "data" / "renewals.csv"), "target": "renewed",
              "categorical": ["plan", "region", "seats"], "normalize": True,
              "validation_split": 0.2, "test_split": 0.2},
        model={"layers": [{"Dense": {"units": 4, "activation": "relu"}},
                          {"Dense": {"units": 1, "activation": "sigmoid"}}]},
        compile={"optimizer": "adam", "loss": "binary_crossentropy"},
        fit={"epochs": 1, "batch_size": 64, "verbose": 0})
    return fit_once(tmp_path_factory.mktemp("renewals"), config)


FDS = 256  # the module server's descriptor limit (ulimit -n): running out of them is cheap


@pytest.fixture(scope="module")
def server(renewals, tmp_path_factory):
    """One real `python -m nettrain serve RUN --port P --grpc-port Q` for the module, in a
    shell whose KERAS_BACKEND is jax: serve runs the run's own backend, TensorFlow (its
    string columns run on TensorFlow only; before, serve took JAX from the environment).
    Small bounds, so that a test goes past them cheaply: 4 KiB bodies, 20 rows, 5 s for a
    client's headers, 256 descriptors; what it says is in ``process.log``."""
    import resource

    port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "jax"}
    log = tmp_path_factory.mktemp("server") / "stderr.txt"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nettrain", "serve", str(renewals), "--port", str(port),
             "--grpc-port", str(grpc_port), "--max-body-bytes", "4096", "--max-rows", "20",
             "--client-timeout", "5"], env=env, stderr=stderr, text=True,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, hard)))
    process.log = log
    try:
        _wait(f"http://127.0.0.1:{port}/health", process)
        yield process, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _stub(target: str):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))


def _grpc_predict(stub, name: str, inputs: dict) -> np.ndarray:
    """The output of a PredictionService.Predict, checked to be what the signature says:
    output_0, DT_FLOAT (a client reads the proto's dtype, not the numbers)."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, 30)
    assert list(response.outputs) == ["output_0"]
    assert types_pb2.DataType.Name(response.outputs["output_0"].dtype) == "DT_FLOAT"
    return tf.make_ndarray(response.outputs["output_0"])


def test_rest_and_grpc_answer_as_nettrain_predict(runner, server, renewals, tmp_path):
    _, url, target = server
    pd.DataFrame(ROWS).to_csv(tmp_path / "rows.csv", index=False)
    expected = _predicted(runner, renewals, tmp_path / "rows.csv")
    assert list(expected.columns) == ["class", "prob_no", "prob_yes"]

    status, answer = _http("POST", f"{url}/predict", {"rows": ROWS})
    assert status == 200, answer
    got = pd.DataFrame(answer["predictions"])
    assert list(got["class"]) == list(expected["class"])
    np.testing.assert_allclose(got[["prob_no", "prob_yes"]], expected[["prob_no", "prob_yes"]],
                               atol=1e-6)
    status, answer = _http("POST", f"{url}/predict", (tmp_path / "rows.csv").read_bytes(),
                           {"Content-Type": "text/csv"})
    assert status == 200 and pd.DataFrame(answer["predictions"]).equals(got)

    # TF Serving's row and columnar formats: the model's raw output, the probability of 'yes'
    status, rows = _http("POST", f"{url}/v1/models/renewals:predict", {"instances": ROWS})
    assert status == 200, rows
    np.testing.assert_allclose(np.array(rows["predictions"])[:, 0], expected["prob_yes"],
                               atol=1e-6)
    columns = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    status, cols = _http("POST", f"{url}/v1/models/renewals:predict", {"inputs": columns})
    assert status == 200 and cols["outputs"] == rows["predictions"]

    tensors = {"plan": [[r["plan"]] for r in ROWS], "region": [[r["region"]] for r in ROWS],
               "seats": np.array([[r["seats"]] for r in ROWS], dtype="int64"),
               "months": np.array([[r["months"]] for r in ROWS], dtype="float32"),
               "support_tickets": np.array([[r["support_tickets"]] for r in ROWS],
                                           dtype="float32")}
    out = _grpc_predict(_stub(target), "renewals", tensors)
    np.testing.assert_allclose(out[:, 0], expected["prob_yes"], atol=1e-6)

    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "renewals"
    request.metadata_field.append("signature_def")
    signatures = get_model_metadata_pb2.SignatureDefMap()
    _stub(target).GetModelMetadata(request, 30).metadata["signature_def"].Unpack(signatures)
    inputs = signatures.signature_def["serving_default"].inputs
    assert sorted(inputs) == sorted(ROWS[0]) and inputs["plan"].dtype == 7  # DT_STRING
    assert signatures.signature_def["serving_default"].outputs["output_0"].dtype == 1  # FLOAT

    assert _http("GET", f"{url}/v1/models/renewals") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}]})
    status, meta = _http("GET", f"{url}/v1/models/renewals/metadata")
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and sig["inputs"]["seats"]["dtype"] == "DT_INT64"
    assert urllib.request.urlopen(f"{url}/docs").status == 200


def test_a_bad_request_is_a_400_naming_the_field(server):
    import grpc

    _, url, target = server
    predict = f"{url}/v1/models/renewals:predict"
    bad = dict(ROWS[0], plan=5)
    assert _http("POST", predict, {"instances": [ROWS[0], bad]}) == (400, {
        "error": "instances[1].plan: expected a string; received 5. Write categories as the "
                 "text in the training CSV, in quotes."})
    status, answer = _http("POST", predict, {"instances": [{"plan": "basic"}]})
    assert status == 400 and answer["error"].startswith(
        "instances[0]: missing 'region', 'seats', 'months', 'support_tickets'.")
    status, answer = _http("POST", predict, {"rows": ROWS})
    assert status == 400 and "expected one of 'instances' (row format) or 'inputs'" in \
        answer["error"]
    status, answer = _http("POST", predict, b"{not json")
    assert status == 400 and answer["error"].startswith("request body: not JSON")
    status, answer = _http("POST", f"{url}/predict", {"rows": [dict(ROWS[0], months="soon")]})
    assert (status, answer["error"]) == (400, ("rows: column 'months' must be numeric; row 1 "
                                              "holds 'soon'. The model was trained on numbers "
                                              "in this column: give a number."))
    # an unknown model is a 404, as TF Serving answers
    status, answer = _http("POST", f"{url}/v1/models/other:predict", {"instances": ROWS})
    assert status == 404 and answer["error"].startswith(
        "Servable not found for request: Latest(other)")
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_predict(_stub(target), "other", {"plan": [["basic"]]})
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_predict(_stub(target), "renewals", {"plan": [["basic"]]})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs: missing 'region'" in caught.value.details()
    # a body over --max-body-bytes (4096 here) is refused
    status, answer = _http("POST", f"{url}/predict", {"rows": ROWS * 40})
    assert status == 413 and "over the limit of 4,096 bytes" in answer["error"]


def test_grpc_get_model_status_answers_as_tf_serving(server):
    """ModelService.GetModelStatus (tensorflow-serving-api's stub): version 1, AVAILABLE,
    status OK, for the served name with or without its version; another name or version is
    NOT_FOUND in TF Serving's words, as REST's GET /v1/models/NAME answers."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    _, url, target = server
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(target))
    for spec in ({"name": "renewals"}, {"name": "renewals", "version": {"value": 1}}):
        answer = stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
            model_spec=spec), 30)
        [version] = answer.model_version_status
        assert (version.version, version.state, version.status.error_code,
                version.status.error_message) == \
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0, "")
    for spec, said in (({"name": "other"}, "Could not find any versions of model other"),
                       ({"name": "renewals", "version": {"value": 2}},
                        "Could not find version 2 of model renewals")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec), 30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details().startswith(said + "; this server serves 'renewals'")
        rest = "/versions/2" if "version" in spec else ""
        assert _http("GET", f"{url}/v1/models/{spec['name']}{rest}") == \
            (404, {"error": caught.value.details()})
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(), 30)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec: expected model_spec.name 'renewals'.")


def _b64(text: str | bytes) -> dict:
    import base64

    return {"b64": base64.b64encode(text.encode() if isinstance(text, str) else text).decode()}


def test_rest_takes_b64_strings_as_tf_serving_documents(server):
    """{"b64": "..."} for a string input, in row and columnar format: the bytes decoded, read
    as the category's text, answer as the text itself does; bad base64, bytes that are not
    UTF-8 and b64 for a number are a 400 naming the input."""
    from nettrain.serve import checks, tensors

    _, url, _ = server
    predict = f"{url}/v1/models/renewals:predict"
    assert checks.cells([_b64("premium"), "basic", _b64("nord\u00e9")], {"dtype": "string"},
                        str).tolist() == ["premium", "basic", "nord\u00e9"]
    one = {"plan": {"dtype": "string", "shape": [None, 1]}}  # a model of one string input
    for body in ({"instances": [_b64("basic"), _b64("gold")]},
                 {"inputs": [_b64("basic"), "gold"]}):
        assert tensors.from_json(body, one)[0]["plan"].tolist() == [["basic"], ["gold"]]
    plain = _http("POST", predict, {"instances": ROWS})
    assert plain[0] == 200
    coded = [dict(r, plan=_b64(r["plan"]), region=_b64(r["region"])) for r in ROWS]
    assert _http("POST", predict, {"instances": coded}) == plain
    columns = {k: [r[k] for r in coded] for k in coded[0]}
    status, answer = _http("POST", predict, {"inputs": columns})
    assert (status, answer["outputs"]) == (200, plain[1]["predictions"])
    # the teeth: a plan read as its base64 text (never seen in training) answers otherwise
    unseen = _http("POST", predict, {"instances": [dict(ROWS[0], plan=_b64("premium")["b64"])]})
    assert unseen[1]["predictions"][0] != plain[1]["predictions"][0]

    for value, said in (
            ({"b64": "cHJlbW!!"}, 'instances[0].plan: {"b64": "cHJlbW!!"} is not base64'),
            (_b64(b"\xff\xfe"), "instances[0].plan: {\"b64\": ...} decodes to b'\\xff\\xfe', "
                                  "not UTF-8 text"),
            ({"b64": "cA==", "more": 1}, 'instances[0].plan: expected a string; received '
                                         '{"b64": "cA==", "more": 1}. Write categories')):
        status, answer = _http("POST", predict, {"instances": [dict(ROWS[0], plan=value)]})
        assert status == 400 and answer["error"].startswith(said), answer
    status, answer = _http("POST", predict, {"instances": [dict(ROWS[0], months=_b64("12"))]})
    assert status == 400 and answer["error"] == (
        'instances[0].months: expected a number; received {"b64": "MTI="}. {"b64": ...} is '
        "for string inputs.")


def _multipart(name: str, data: bytes) -> tuple[bytes, dict]:
    """A form of one file, written out (httpx would set its Content-Length)."""
    head = (f'--nettrain\r\nContent-Disposition: form-data; name="file"; filename="{name}"'
            '\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    return head + data + b"\r\n--nettrain--\r\n", \
        {"Content-Type": "multipart/form-data; boundary=nettrain"}


def test_a_body_over_the_limit_is_a_413_on_every_route_and_encoding(server):
    """--max-body-bytes (4096 here) holds for every route and body, with a Content-Length or
    chunked (no length to check first: refused as the bytes arrive), as JSON."""
    import httpx

    _, url, _ = server
    csv = pd.DataFrame(ROWS * 100).to_csv(index=False).encode()
    bodies = [("/predict", json.dumps({"rows": ROWS * 40}).encode(),
               {"Content-Type": "application/json"}),
              ("/predict", csv, {"Content-Type": "text/csv"}),
              ("/predict", *_multipart("rows.csv", csv)),
              ("/v1/models/renewals:predict", json.dumps({"instances": ROWS * 40}).encode(),
               {"Content-Type": "application/json"})]
    for route, body, headers in bodies:
        assert len(body) > 4096
        for chunked in (False, True):
            content = iter([body[:1000], body[1000:]]) if chunked else body
            answer = httpx.post(url + route, content=content, headers=headers, timeout=60)
            assert (answer.status_code, answer.headers["content-type"]) == \
                (413, "application/json"), (route, chunked, answer.text)
            assert answer.json()["error"].startswith(
                "request body: over the limit of 4,096 bytes (nettrain serve --max-body-bytes)")
    # under the limit, chunked is read whole
    small = json.dumps({"rows": ROWS}).encode()
    answer = httpx.post(f"{url}/predict", content=iter([small[:10], small[10:]]), timeout=60)
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3


def _proto(dtype: str, dims: list[int], **values):
    """A TensorProto as a client may write it by hand: any shape, any values."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dtype), tensor_shape=shape,
                                  **values)


def _grpc_refusal(target: str, protos: dict):
    """The status and details of a Predict of renewals' inputs, ``protos`` in place of some."""
    import grpc
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "renewals"
    fine = {"plan": _proto("DT_STRING", [1, 1], string_val=[b"basic"]),
            "region": _proto("DT_STRING", [1, 1], string_val=[b"west"]),
            "seats": _proto("DT_INT64", [1, 1], int64_val=[5]),
            "months": _proto("DT_FLOAT", [1, 1], float_val=[12.0]),
            "support_tickets": _proto("DT_FLOAT", [1, 1], float_val=[0.0])}
    for name, proto in {**fine, **protos}.items():
        request.inputs[name].CopyFrom(proto)
    try:
        _stub(target).Predict(request, 60)
    except grpc.RpcError as exc:
        return request.ByteSize(), exc.code(), exc.details()
    return request.ByteSize(), grpc.StatusCode.OK, ""


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmHWM:"))) * 1024


def test_a_request_is_bounded_before_it_is_expanded(server, tmp_path):
    """--max-rows (20 here) holds on every route before a value is read; a TensorProto that
    declares 6,000,000 rows in 128 bytes (once filled to 5 GB) or more values than it
    carries is refused without being expanded."""
    import grpc

    process, url, target = server
    before = _peak_rss(process.pid)
    rows = 6_000_000
    size, code, details = _grpc_refusal(target, {
        "plan": _proto("DT_STRING", [rows, 1], string_val=[b"basic"]),
        "region": _proto("DT_STRING", [rows, 1], string_val=[b"west"]),
        "seats": _proto("DT_INT64", [rows, 1], int64_val=[5]),
        "months": _proto("DT_FLOAT", [rows, 1], float_val=[12.0]),
        "support_tickets": _proto("DT_FLOAT", [rows, 1], float_val=[0.0])})
    assert size < 200  # bytes, declaring 30,000,000 values
    assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, (
        "inputs['plan']: 6,000,000 rows; this server takes at most 20 a request (nettrain "
        "serve --max-rows). Send them in several requests."))
    assert _peak_rss(process.pid) - before < 50 * 2**20
    _, code, details = _grpc_refusal(target, {
        "months": _proto("DT_FLOAT", [1, 1], float_val=[12.0, 13.0]),
        "seats": _proto("DT_INT64", [10, 1], int64_val=[5])})
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("inputs['seats']: its shape [10, 1] holds 10 values; the "
                              "tensor carries 1.")

    over = ROWS * 7  # 21 rows
    columns = {k: [r[k] for r in over] for k in ROWS[0]}
    pd.DataFrame(over).to_csv(tmp_path / "rows.csv", index=False)
    for route, body, where in (
            ("/v1/models/renewals:predict", {"instances": over}, "instances: 21"),
            ("/v1/models/renewals:predict", {"inputs": columns}, "inputs['plan']: 21"),
            ("/predict", {"rows": [{}] * 21}, "rows: 21"),
            ("/predict", (tmp_path / "rows.csv").read_bytes(), "body.csv: more than 20")):
        status, answer = _http("POST", url + route, body, {"Content-Type": "text/csv"}
                               if isinstance(body, bytes) else {})
        assert (status, answer["error"]) == (413, f"{where} rows; this server takes at most "
                                             "20 a request (nettrain serve --max-rows). Send "
                                             "them in several requests."), route
    status, answer = _http("POST", f"{url}/v1/models/renewals:predict",
                           {"instances": over[:20]})
    assert status == 200 and len(answer["predictions"]) == 20


BAD_VALUES = [  # (column, value, what the client is told about it)
    ("plan", True, "expected a string; received true (this column has no category true"),
    ("plan", ["a"], 'expected a string; received ["a"]'),
    ("plan", {"a": 1}, 'expected a string; received {"a": 1}'),
    ("plan", "\ud800", "'\\ud800' is not Unicode text (it holds a lone surrogate"),
    ("months", True, "expected a number; received true (true and false are not numbers"),
    ("seats", 1e19, "expected a whole number (a category: within 64 bits, exact); received "
                    "1e+19."),
    ("seats", 2**63, "expected a whole number (a category: within 64 bits, exact); received "
                     "9223372036854775808."),
]


def test_a_value_is_checked_whole_alike_on_both_routes(server):
    """/predict and TF Serving's route refuse the same values with one checker (/predict
    answered `true` with the classes of an unseen category 'True', 500 for '\\ud800'); over
    gRPC, bytes that are not UTF-8 or booleans for a number are INVALID_ARGUMENT."""
    import grpc

    _, url, target = server
    for column, value, told in BAD_VALUES:
        bad = [ROWS[0], dict(ROWS[1], **{column: value})]
        for route, key in (("/predict", "rows"), ("/v1/models/renewals:predict", "instances")):
            status, answer = _http("POST", url + route, {key: bad})
            assert status == 400 and answer["error"].startswith(f"{key}[1].{column}: {told}"), \
                (route, value, status, answer)
    for protos, told in (({"plan": _proto("DT_STRING", [1, 1], string_val=[b"\xff\xfe"])},
                          "inputs['plan'][0]: b'\\xff\\xfe' is not UTF-8 text"),
                         ({"months": _proto("DT_BOOL", [1, 1], bool_val=[True])},
                          "inputs['months']: expected a number type (DT_FLOAT, DT_INT64...); "
                          "received DT_BOOL.")):
        _, code, details = _grpc_refusal(target, protos)
        assert (code, details[:len(told)]) == (grpc.StatusCode.INVALID_ARGUMENT, told)


def test_json_nested_deep_a_nul_in_a_file_name_are_400(server):
    _, url, _ = server
    deep = b'{"rows": ' + b"[" * 2000 + b"]" * 2000 + b"}"  # under the 4 KiB bound
    for route in ("/predict", "/v1/models/renewals:predict"):
        status, answer = _http("POST", url + route, deep)
        assert (status, answer["error"]) == (400, "request body: JSON nested more than 32 "
                                             "deep; the model's inputs need a few levels "
                                             "(rows of values)."), route
    body, headers = _multipart("rows\x00.csv", pd.DataFrame(ROWS).to_csv(index=False).encode())
    status, answer = _http("POST", f"{url}/predict", body, headers)
    assert (status, answer["error"]) == (400, "file: a file name holds a NUL byte "
                                         "('rows\\x00.csv'); name it without one.")


def test_half_open_connections_do_not_lock_clients_out(server):
    """Connections that stop mid-headers are closed after --client-timeout (5 s here), past
    --max-connections (by default the 256 descriptors less 128) the oldest is closed to make
    room, and running out of descriptors is one line of the log (it was a traceback for each
    accept: 112 MB a minute); a normal request is answered all along."""
    import resource

    process, url, _ = server
    host, port = url.removeprefix("http://").split(":")

    def half_open() -> socket.socket:
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        return sock

    held = [half_open() for _ in range(300)]  # more than the server has descriptors for
    try:
        assert _http("GET", f"{url}/health")[0] == 200
        # no descriptors left (none under 3: stdin, stdout, stderr hold them): accept fails,
        # and says so once
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (3, hard))
        held += [half_open() for _ in range(20)]
        for _ in range(300):
            if "cannot accept" in process.log.read_text():
                break
            time.sleep(0.1)
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (FDS, hard))
        assert _http("GET", f"{url}/health")[0] == 200
        assert _closed(held[-1])  # by the server: its headers never ended
    finally:
        for sock in held:
            sock.close()
    said = process.log.read_text()
    lines = [line for line in said.splitlines() if "cannot accept" in line]
    assert len(lines) == 1, said[-2000:]
    assert lines[0].startswith("nettrain serve: cannot accept new connections (Too many open "
                               "files): they wait until some close; raise the limit (ulimit "
                               "-n is ") and lines[0].endswith(") or lower --max-connections.")
    assert "Traceback" not in said and "socket.accept() out of system resource" not in said


@pytest.fixture(scope="module")
def in_thread(renewals):
    """The renewals run served in a thread of this process, whose own functions a test can
    watch: (REST url, gRPC target, the thread running the event loop)."""
    from nettrain.serve.model import Served
    from nettrain.serve.server import Options, serve

    port, grpc_port, stopped = _free_port(), _free_port(), []
    served = Served(renewals, None, window_ms=1, max_rows=64)
    options = Options(port=port, grpc_port=grpc_port, max_connections=8, timeout=120)
    thread = threading.Thread(target=serve, args=(served, options, stopped.append),
                              daemon=True)
    thread.start()
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", thread
    finally:
        if stopped:
            stopped[0]()
        thread.join(60)


def test_a_requests_work_runs_off_the_event_loop(in_thread, monkeypatch, tmp_path):
    """Reading bodies, pandas, checking inputs and writing answers run in worker threads, not
    on the event loop's (where they made /health wait for a big /predict): /health answers
    while a /predict is held in the middle of its rows."""
    import httpx

    from nettrain.engine import predict as predicting
    from nettrain.serve import http, tensors

    url, target, loop = in_thread
    ran_on: dict[str, set] = {}
    held, release = threading.Event(), threading.Event()

    def watch(module, name: str, hold: bool = False) -> None:
        real = getattr(module, name)

        def watched(*args, **kwargs):
            ran_on.setdefault(name, set()).add(threading.current_thread())
            if hold:
                held.set()
                release.wait(30)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, watched)

    watch(predicting, "rows_inputs", hold=True)
    for module, name in ((http, "_json_body"), (http, "_rows"), (http, "_answer"),
                         (predicting, "outputs"), (predicting, "read_csv_chunks"),
                         (tensors, "from_json"), (tensors, "to_json"),
                         (tensors, "from_protos"), (tensors, "to_protos")):
        watch(module, name)
    answers: list = []
    posting = threading.Thread(target=lambda: answers.append(
        _http("POST", f"{url}/predict", {"rows": ROWS})))
    posting.start()
    try:
        assert held.wait(30), "the /predict never reached its rows"
        health = httpx.get(f"{url}/health", timeout=20)  # the event loop is free meanwhile
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert not answers  # the /predict is still held
    finally:
        release.set()
        posting.join(60)
    assert answers[0][0] == 200 and len(answers[0][1]["predictions"]) == 3
    csv = pd.DataFrame(ROWS).to_csv(index=False).encode()
    assert httpx.post(f"{url}/predict", files={"file": ("rows.csv", csv)},
                      timeout=60).status_code == 200
    many = ROWS * 100  # TF Serving's tensors: over INLINE_BYTES (a few rows are read in place)
    assert _http("POST", f"{url}/v1/models/renewals:predict", {"instances": many})[0] == 200
    _grpc_predict(_stub(target), "renewals", {k: [[r[k]] for r in many] for k in ROWS[0]})
    assert sorted(ran_on) == sorted(["rows_inputs", "_json_body", "_rows", "_answer",
                                     "outputs", "read_csv_chunks", "from_json", "to_json",
                                     "from_protos", "to_protos"])
    on_loop = sorted(name for name, threads in ran_on.items() if loop in threads)
    assert on_loop == [], f"run on the event loop's thread: {on_loop}"


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (it waits for one until the socket's
    timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_past_max_connections_the_oldest_waiting_is_closed(in_thread):
    """--max-connections (8 here): a new connection closes the one that has waited longest
    for its client's headers (here long before their 120 s deadline), and is answered."""
    url, _, _ = in_thread
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(12):
            held.append(socket.create_connection((host, int(port)), timeout=60))
            held[-1].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        assert _http("GET", f"{url}/health")[0] == 200
        assert [_closed(sock) for sock in held[:4]] == [True] * 4
    finally:
        for sock in held:
            sock.close()


def test_sigterm_drains_a_request_in_flight(server):
    """SIGTERM while a request's body is still arriving: it is answered, then the process
    exits 0."""
    process, url, _ = server
    body = json.dumps({"rows": ROWS[:1]}).encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.5)  # the server has read the headers: the request is in flight
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"class"' in answer
    assert process.wait(timeout=60) == 0
    said = process.log.read_text()
    assert "Stopped." in said
    assert "with Keras on tensorflow (the backend the run trained on):" in said


def test_an_image_run_over_rest_and_grpc(runner, tmp_path_factory):
    """A server in a thread of this process, on real ports: pixels over TF Serving's REST
    and gRPC, and image files over /predict, answer as `nettrain predict RUN folder`."""
    from test_data import _images

    from nettrain.serve.model import Served
    from nettrain.serve.server import Options, serve

    folder = tmp_path_factory.mktemp("images")
    _images(folder / "photos", per_class=3)
    config = tiny_config(name="pics", data={"images": str(folder / "photos"),
                                            "image_size": [8, 8], "scale": 255,
                                            "validation_split": 0.34},
                         model={"layers": ["Flatten",
                                           {"Dense": {"units": 2, "activation": "softmax"}}]})
    run = fit_once(folder, config)
    expected = _predicted(runner, run, folder / "photos")
    pixels = np.stack([np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB"),
                                  dtype="float32") for p in expected["path"]])

    port, grpc_port = _free_port(), _free_port()
    stopped: list = []
    served = Served(run, None, window_ms=1, max_rows=64)
    options = Options(port=port, grpc_port=grpc_port, max_body=64 * 2**10)
    thread = threading.Thread(target=serve, args=(served, options, stopped.append),
                              daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/health")
        probs = expected[["prob_cat", "prob_dog"]].to_numpy()
        status, rows = _http("POST", f"{url}/v1/models/pics:predict",
                             {"instances": pixels.tolist()})
        assert status == 200, rows
        np.testing.assert_allclose(rows["predictions"], probs, atol=1e-6)
        # TF Serving's forms for a model of one input: rows as objects naming it, and the
        # columnar value given bare (not an object of inputs)
        status, named = _http("POST", f"{url}/v1/models/pics:predict",
                              {"instances": [{"inputs": p} for p in pixels.tolist()]})
        assert (status, named) == (200, rows)
        status, bare = _http("POST", f"{url}/v1/models/pics:predict",
                             {"inputs": pixels.tolist()})
        assert (status, bare) == (200, {"outputs": rows["predictions"]})
        out = _grpc_predict(_stub(f"127.0.0.1:{grpc_port}"), "pics", {"inputs": pixels})
        np.testing.assert_allclose(out, probs, atol=1e-6)
        status, answer = _http("POST", f"{url}/v1/models/pics:predict",
                               {"instances": pixels[:, :4].tolist()})
        assert (status, answer["error"]) == (400, ("instances: expected a number per value, "
                                                  "shape [rows, 8, 8, 3]; received shape "
                                                  "[6, 4, 8, 3]."))
        files = [("file", (Path(p).name, Path(p).read_bytes())) for p in expected["path"][:2]]
        import httpx

        answer = httpx.post(f"{url}/predict", files=files, timeout=60).json()
        got = pd.DataFrame(answer["predictions"])
        assert list(got["path"]) == [Path(p).name for p in expected["path"][:2]]
        assert list(got["class"]) == list(expected["class"][:2])
        np.testing.assert_allclose(got[["prob_cat", "prob_dog"]], probs[:2], atol=1e-6)
        # a file the image reader would pass over is refused, not left out of the answer
        files += [("file", ("notes.txt", b"hello")), ("file", ("photo", b"\x89PNG"))]
        answer = httpx.post(f"{url}/predict", files=files, timeout=60)
        assert (answer.status_code, answer.json()["error"]) == (400, (
            "file: expected image files (.png, .jpg, .jpeg, .bmp, .gif); received 'notes.txt', "
            "'photo'. Name each image with its type's suffix."))
        body, headers = _multipart("big.png", bytes(70_000))  # over max_body, chunked
        answer = httpx.post(f"{url}/predict", content=iter([body[:1000], body[1000:]]),
                            headers=headers, timeout=60)
        assert answer.status_code == 413 and "over the limit of 65,536 bytes" in \
            answer.json()["error"]
    finally:
        if stopped:
            stopped[0]()
        thread.join(60)
    assert not thread.is_alive()


def test_requests_that_arrive_together_make_one_call():
    from nettrain.serve.batching import Batcher

    seen: list[int] = []

    def double(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x * 2

    async def ask(window: float, max_rows: int) -> list[np.ndarray]:
        batcher = Batcher(double, window, max_rows)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher(np.full((1 + i % 2, 2), i, "float32"))
                                          for i in range(10)))
        finally:
            await batcher.close()

    answers = asyncio.run(ask(window=200, max_rows=1000))
    assert seen == [15]  # 10 requests of 1 or 2 rows: one call
    assert [a[:, 0].tolist() for a in answers] == [[2.0 * i] * (1 + i % 2) for i in range(10)]
    seen.clear()
    asyncio.run(ask(window=200, max_rows=4))
    assert seen == [4, 3, 3, 3, 2]  # never over 4 rows: a request is not split


def test_joined_requests_answer_as_model_predict_of_each_row_alone(renewals):
    """Requests joined into one call of the run's model (named inputs, strings among them,
    read as TF Serving's route reads them) are each answered with what model.predict says of
    that request's row alone."""
    import keras
    import tensorflow as tf

    from nettrain.serve import tensors
    from nettrain.serve.model import Served

    rows = [dict(ROWS[i % 3], months=3 + 5 * i, support_tickets=i % 4) for i in range(8)]
    served = Served(renewals, None, window_ms=500, max_rows=64)
    xs = [tensors.from_json({"instances": [row]}, served.inputs)[0] for row in rows]

    async def ask() -> list:
        await served.batcher.start()
        try:
            return await asyncio.gather(*(served.tensors(x) for x in xs))
        finally:
            await served.close()

    answers = asyncio.run(ask())
    assert (served.batcher.calls, served.batcher.rows) == (1, 8)  # one joined call
    model = keras.saving.load_model(renewals / "model.keras")
    alone = [model.predict({k: tf.constant(v) for k, v in x.items()}, verbose=0) for x in xs]
    assert len({round(float(a[0, 0]), 4) for a in alone}) > 4  # rows that answer apart
    for answer, expected in zip(answers, alone, strict=True):
        np.testing.assert_allclose(answer, expected, atol=1e-6)


def test_a_joined_call_that_fails_fails_only_the_request_at_fault():
    """A request that passes every check and still fails the model (as '\\ud800' did) fails
    alone: the joined call runs again a request at a time (787 of 800 good requests got a
    500 for one bad one)."""
    from nettrain.serve.batching import Batcher

    def model(x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise ValueError("a value the model cannot take")
        return x * 2

    async def ask() -> list:
        batcher = Batcher(model, 200, 1000)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher(np.full((1, 1), -1 if i == 3 else i,
                                                          "float32")) for i in range(8)),
                                        return_exceptions=True)
        finally:
            await batcher.close()

    answers = asyncio.run(ask())
    assert [type(a).__name__ for a in answers] == ["ndarray"] * 3 + ["ValueError"] + \
        ["ndarray"] * 4
    assert [float(a[0, 0]) for i, a in enumerate(answers) if i != 3] == \
        [2.0 * i for i in range(8) if i != 3]


def test_json_true_is_the_text_the_training_csv_held():
    """A true/false category answers JSON true with its own category's text ('True' as the
    CSV held it), read from the model's lookup; where that text is not one category (none,
    or both 'True' and 'true'), true is refused: never an unseen category."""
    import keras

    from nettrain.errors import InputError
    from nettrain.serve import checks
    from nettrain.serve.model import _booleans

    def spelled(vocabulary: list[str]) -> dict:
        flag = keras.Input(shape=(1,), dtype="string", name="flag")
        out = keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot",
                                        name="encode_flag")(flag)
        return _booleans(keras.Model(flag, out), "flag")

    spec = {"dtype": "string", "booleans": spelled(["False", "True", "maybe"])}
    assert spec["booleans"] == {"true": "True", "false": "False"}
    where = lambda i: f"rows[{i}].flag"  # noqa: E731
    assert checks.cells([True, False, "maybe"], spec, where, text=True).tolist() == \
        ["True", "False", "maybe"]
    for vocabulary in (["yes", "no"], ["True", "true", "False"]):
        spec = {"dtype": "string", "booleans": spelled(vocabulary)}
        with pytest.raises(InputError, match=r"^rows\[1\]\.flag: expected a string; received "
                                             r"true \(this column has no category true"):
            checks.cells(["yes", True], spec, where, text=True)
    with pytest.raises(InputError, match="a string of 70,000 characters; at most 65,536"):
        checks.cells(["x" * 70_000], {"dtype": "string"}, where)


def test_rest_and_grpc_take_the_columns_own_names_or_the_input_names():
    """A model of columns named class, 2nd and Origin has the inputs class_, c2nd and origin
    (see nettrain.data.columns.input_names): a request may name them either way, REST rows,
    REST columns and gRPC alike; a mix of the two is refused."""
    import tensorflow as tf

    from nettrain.data.columns import model_inputs
    from nettrain.errors import InputError
    from nettrain.serve import tensors

    inputs = model_inputs((3,), {"class": "string", "2nd": "numeric", "Origin": "string"})
    assert list(inputs) == ["class_", "c2nd", "origin"]
    expected = {"class_": [["first"]], "c2nd": [[2.0]], "origin": [["usa"]]}
    for row in ({"class": "first", "2nd": 2, "Origin": "usa"},
                {"class_": "first", "c2nd": 2, "origin": "usa"}):
        for body in ({"instances": [row]}, {"inputs": {k: [v] for k, v in row.items()}}):
            x, _ = tensors.from_json(body, inputs)
            assert {k: v.tolist() for k, v in x.items()} == expected
        protos = {k: tf.make_tensor_proto([[v]]) for k, v in row.items()}
        assert {k: v.tolist() for k, v in tensors.from_protos(protos, inputs).items()} == \
            {k: [[b.decode() if isinstance(b, bytes) else b for b in v[0]]]
             for k, v in expected.items()}
    with pytest.raises(InputError, match=r"^instances\[0\]: missing 'class_'; unknown 'class'"):
        tensors.from_json({"instances": [{"class": "first", "c2nd": 2, "origin": "usa"}]},
                          inputs)


def test_a_connection_to_the_rest_socket_sends_without_delay():
    """TCP_NODELAY on the served connections: without it, a kept-alive connection's answer
    (headers, then body) waited 40-50 ms a request for the client's delayed ACK."""
    from nettrain.serve.server import _listen

    async def accepted_nodelay() -> int:
        seen: list[int] = []

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=_listen("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        return seen[0]

    assert asyncio.run(accepted_nodelay()) != 0


def test_without_the_serve_extra_it_says_the_pip_command(runner, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what an absent package raises
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "nettrain serve needs fastapi, which is not installed. Install the serve extra: " \
        "pip install 'nettrain[serve]'" in " ".join(result.stderr.split())
