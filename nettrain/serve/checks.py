"""The one check of what a client sends, before it is expanded and before it joins a batch,
for TF Serving's REST and gRPC routes and ``/predict`` alike, so that one client's bad input
fails its own request only.

It checks the bounds of a request (rows, JSON nesting, string sizes; a TensorProto's declared
shape against the values it carries) and the values themselves (types, valid Unicode, whole
numbers that fit 64 bits, JSON ``true`` for a true/false category, TF Serving's ``{"b64": ...}``
for a string).

A request over a bound raises :class:`OverLimit` (413 / RESOURCE_EXHAUSTED); a bad value an
:class:`nettrain.errors.InputError` naming the field (400 / INVALID_ARGUMENT).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from nettrain.errors import InputError

MAX_ROWS = 10_000  # rows a request (nettrain serve --max-rows)
MAX_DEPTH = 32  # JSON nesting: an image's rows of pixels are 6 deep in TF Serving's format
MAX_STRING = 65_536  # characters of one string (a category: longer ones are no category)
KINDS = {"float32": "a number", "int64": "a whole number", "string": "a string"}
_INT64 = (-2**63, 2**63 - 1)
_EXACT = 2**53  # a whole number in a float is exact up to here

Where = Callable[[int | None], str]  # a row index (None: the whole input) -> the field's name


class OverLimit(InputError):
    """A request over a bound of the server's (rows a request): 413 over REST,
    RESOURCE_EXHAUSTED over gRPC."""


def check_rows(rows: int, limit: int, where: str, more: bool = False) -> None:
    """Refuse ``rows`` over ``limit`` (``more``: there are at least ``rows``, read so far)."""
    if rows > limit:
        count = f"more than {limit:,}" if more else f"{rows:,}"
        raise OverLimit(f"{where}: {count} rows; this server takes at most {limit:,} a request "
                        "(nettrain serve --max-rows). Send them in several requests.")


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_body(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A request body parsed as JSON, its nesting checked first on the bytes (at C speed;
    brackets inside strings count too, and the parser's own RecursionError backs it), so that
    no parser recurses into ``[[[[...`` (which raised RecursionError: a 500)."""
    if data.count(b"[") + data.count(b"{") > max_depth:
        brackets = data.translate(None, _NOT_BRACKETS)
        # '[' and '{' have bit 1 set, ']' and '}' not: +1 for an opening, -1 for a closing
        moves = (np.frombuffer(brackets, np.uint8) & 2).astype(np.int32) - 1
        if np.cumsum(moves).max() > max_depth:
            raise InputError(f"request body: JSON nested more than {max_depth} deep; the "
                             "model's inputs need a few levels (rows of values).")
    try:
        return json.loads(data)
    except RecursionError:
        raise InputError(f"request body: JSON nested more than {max_depth} deep; the "
                         "model's inputs need a few levels (rows of values).") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"request body: not JSON ({exc}).") from None


def cells(value: Any, spec: dict[str, Any], where: Where, text: bool = False) -> np.ndarray:
    """JSON values for one input (``spec``: its dtype and, for a true/false category, the
    texts its ``booleans`` were written as in the training CSV), checked, as an object array
    (rows first), JSON ``true``/``false`` replaced by that text.

    ``text``: the values are a CSV's cells (``/predict``'s rows): a number or a string in
    any column (read as a CSV's text is), ``null`` a missing cell. Otherwise (TF Serving's
    tensors) each value has the input's type. Either way a list or object where a value
    belongs, ``true`` for a number, a string that is not Unicode text or is over
    :data:`MAX_STRING` characters, and a whole number beyond 64 bits are refused."""
    dtype = spec["dtype"]
    try:
        array = np.asarray(value, dtype=object)
    except ValueError:  # nested deeper than numpy's 64 dimensions
        raise InputError(f"{where(None)}: expected {KINDS[dtype]} per value; received lists "
                         "nested too deep.") from None
    flat = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    types = set(map(type, flat.ravel()))
    if dict in types and dtype == "string" and not text:
        flat = _base64(flat, where)  # TF Serving's {"b64": "..."}: the bytes, as text
        array = flat.reshape(array.shape)
        types = set(map(type, flat.ravel()))
    if bool in types:
        flat = _booleans(flat, spec, where)
        array = flat.reshape(array.shape)
        types = set(map(type, flat.ravel()))
    allowed = {str, int, float, type(None)} if text else \
        ({str} if dtype == "string" else {int, float})
    if not types <= allowed:
        i, v = _first(flat, lambda v: type(v) not in allowed)
        advice = " Write categories as the text in the training CSV, in quotes." \
            if dtype == "string" and not text else \
            " {\"b64\": ...} is for string inputs." if is_base64(v) else ""
        raise InputError(f"{where(i)}: expected {KINDS[dtype]}; received {_shown(v)}.{advice}")
    if str in types:
        _strings(flat, where)
    if (int in types or float in types) and (dtype == "int64" or text):
        _number_range(flat, dtype, where)
    return array


