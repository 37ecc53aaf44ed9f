"""How a user's string reaches a terminal or a file: :func:`shown` escapes its control
characters, :func:`redacted` hides the secrets of the URIs in it.

Class names, column names, file, run and metric names come from folders, files and configs.
Printed raw, an escape sequence in one acts on the terminal (``\\x1b]0;...\\x07`` sets its
window title, ``\\x1b[2J`` clears the screen); a newline or a right-to-left override makes a
line say something else. Every table, note, error and CSV header nettrain prints shows them
through :func:`shown`, which writes each such character as a Python escape (``\\x1b``), so
the name stays readable and tells what it holds.

A URI may carry a secret: the password of ``http://user:password@host``, a token in
``?token=...``. :func:`redacted` is the one place that hides them; every file nettrain
writes about a run (config.yaml, run.json, a sweep's files), every MLflow param and every
message (:func:`shown` calls it) shows a URI through it.

The lowest layer: it imports nothing of nettrain (rich only for its markup escape, when asked).
"""

from __future__ import annotations

import re
from typing import Any

# Unicode's "Cc" characters (C0, DEL, C1), the line and paragraph separators, and the
# bidirectional marks, embeddings, overrides and isolates (they reorder what follows them).
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0x200E, 0x200F,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in _CONTROLS}
_LINES = {code: text for code, text in _TABLE.items() if code not in (0x09, 0x0A)}
# Select Graphic Rendition (bold, colour...): Keras writes its errors in bold with them.
_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def shown(text: Any, markup: bool = False, lines: bool = False) -> str:
    """``text`` (a str, a Path, anything ``str()`` takes) as it may reach a terminal or a CSV
    header: control characters escaped, everything else as written.

    Args:
        markup: the result goes through rich markup (a template, a ``[style]`` string): also
            escape ``[`` so the text is never read as a tag. Text shown through ``rich.Text``
            or with ``markup=False`` needs no such escape.
        lines: a message of several lines (an error, a note): keep its newlines and tabs,
            and drop the style codes (bold, colour) a library put in it: they can only hide
            text, and escaped they would be noise.

    Example: ``shown("cat\\x1b]0;pwned\\x07")`` -> ``'cat\\\\x1b]0;pwned\\\\x07'``;
    ``shown("été")`` -> ``'été'``.
    """
    text = redacted(str(text))
    result = _STYLE.sub("", text).translate(_LINES) if lines else text.translate(_TABLE)
    if markup:
        from rich.markup import escape

        result = escape(result)
    return result


def command(*words: Any) -> str:
    """A command line to copy from a message: each word quoted as a POSIX shell reads it, so
    a path with a space (``runs/my run``) stays one argument.

    Example: ``command("nettrain", "fit", "--resume", Path("runs/my run"))`` ->
    ``"nettrain fit --resume 'runs/my run'"``.
    """
    import shlex

    return " ".join(shlex.quote(str(word)) for word in words)


# What stands for a secret a URI held (SQLAlchemy's mark for a hidden password too).
HIDDEN = "***"
# A URI in a longer text (a command line, a message, JSON): it ends at a space or a quote.
_URI = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)([^\s\"'<>`]+)")
# user:password@ at the start of the authority; the password may hold an @ (the last one ends it).
_USERINFO = re.compile(r"^([^/?#@:]*):([^/?#]*)@")
# Query parameters whose names say they hold a secret (?token=, ?password=, ?api_key=, ?sig=).
_SECRET_NAME = re.compile(r"token|passw|pwd|secret|credential|auth|key$|^sig(nature)?$", re.I)
_PARAM = re.compile(r"(^|[&;])([^=&;]*)=([^&;]*)")


def redacted(value: Any) -> Any:
    """``value`` with the secrets of every URI in it replaced by ``***``: the password of its
    user part and the values of query parameters named like a secret (token, password,
    secret, key, sig...). A str may hold URIs among other text (a command line, JSON); a dict,
    list or tuple is redacted value by value; anything else, and text with no URI, is
    returned as it is.

    Example: ``redacted("postgresql://me:pw@db/x?sslmode=require&token=abc")`` ->
    ``'postgresql://me:***@db/x?sslmode=require&token=***'``; ``http://me@host`` (no
    password) is unchanged.
    """
    if isinstance(value, str):
        return _URI.sub(_hide, value) if "://" in value else value
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(item) for item in value)
    return value


def _hide(match: re.Match[str]) -> str:
    scheme, rest = match.groups()
    rest = _USERINFO.sub(lambda m: f"{m[1]}:{HIDDEN}@", rest, count=1)
    head, mark, query = rest.partition("?")
    if mark:
        query, hash_, fragment = query.partition("#")
        query = _PARAM.sub(lambda m: f"{m[1]}{m[2]}={HIDDEN}" if m[3] and _SECRET_NAME.search(
            m[2]) else m[0], query)
        rest = f"{head}?{query}{hash_}{fragment}"
    return scheme + rest
