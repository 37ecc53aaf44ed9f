"""Class labels: integer labels number the classes, within a bound on the classes they make.

Integer labels keep their values as class indices (labels 3 and 8 of the digits make classes
0 to 8, some without samples), but a label far beyond the number of labels present (an id
column as the target, a stray 2**40) is refused at once: it would make a model with that many
outputs, after minutes of work and gigabytes of memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from nettrain.errors import ConfigError, Problem

# The fewest classes labels may make: a label below this is always a class index.
SMALL = 1000
# Beyond SMALL, labels may make at most this many classes per distinct label present.
PER_LABEL = 10


def index_classes(values: Iterable[int], key: str, where: str, advice: str) -> list[str]:
    """The class names of non-negative integer labels: ``'0'`` to the largest label.

    Args:
        values: the labels present (each distinct one at least once).
        key: the config key the labels come from (``data.npz``, ``data.target``).
        where: the labels' place for the message (``column 'id' of d.csv``).
        advice: what to do about a label too large.

    Raises ConfigError naming the largest label and ``where`` when it is at or beyond
    ``max(SMALL, PER_LABEL * distinct labels)``.

    Example: ``index_classes([0, 2], ...)`` -> ``['0', '1', '2']``; ``[0, 2**40]`` raises.
    """
    present = {int(v) for v in values}
    largest = max(present)
    limit = max(SMALL, PER_LABEL * len(present))
    if largest >= limit:
        raise ConfigError(Problem(
            key, f"class labels that number the classes 0, 1, 2, ... (at most {limit - 1} "
                 f"for {len(present)} distinct labels)",
            f"label {largest} in {where}, which would make {largest + 1} classes", advice))
    return [str(i) for i in range(largest + 1)]


def label_source(source: str, path: str, target: str | None) -> tuple[str, str, str]:
    """The key, the place and the advice :func:`index_classes` names for a data source:
    ``('data.target', "column 'id' of d.csv", "If 'id' is not the class, ...")``."""
    number = "number the classes 0, 1, 2, ..."
    if source == "csv":
        return ("data.target", f"column '{target}' of {path}",
                f"If '{target}' is not the class, set data.target to the class column; "
                f"else {number}, or write them as names.")
    return (f"data.{source}", str(path), f"N{number[1:]} (np.unique(y, return_inverse=True)"
                                         "[1]), or write them as names.")