def _booleans(flat: np.ndarray, spec: dict[str, Any], where: Where) -> np.ndarray:
    """JSON ``true``/``false`` as the text the training CSV held for it (``spec["booleans"]``:
    'true' -> 'True', say), in a string category that has such a category; else an
    InputError (never an unseen category)."""
    spelled = spec.get("booleans") or {} if spec["dtype"] == "string" else {}
    unspelled = lambda v: type(v) is bool and str(v).lower() not in spelled  # noqa: E731
    if any(map(unspelled, flat.ravel())):
        i, v = _first(flat, unspelled)
        why = "true and false are not numbers: write 1 or 0" if spec["dtype"] != "string" \
            else f"this column has no category {_shown(v)} (True, TRUE...) in the training " \
                 "CSV: write the category as its text there, in quotes"
        raise InputError(f"{where(i)}: expected {KINDS[spec['dtype']]}; received {_shown(v)}"
                         f" ({why}).")
    return np.frompyfunc(lambda v: spelled[str(v).lower()] if type(v) is bool else v, 1, 1)(
        flat).astype(object)


def is_base64(value: Any) -> bool:
    """Whether a JSON value is TF Serving's binary value: an object whose one key ``b64``
    holds a string."""
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def _base64(flat: np.ndarray, where: Where) -> np.ndarray:
    """A string input's ``{"b64": "..."}`` values decoded (standard base64; the padding may
    be left out, as TF Serving takes it) and read as UTF-8 text, the string a category is;
    base64 that does not decode and bytes that are not UTF-8 are refused."""
    import base64
    import binascii

    def decoded(i: int, value: Any) -> Any:
        if not is_base64(value):
            return value  # another object is refused with every other wrong type
        code = value["b64"]
        try:
            data = base64.b64decode(code + "=" * (-len(code) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"{where(i)}: {_shown(value)} is not base64 ({exc});"
                             " encode the bytes with standard base64 (A-Z a-z 0-9 + /).") \
                from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where(i)}: {{\"b64\": ...}} decodes to {_shown(data)}, not "
                             "UTF-8 text; a category is text: encode it as UTF-8, then "
                             "base64.") from None

    out = np.empty(flat.shape, dtype=object)
    for i, row in enumerate(flat):
        out[i] = [decoded(i, v) for v in row]
    return out


def _strings(flat: np.ndarray, where: Where) -> None:
    texts = [v for v in flat.ravel() if type(v) is str]
    longest = max(map(len, texts))
    if longest > MAX_STRING:
        i, v = _first(flat, lambda v: type(v) is str and len(v) > MAX_STRING)
        raise InputError(f"{where(i)}: a string of {len(v):,} characters; at most "
                         f"{MAX_STRING:,} are taken (a category's text).")
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no UTF-8 for the model
        i, v = _first(flat, lambda v: type(v) is str and not _is_utf8(v))
        raise InputError(f"{where(i)}: {_shown(v)} is not Unicode text (it holds a lone "
                         "surrogate, half of a character); send text that is.") from None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _number_range(flat: np.ndarray, dtype: str, where: Where) -> None:
    """Whole numbers fit int64 (a category: 2**63 and 1e19 wrapped to an unseen one), a float
    for one is exact (up to 2**53), and any other number fits a float (10**400 does not).
    (TF Serving's floats are checked as they are converted, at numpy's speed.)"""
    def bad(v: Any) -> bool:
        if type(v) is int:
            return not _INT64[0] <= v <= _INT64[1] if dtype == "int64" else \
                v.bit_length() > 1000
        if type(v) is float and dtype == "int64":
            return not np.isfinite(v) or v != round(v) or abs(v) > _EXACT
        return False

    if any(map(bad, flat.ravel())):
        i, v = _first(flat, bad)
        raise InputError(f"{where(i)}: expected {KINDS[dtype]}"
                         f"{' (a category: within 64 bits, exact)' if dtype == 'int64' else ''}"
                         f"; received {_shown(v)}.")


def _first(flat: np.ndarray, test: Callable[[Any], bool]) -> tuple[int, Any]:
    return next((i, v) for i, row in enumerate(flat) for v in row if test(v))


def _shown(value: Any) -> str:
    """A value as the client wrote it: JSON for true, null, lists and objects."""
    if isinstance(value, (bool, list, dict)) or value is None:
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# TensorProto: the field its values are in, and each value's bytes in tensor_content.
_PROTO_FIELDS = {"DT_FLOAT": ("float_val", 4), "DT_DOUBLE": ("double_val", 8),
                 "DT_HALF": ("half_val", 2), "DT_BFLOAT16": ("half_val", 2),
                 "DT_INT8": ("int_val", 1), "DT_INT16": ("int_val", 2),
                 "DT_INT32": ("int_val", 4), "DT_UINT8": ("int_val", 1),
                 "DT_UINT16": ("int_val", 2), "DT_UINT32": ("uint32_val", 4),
                 "DT_INT64": ("int64_val", 8), "DT_UINT64": ("uint64_val", 8),
                 "DT_STRING": ("string_val", None)}


def proto(tensor: Any, spec: dict[str, Any], where: str, limit: int) -> None:
    """A gRPC TensorProto's declared shape and dtype, checked against the input and against
    the values it carries, before anything is expanded (a 128-byte proto declaring 6,000,000
    rows and carrying one value was filled to gigabytes)."""
    from tensorflow.core.framework import types_pb2

    dtype = types_pb2.DataType.Name(tensor.dtype) if tensor.dtype in \
        types_pb2.DataType.values() else str(tensor.dtype)
    wanted = "DT_STRING" if spec["dtype"] == "string" else "a number type (DT_FLOAT, DT_INT64...)"
    if dtype not in _PROTO_FIELDS or (dtype == "DT_STRING") != (spec["dtype"] == "string"):
        raise InputError(f"{where}: expected {wanted}; received {dtype}.")
    dims = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_shape.unknown_rank or not dims or any(d < 0 for d in dims):
        raise InputError(f"{where}: expected a shape [rows, ...]; received "
                         f"{'an unknown rank' if tensor.tensor_shape.unknown_rank else dims}.")
    check_rows(dims[0], limit, where)
    per_row = [int(d) for d in spec["shape"][1:]]
    if dims[1:] != per_row and not (per_row == [1] and len(dims) == 1):
        raise InputError(f"{where}: expected {KINDS[spec['dtype']]} per value, shape "
                         f"[rows{''.join(f', {d}' for d in per_row)}]; received shape {dims}.")
    count = int(np.prod(dims))
    field, size = _PROTO_FIELDS[dtype]
    carried = len(tensor.tensor_content) // size if size and tensor.tensor_content else \
        len(getattr(tensor, field))
    if carried != count or (size and tensor.tensor_content and
                            len(tensor.tensor_content) != count * size):
        raise InputError(f"{where}: its shape {dims} holds {count:,} values; the tensor "
                         f"carries {carried:,}. Send every value (tf.make_tensor_proto of the "
                         "array).")
    if dtype == "DT_STRING":
        for i, value in enumerate(tensor.string_val):
            if len(value) > 4 * MAX_STRING:
                raise InputError(f"{where}[{i // max(count // dims[0], 1)}]: a string of "
                                 f"{len(value):,} bytes; at most {MAX_STRING:,} characters "
                                 "are taken (a category's text).")
