"""The ``data.text`` key: which CSV columns are free text and how each is vectorised (the
options of its ``TextVectorization``), read and checked here once. No TensorFlow here.

A list item is a column name (the defaults), or a one-key mapping from the name to its
options, like every Keras object of a config::

    text: [review]
    text: [{review: {output_mode: int, sequence_length: 200, max_tokens: 20000}}]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

from nettrain.config.fields import INT32_MAX, refuse, refuse_all, short_repr
from nettrain.errors import did_you_mean

OUTPUT_MODES = ("multi_hot", "tf_idf", "count", "int")
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
DEFAULT_MAX_TOKENS = 20_000
DEFAULT_SEQUENCE_LENGTH = 200  # output_mode int: every text padded or cut to this many tokens
EXAMPLE = "{review: {output_mode: int, sequence_length: 200}}"


@dataclass(frozen=True)
class TextColumn:
    """One text column's vectorisation: the arguments of its ``TextVectorization``."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    output_mode: str = "multi_hot"
    sequence_length: int | None = None  # output_mode int only (default 200)
    ngrams: int | None = None
    standardize: str | None = "lower_and_strip_punctuation"

    def keras_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``keras.layers.TextVectorization``."""
        return {"max_tokens": self.max_tokens, "output_mode": self.output_mode,
                "output_sequence_length": self.sequence_length, "ngrams": self.ngrams,
                "standardize": self.standardize}

    def describe(self) -> str:
        """In words, for ``validate``: 'multi_hot, up to 20000 tokens, 2-grams'."""
        parts = [self.output_mode if self.output_mode != "int" else
                 f"int, {self.sequence_length} token ids", f"up to {self.max_tokens} tokens"]
        if self.ngrams:
            parts.append(f"up to {self.ngrams}-grams")
        return ", ".join(parts)


OPTIONS = tuple(TextColumn.__dataclass_fields__)


def check_text(value: Any) -> Any:
    """data.text as written (kept for config.yaml), after checking every item; one error per
    mistake, all at once."""
    if value is None:
        return value
    if not isinstance(value, list) or not value:
        raise refuse(f"a list of text columns, e.g. [review] or [{EXAMPLE}]", short_repr(value))
    errors = list(_problems(value))
    if errors:
        raise refuse_all(errors)
    return value


def _problems(value: list) -> Iterator[PydanticCustomError]:
    seen: set[str] = set()
    for i, item in enumerate(value):
        if isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
            name, options = next(iter(item.items()))
            if options is not None and not isinstance(options, dict):
                yield refuse(f"a mapping of options ({', '.join(OPTIONS)})", short_repr(options),
                             f"Write e.g. - {EXAMPLE}", field=f"{i}.{name}")
                continue
            yield from _option_problems(options or {}, f"{i}.{name}")
        elif not isinstance(item, str) or not item:
            yield refuse(f"a column name, or a one-key mapping from the name to its options "
                         f"(e.g. {EXAMPLE})", short_repr(item), field=str(i))
            continue
        else:
            name = item
        if name in seen:
            yield refuse("each text column once", repr(name), field=str(i))
        seen.add(name)


def _option_problems(options: dict, where: str) -> Iterator[PydanticCustomError]:
    for key in options:
        if key not in OPTIONS:
            close = did_you_mean(str(key), OPTIONS)
            yield refuse(f"one of the options {', '.join(OPTIONS)}", f"unknown option {key!r}",
                         f"Did you mean '{close}'?" if close else None, field=f"{where}.{key}")
    mode = options.get("output_mode", "multi_hot")
    if mode not in OUTPUT_MODES:
        close = did_you_mean(str(mode), OUTPUT_MODES)
        yield refuse(f"one of {', '.join(OUTPUT_MODES)}", short_repr(mode),
                     f"Did you mean '{close}'?" if close else None, field=f"{where}.output_mode")
    for key, low in (("max_tokens", 3), ("sequence_length", 1), ("ngrams", 1)):
        number = options.get(key)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                   or not low <= number <= INT32_MAX):
            yield refuse(f"a whole number of at least {low}", short_repr(number),
                         field=f"{where}.{key}")
    if options.get("sequence_length") is not None and mode != "int":
        yield refuse("sequence_length only with output_mode: int (token ids, padded or cut to "
                     "that length)", f"output_mode: {mode}",
                     "Add output_mode: int, or remove sequence_length.",
                     field=f"{where}.sequence_length")
    standardize = options.get("standardize", STANDARDIZE[0])
    if standardize is not None and standardize not in STANDARDIZE:
        close = did_you_mean(str(standardize), STANDARDIZE)
        yield refuse(f"one of {', '.join(STANDARDIZE)}, or null (the text as written)",
                     short_repr(standardize), f"Did you mean '{close}'?" if close else None,
                     field=f"{where}.standardize")


def text_columns(value: Any) -> dict[str, TextColumn]:
    """Column -> its :class:`TextColumn` of a checked data.text (None: no text columns).

    Example: ``text_columns(["review"])`` -> ``{"review": TextColumn()}``;
    ``text_columns([{"t": {"output_mode": "int"}}])["t"].sequence_length`` -> ``200``.
    """
    columns = {}
    for item in value or []:
        name, options = (item, {}) if isinstance(item, str) else next(iter(item.items()))
        options = dict(options or {})
        if options.get("output_mode") == "int" and options.get("sequence_length") is None:
            options["sequence_length"] = DEFAULT_SEQUENCE_LENGTH
        columns[name] = TextColumn(**options)
    return columns


def config_problems(text: Any, features: list[str] | None, categorical: list[str] | None,
                    targets: list[str], weight: str | None,
                    missing: Any) -> Iterator[PydanticCustomError]:
    """data.text against the other keys of data: a text column is an input of its own (not in
    features or categorical), never the target or the weight, and filled with text only."""
    for i, name in enumerate(text_columns(text)):
        for key, names, why in (
                ("features", features, "text columns are inputs of their own: data.features "
                 "lists the other inputs"),
                ("categorical", categorical, "a column is either free text, vectorised into "
                 "words, or categories, one-hot encoded: not both"),
                ("target", targets, "the target is what the model predicts"),
                ("sample_weight", [weight] if weight else [], "the weight is a number")):
            if name in (names or []):
                yield refuse(f"a column that is not also in data.{key} ({why})", repr(name),
                             f"Remove {name!r} from data.{key}" + (
                                 " or from data.text." if key != "features" else "."),
                             field=f"text.{i}")
        policy = missing.get(name) if isinstance(missing, dict) else missing
        if policy in ("mean", "median"):
            yield refuse(f"a fill for the text column {name!r} ({policy} needs numbers)",
                         repr(policy), f"Use {{{name}: most_frequent}}, or zero (an empty text)"
                         + (", as a policy per column." if isinstance(missing, str) else "."),
                         field="missing")
