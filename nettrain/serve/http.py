"""The REST side of ``nettrain serve``: TensorFlow Serving's routes (``/v1/models/NAME``,
``/metadata``, ``:predict``) and nettrain's own (``POST /predict``, ``GET /health``), as a
FastAPI app with its OpenAPI docs at ``/docs``.

Errors are ``{"error": "..."}`` with TF Serving's status codes: 400 for a bad request (naming
the field), 404 for an unknown model or route, 413 for a body over the limit; a failure of
the server itself is a 500. (Imported only by a server: FastAPI is the serve extra's.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from nettrain.errors import InputError, NettrainError
from nettrain.serve import checks, tensors
from nettrain.serve.model import Served

_TF_BODY = {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "signature_name": {"type": "string", "default": tensors.SIGNATURE},
    "instances": {"type": "array", "description": "row format: one row per item; an object "
                  "of input name -> value for a model of named inputs"},
    "inputs": {"description": "columnar format: input name -> the values of every row"}}},
    "example": {"instances": [{"plan": "premium", "region": "north", "seats": 5,
                               "months": 12.0, "support_tickets": 0.0}]}}}}
_ROWS_BODY = {"content": {
    "application/json": {"schema": {"type": "object", "properties": {"rows": {
        "type": "array", "description": "rows as objects of column -> value, as in the "
        "training CSV (a list of numbers for a model of arrays)"}}},
        "example": {"rows": [{"plan": "premium", "region": "north", "seats": 5, "months": 12,
                              "support_tickets": 0}]}},
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {
        "type": "string", "format": "binary",
        "description": "a CSV with a header row, or (an image model) image files"}}}}}}


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def make_app(served: Served) -> Any:
    """The ASGI app answering for ``served``: FastAPI's, behind :class:`_FastPredict`."""
    app = FastAPI(title=f"nettrain serve: {served.name}",
                  description=f"The model of {served.run}, in TensorFlow Serving's REST API "
                              "and nettrain's own /predict.", version=served.version)

    def error(status: int, message: str) -> Any:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> Any:
        return error(exc.status, str(exc))

    @app.exception_handler(checks.OverLimit)
    async def over_limit(request: Request, exc: checks.OverLimit) -> Any:
        return error(413, str(exc))

    @app.exception_handler(NettrainError)
    async def bad_input(request: Request, exc: NettrainError) -> Any:
        return error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        return error(exc.status_code, str(exc.detail))

    def model(name: str, version: str | None = None) -> None:
        _check_model(served, name, version)

    @app.get("/health", summary="Whether the server is up, and what it serves")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "version": served.version,
                "run": str(served.run), "model_calls": served.batcher.calls,
                "rows_predicted": served.batcher.rows}

    @app.get("/v1/models/{name}", summary="TF Serving: the model's version status")
    @app.get("/v1/models/{name}/versions/{version}", include_in_schema=False)
    async def status(name: str, version: str | None = None) -> dict[str, Any]:
        missing = tensors.not_found(name, version, (served.name, served.version), status=True)
        if missing:
            raise _Refused(404, missing)
        return tensors.status_json(served.version)

    @app.get("/v1/models/{name}/metadata", summary="TF Serving: the signature")
    @app.get("/v1/models/{name}/versions/{version}/metadata", include_in_schema=False)
    async def metadata(name: str, version: str | None = None) -> dict[str, Any]:
        model(name, version)
        return tensors.metadata_json(served.name, served.version, served.inputs,
                                     served.outputs)

    @app.post("/v1/models/{name}:predict", summary="TF Serving: predict",
              openapi_extra={"requestBody": _TF_BODY})
    @app.post("/v1/models/{name}/versions/{version}:predict", include_in_schema=False)
    async def predict_tf(name: str, request: Request, version: str | None = None) -> Any:
        return Response(await _predict_tf(served, name, version, await request.body()),
                        media_type="application/json")

    @app.post("/predict", summary="Rows by column name, or a CSV or images: classes and "
                                  "probabilities, as `nettrain predict` writes them",
              openapi_extra={"requestBody": _ROWS_BODY})
    async def predict_rows(request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            frame = await _uploads(served, request)
        elif kind in ("text/csv", "application/csv"):
            frame = await served.csv(await request.body(), "body.csv")
        else:
            body = await request.body()
            frame = await served.rows(lambda: _rows(_json_body(body), served), "rows")
        return Response(await served.work(_answer, frame), media_type="application/json")

    return _FastPredict(app, served)


_TF_PREDICT = re.compile(r"/v1/models/([^/]+?)(?:/versions/([^/]+))?:predict")


class _FastPredict:
    """ASGI: TF Serving's REST predict (the route a load comes to) answered before FastAPI's
    routing, middleware and dependency solving, which cost about half of a 1-row request's
    CPU; every other request goes to ``app``. The app's own route calls the same
    :func:`_predict_tf` (it documents the route at /docs)."""

    def __init__(self, app: Any, served: Served):
        self.app, self.served = app, served

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        match = _TF_PREDICT.fullmatch(scope.get("path", "")) \
            if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            return await self.app(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            status, answer = 200, await _predict_tf(self.served, *match.groups(), bytes(body))
        except _Refused as exc:
            status, answer = exc.status, _error_body(str(exc))
        except checks.OverLimit as exc:
            status, answer = 413, _error_body(str(exc))
        except NettrainError as exc:
            status, answer = 400, _error_body(str(exc))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


async def _predict_tf(served: Served, name: str, version: str | None, body: bytes) -> bytes:
    """``POST /v1/models/NAME[/versions/V]:predict``: the answer's JSON bytes."""
    _check_model(served, name, version)
    x, columnar = await served.work(lambda: tensors.from_json(
        _json_body(body), served.inputs, served.request_rows), size=len(body))
    return await served.work(tensors.to_json, await served.tensors(x), columnar,
                             size=len(body))


def _check_model(served: Served, name: str, version: str | None = None) -> None:
    missing = tensors.not_found(name, version, (served.name, served.version))
    if missing:
        raise _Refused(404, missing)


def _json_body(data: bytes) -> Any:
    return checks.json_body(data)


def _error_body(message: str) -> bytes:
    """``{"error": message}`` as JSONResponse writes it."""
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode()


def _rows(body: Any, served: Served) -> Any:
    """The rows of a ``/predict`` JSON body: ``{"rows": [...]}`` or the list itself, each
    value checked by the checker TF Serving's route uses (:func:`checks.cells`, as a CSV's
    cells: text or numbers, ``null`` missing), JSON ``true`` made the category's text."""
    import pandas as pd

    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list) or not rows:
        raise InputError("rows: expected a list of rows (objects of column -> value), one or "
                         "more, as {\"rows\": [...]}; received "
                         f"{tensors._what(rows if isinstance(body, dict) else body)}.")
    checks.check_rows(len(rows), served.request_rows, "rows")
    info = served.predictor.info
    if not info.get("columns") and info.get("features") \
            and all(isinstance(r, list) for r in rows):
        # a plain table model also takes rows of numbers in the training order
        checks.cells(rows, {"dtype": "float32"}, lambda i: _at(i), text=True)
        return rows
    if all(isinstance(r, dict) for r in rows):
        for column, spec in _column_specs(served).items():
            if any(column in r for r in rows):
                values = [r.get(column) for r in rows]
                checked = checks.cells(values, spec, lambda i, c=column: _at(i, c), text=True)
                if bool in set(map(type, values)):  # true made the category's text
                    for row, value in zip(rows, checked.ravel(), strict=True):
                        if column in row:
                            row[column] = value
        return pd.DataFrame.from_records(rows)
    if any(isinstance(r, dict) for r in rows):
        i = next(i for i, r in enumerate(rows) if not isinstance(r, dict))
        raise InputError(f"rows[{i}]: expected an object of column -> value like the rows "
                         f"before it; received {tensors._what(rows[i])}.")
    checks.cells(rows, {"dtype": "float32"}, lambda i: _at(i), text=True)
    return rows


def _at(i: int | None, column: str | None = None) -> str:
    return "rows" + (f"[{i}]" if i is not None else "") + (f".{column}" if column else "")


def _column_specs(served: Served) -> dict[str, dict[str, Any]]:
    """Each training column's input spec (dtype; a true/false category's texts), by name."""
    specs = {s["column"]: s for s in served.inputs.values() if "column" in s}
    return specs or dict.fromkeys(served.predictor.info.get("features") or [],
                                  {"dtype": "float32"})


async def _uploads(served: Served, request: Any) -> Any:
    form = await request.form()
    files = [(f.filename or "upload", await f.read()) for _, f in form.multi_items()
             if hasattr(f, "read")]
    if not files:
        raise InputError("file: expected a file in the form (a CSV, or images); received "
                         f"the fields {', '.join(form.keys()) or 'none'}.")
    nul = [n for n, _ in files if "\x00" in n]
    if nul:
        raise InputError(f"file: a file name holds a NUL byte ({nul[0]!r}); name it "
                         "without one.")
    if served.predictor.info.get("images"):
        from nettrain.data.dataset import IMAGE_SUFFIXES

        checks.check_rows(len(files), served.request_rows, "file")
        others = [n for n, _ in files if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
        if others:  # the image reader passes them over: the answer would lack their rows
            raise InputError(f"file: expected image files ({', '.join(IMAGE_SUFFIXES)}); "
                             f"received {', '.join(map(repr, others))}. Name each image with "
                             "its type's suffix.")
        return await served.images(files)
    if len(files) > 1 or not files[0][0].lower().endswith(".csv"):
        raise InputError(f"file: expected one CSV file with a header row; received "
                         f"{', '.join(n for n, _ in files)}.")
    return await served.csv(files[0][1], files[0][0])


def _answer(frame: Any) -> bytes:
    """``/predict``'s answer, ``{"predictions": [row, ...]}``, as the body's bytes (written
    here, in a worker thread, not by FastAPI's encoder on the event loop)."""
    from nettrain.text import shown

    frame = frame.rename(columns={c: shown(c) for c in frame.columns})
    rows = json.loads(frame.to_json(orient="records", double_precision=15))
    return json.dumps({"predictions": rows}, ensure_ascii=False, separators=(",", ":")).encode()
