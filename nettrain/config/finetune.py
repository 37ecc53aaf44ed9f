"""The ``fit.fine_tune`` section: the two phases of a run with a keras.applications backbone."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from nettrain.config.fields import INT32_MAX, Count, _schema, _Section, refuse, short_repr


def _all_or_count(value: Any) -> Any:
    if value == "all" or (type(value) is int and 0 < value <= INT32_MAX):
        return value
    raise refuse("'all' or a whole number of layers of at least 1", short_repr(value))


class FineTuneConfig(_Section):
    """The ``fit.fine_tune`` section: after ``after`` epochs of the head alone, the backbone's
    top ``unfreeze`` layers (or all) train too, at ``learning_rate``."""

    after: Count
    """The epochs the head trains alone (the backbone frozen) before the fine-tuning."""
    unfreeze: Annotated[Any, BeforeValidator(_all_or_count), _schema(
        {"const": "all"}, {"type": "integer", "minimum": 1, "maximum": INT32_MAX})] = "all"
    """all, or how many of the backbone's top layers become trainable (BatchNormalization
    stays in inference mode)."""
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0e-5
    """The optimizer's learning rate in the fine-tuning phase (a fresh optimizer of the same
    class)."""
