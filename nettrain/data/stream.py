"""A CSV too large for memory, streamed in chunks through ``tf.data``.

The file is read with pandas in chunks of rows (the same parsing, checks and messages as a
CSV loaded whole); each row goes to train, validation or test by a hash of its row number and
the seed, so every pass sees the same split without holding it. Fills that data.missing
learns (mean, median, most_frequent) come from a first pass over the training rows. One scan
pass counts the rows of each split (and records each row's split, a byte a row, for
split.csv) and collects the class labels and category vocabularies of the training rows;
Keras's Normalization adapts on a second pass over the training rows. Training shuffles the
rows within each chunk, in an order drawn from the seed and the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nettrain.config.sections import DataConfig
from nettrain.data.csvfile import RULE, CsvRule, read_csv, read_header
from nettrain.data.dataset import SPLIT_NAMES, SplitRows
from nettrain.data.missing import LEARNED, Missing, dropped_note
from nettrain.errors import ConfigError, DataError

CHUNK_ROWS = 65_536
AUTO_STREAM_BYTES = 256 * 2**20  # data.stream: auto streams a CSV larger than this
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


def should_stream(cfg: DataConfig) -> bool:
    """Whether data.csv streams: ``stream: true``, or ``auto`` and a file over 256 MiB."""
    if cfg.source != "csv" or cfg.stream is False:
        return False
    if cfg.stream is True:
        return True
    path = Path(cfg.csv).expanduser()
    return path.is_file() and path.stat().st_size > AUTO_STREAM_BYTES


def split_codes(rows: np.ndarray, cfg: DataConfig, seed: int | None) -> np.ndarray:
    """0 train, 1 validation, 2 test for each row number: a hash, stable across passes."""
    h = (rows.astype(np.uint64) * np.uint64(2654435761) + np.uint64((seed or 0) * 40503 + 1))
    h = (h ^ (h >> np.uint64(15))) * np.uint64(2246822519) % np.uint64(2**32)
    u = h.astype(np.float64) / 2**32
    codes = np.zeros(len(rows), dtype=np.int8)
    codes[u < cfg.test_split + cfg.validation_split] = 1
    codes[u < cfg.test_split] = 2
    return codes


def _check_label_indices(labels: dict[str, Any], cfg: DataConfig) -> None:
    """Integer labels of every split number the classes: refuse one far beyond the labels
    present, before any split is checked (see :func:`nettrain.data.labels.index_classes`)."""
    from nettrain.data.labels import index_classes, label_source

    present = {v for split in labels.values() for v in split}
    if present and all(isinstance(v, (int, float, np.integer, np.floating)) and
                       float(v) == int(v) and v >= 0 for v in present):
        index_classes(present, *label_source("csv", str(cfg.path), cfg.target))


class Chunked:
    """Batches and tf.data passes of a CSV read chunk by chunk: a subclass gives ``counts``
    (rows per split) and ``arrays(split, epoch, shuffle)`` ((x, y, w) of each chunk). The
    streamed training CSV (:class:`CsvStream`) and ``evaluate --data``'s labelled CSV
    (:class:`nettrain.data.loading.LabelledCsv`) read this way."""

    counts: dict[str, int]

    def arrays(self, split: str, epoch: int = 0, shuffle: bool = False) -> \
            Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, epoch: int = 0, shuffle: bool = False) -> \
            Iterator[tuple]:
        """Full batches across chunk borders; the last one may be short. Each row is copied
        into its batch once (a chunk is not copied again for each of its batches)."""
        from nettrain.data.dataset import take
        from nettrain.data.pipeline import item

        pending: tuple | None = None  # the rows of the last chunk that made no full batch
        for part in self.arrays(split, epoch, shuffle):
            x, y, w = _concat([pending, part]) if pending else part
            start = 0
            while len(y) - start >= batch_size:
                end = start + batch_size
                yield item(take(x, np.arange(start, end)), y[start:end],
                           None if w is None else w[start:end])
                start = end
            pending = (take(x, np.arange(start, len(y))), y[start:],
                       None if w is None else w[start:]) if start < len(y) else None
        if pending:
            yield item(*pending)

    def dataset(self, split: str, batch_size: int | None, shuffle: bool = False,
                first_epoch: int = 0, schedule: Any = None) -> Any:
        """A tf.data.Dataset of batches of one split; each pass reads the file again.

        ``schedule`` (a :class:`nettrain.data.steps.Schedule`) says which batches of which
        pass each epoch runs; default: one whole pass of ``batch_size``.
        """
        from nettrain.data import steps
        from nettrain.data.pipeline import epoch_dataset

        schedule = schedule or steps.whole(self.counts.get(split, 0), batch_size)
        return epoch_dataset(
            lambda number: self.batches(split, schedule.batch_size, number, shuffle),
            schedule, first_epoch)


@dataclass
class CsvStream(Chunked):
    """One streamed CSV source: its columns, its splits and its passes."""

    path: Path
    cfg: DataConfig
    seed: int | None
    classify: bool
    rule: CsvRule = RULE  # how cells are read (see nettrain.data.csvfile)
    features: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    classes: list[str] | None = None
    vocabularies: dict[str, list] = field(default_factory=dict)
    class_counts: np.ndarray | None = None
    missing: Missing = field(default_factory=Missing)  # data.missing, with the learned fills
    rows: SplitRows | None = None  # which rows went to which split (split.csv)
    notes: list[str] = field(default_factory=list)
    _lookup: dict | None = None

    # ------------------------------------------------------------------ reading

    def chunks(self) -> Iterator[tuple[int, Any]]:
        """(first row number, DataFrame) for each chunk of the file."""
        for chunk in read_csv(self.path, self.cfg.delimiter, "data.csv", self.rule,
                              self.cfg.categorical or [], CHUNK_ROWS):
            yield int(chunk.index[0]) if len(chunk) else 0, chunk

    def open(self) -> CsvStream:
        """Check the columns (from the header) and scan the file once."""
        from nettrain.data.tabular import csv_features

        header = read_header(self.path, self.cfg.delimiter, "data.csv")
        try:
            self.features = csv_features(header, self.cfg, self.path.name)
        except ConfigError as exc:  # the problems of the first chunk's cells join it
            from nettrain.data.tabular import with_cell_problems

            raise with_cell_problems(exc, next(self.chunks())[1], self.cfg, self.path.name,
                                     True) from None
        weight = [self.cfg.sample_weight] if self.cfg.sample_weight else []
        self.missing = Missing.of_config(self.cfg.missing, self.features + weight,
                                         self.cfg.targets)
        if any(p in LEARNED for p in self.missing.policies.values()):
            self._learn()
        self._scan()
        return self

    def _rows(self, start: int, chunk: Any) -> tuple[Any, np.ndarray, dict[str, int]]:
        """The chunk's rows kept by data.missing (indexed by row number, not yet filled), each
        one's split code, and how many were dropped for each column."""
        targets = self.cfg.targets
        weight = [self.cfg.sample_weight] if self.cfg.sample_weight else []
        chunk = chunk[self.features + targets + weight]
        chunk.index = np.arange(start, start + len(chunk))
        chunk, dropped = self.missing.drop_rows(chunk, targets, self.path.name)
        return chunk, split_codes(chunk.index.to_numpy(), self.cfg, self.seed), dropped

    def _frame(self, start: int, chunk: Any) -> tuple[Any, np.ndarray]:
        """The chunk after data.missing (indexed by row number), and each row's split code."""
        from nettrain.data.tabular import fill_missing

        chunk, codes, _ = self._rows(start, chunk)
        return fill_missing(chunk, self.missing, self.kinds, self.path.name,
                            part=True), codes

    def _learn(self) -> None:
        """A first pass over the file: the fill values of the training rows (a mean from a
        sum and a count; a median from the column's training values, held as float64 while
        it is learned; the most frequent value from counts of the values)."""
        from collections import Counter

        import pandas as pd

        from nettrain.data.missing import most_frequent

        policies = {c: p for c, p in self.missing.policies.items() if p in LEARNED}
        sums = {c: [0.0, 0] for c, p in policies.items() if p == "mean"}
        values: dict[str, list] = {c: [] for c, p in policies.items() if p == "median"}
        counts: dict[str, Counter] = {c: Counter() for c, p in policies.items()
                                      if p == "most_frequent"}
        for start, chunk in self.chunks():
            frame, codes, _ = self._rows(start, chunk)
            train = frame[codes == 0]
            for column in policies:
                cells = train[column].dropna()
                if column in counts:
                    counts[column].update(cells.tolist())
                    continue
                numbers = pd.to_numeric(cells, errors="coerce").dropna().to_numpy("float64")
                if column in sums:
                    sums[column][0] += float(numbers.sum())
                    sums[column][1] += len(numbers)
                else:
                    values[column].append(numbers)
        fills: dict[str, Any] = {}
        for column, policy in policies.items():
            if column in sums:
                fills[column] = sums[column][0] / sums[column][1] if sums[column][1] else None
            elif column in values:
                numbers = np.concatenate(values[column]) if values[column] else np.zeros(0)
                fills[column] = float(np.median(numbers)) if len(numbers) else None
            else:
                fills[column] = most_frequent(counts[column]) if counts[column] else None
            if fills[column] is None:
                raise DataError(f"data.missing: the column {column!r} has no value in the "
                                f"training rows to learn its {policy} from. Fill the column, "
                                "or leave it out (data.features).")
        self.missing = Missing(self.missing.policies, self.missing.target, fills,
                               self.missing.default)

    def _together(self, first: DataError, frame: Any) -> DataError:
        """Every problem of the cells of ``frame``, a chunk's rows (indexed by row number)
        that have their target (see :func:`nettrain.data.cells.together`)."""
        from nettrain.data.cells import together
        from nettrain.data.tabular import fill_missing

        return together(first, frame, self.path.name, self.features, self.kinds,
                        self.cfg.targets, [self.cfg.sample_weight] if self.cfg.sample_weight
                        else [], lambda f: fill_missing(f, self.missing, self.kinds,
                                                        self.path.name, part=True), part=True)

    def _scan(self) -> None:
        """Count the rows of each split; collect labels and vocabularies of the training rows;
        decide each categorical column's kind from all its rows, as a file loaded whole."""
        from collections import Counter

        counts = dict.fromkeys(SPLIT_CODES, 0)
        labels: dict[str, set] = {s: set() for s in SPLIT_CODES}
        train_labels: Counter = Counter()
        categorical = self.cfg.categorical or []
        # read as text while scanning; their kinds are decided from every row at the end
        self.kinds = {c: "string" if c in categorical else "numeric" for c in self.features}
        seen: dict[str, set] = {c: set() for c in categorical}  # as read, before data.missing
        vocab: dict[str, set] = {c: set() for c in categorical}
        target = self.cfg.targets[0]
        from nettrain.data.tabular import (
            TARGET_ADVICE,
            WEIGHT_ADVICE,
            _is_text,
            fill_missing,
            numeric_frame,
            table_inputs,
        )

        names = self.rule.input_names(self.features)
        dropped: dict[str, int] = {}
        placed: list[np.ndarray] = []  # each row's code in SPLIT_NAMES (dropped: 3)
        for start, chunk in self.chunks():
            for column, values in seen.items():
                values.update(chunk[column].dropna().unique().tolist())
            frame, codes, gone = self._rows(start, chunk)
            for column, n in gone.items():
                dropped[column] = dropped.get(column, 0) + n
            rows = np.full(len(chunk), SPLIT_NAMES.index("dropped"), dtype=np.int8)
            rows[frame.index.to_numpy() - start] = codes
            placed.append(rows)
            try:
                frame = fill_missing(frame, self.missing, self.kinds, self.path.name, part=True)
                # parse every value now, so a bad cell fails validation, not training's end
                x = table_inputs(frame, self.features, self.cfg.categorical or [],
                                 self.path.name, self.kinds if self.cfg.categorical else None,
                                 names=names)
                numbers = [c for c in self.cfg.targets if not self.classify or
                           not _is_text(frame[c])]
                numeric_frame(frame[numbers], self.path.name, TARGET_ADVICE)  # finite numbers
                if self.cfg.sample_weight:
                    numeric_frame(frame[[self.cfg.sample_weight]], self.path.name,
                                  WEIGHT_ADVICE)
            except DataError as first:  # every problem of the chunk's cells, together
                raise self._together(first, frame) from None
            for split, code in SPLIT_CODES.items():
                mask = codes == code
                counts[split] += int(mask.sum())
                if self.classify:
                    labels[split].update(frame[target][mask].tolist())
            train = codes == 0
            if self.classify:
                train_labels.update(frame[target][train].tolist())
            for column in vocab:  # the values as the model takes them (int64 or str)
                vocab[column].update(x[names[column]][train].reshape(-1).tolist())
        self.counts = {s: n for s, n in counts.items() if n}
        self.rows = SplitRows(np.concatenate(placed) if placed else np.zeros(0, np.int8), True)
        note = dropped_note(dropped, self.path.name, self.cfg.targets)
        self.notes = [note] if note else []
        if "train" not in self.counts:
            raise DataError(f"{self.path.name}: no rows left for training.")
        self._decide_kinds(seen, vocab)
        if self.classify:
            values = sorted(labels["train"], key=lambda v: (isinstance(v, str), v))
            _check_label_indices(labels, self.cfg)
            unknown = sorted({str(v) for s in ("validation", "test") for v in labels[s]}
                             - {str(v) for v in values})
            if unknown:
                raise DataError(f"{self.path.name}: held-out rows have class labels that the "
                                f"training rows lack: {unknown[:5]}.")
            numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in values)
            if numeric and all(float(v) == int(v) and v >= 0 for v in values):
                self.classes = [str(i) for i in range(int(max(values)) + 1)]  # checked above
                self._lookup = None
                index = {v: int(v) for v in values}
            else:
                self.classes = [str(v) for v in values]
                self._lookup = index = {v: i for i, v in enumerate(values)}
            self.class_counts = np.zeros(len(self.classes), dtype="int64")
            for value, count in train_labels.items():
                self.class_counts[index[value]] += count

    def _decide_kinds(self, seen: dict[str, set], vocab: dict[str, set]) -> None:
        """Each categorical column's kind from its values in every row (``seen``), and its
        vocabulary from the training rows' texts (``vocab``; '' for a cell data.missing: zero
        filled, which is 0 in a column of whole numbers)."""
        import pandas as pd

        from nettrain.data.tabular import category_kind, whole_numbers

        for column, texts in vocab.items():
            self.kinds[column] = category_kind(pd.Series(list(seen[column])))
            if self.kinds[column] == "integer":
                numbers = whole_numbers(pd.Series(sorted(texts - {""})))
                texts = {*(numbers.tolist() if numbers is not None else []),
                         *([0] if "" in texts else [])}
            self.vocabularies[column] = sorted(texts, key=str)

    # ------------------------------------------------------------------ batches

    def arrays(self, split: str, epoch: int = 0, shuffle: bool = False) -> \
            Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
        """(x, y, w) of one split, chunk by chunk (rows shuffled within a chunk if asked)."""
        from nettrain.data.dataset import take
        from nettrain.data.pipeline import shuffled
        from nettrain.data.tabular import (
            TARGET_ADVICE,
            WEIGHT_ADVICE,
            numeric_frame,
            table_inputs,
        )

        code = SPLIT_CODES[split]
        targets = self.cfg.targets
        for start, chunk in self.chunks():
            frame, codes = self._frame(start, chunk)
            frame = frame[codes == code]
            if frame.empty:
                continue
            x = table_inputs(frame, self.features, self.cfg.categorical or [], self.path.name,
                             self.kinds if self.cfg.categorical else None,
                             names=self.rule.input_names(self.features))
            if self.classify:
                values = frame[targets[0]].tolist()
                y = np.array([self._lookup[v] for v in values] if self._lookup else values,
                             dtype="int64")
                if self.cfg.one_hot:
                    y = np.eye(len(self.classes), dtype="float32")[y]
            else:
                y = numeric_frame(frame[targets], self.path.name, TARGET_ADVICE)
            w = numeric_frame(frame[[self.cfg.sample_weight]], self.path.name,
                              WEIGHT_ADVICE)[:, 0] \
                if self.cfg.sample_weight else None
            if shuffle:  # within the chunk, in an order drawn from the seed, epoch and chunk
                order = shuffled(len(y), (self.seed or 0) * 1_000_003 + start, epoch)
                x, y = take(x, order), y[order]
                w = None if w is None else w[order]
            yield x, y, w

    def first(self, n: int = 2) -> tuple[Any, np.ndarray]:
        """The first ``n`` training rows (for checks before training)."""
        item = next(self.batches("train", n))
        return item[0], item[1]


def _concat(parts: list[tuple]) -> tuple:
    xs = [p[0] for p in parts]
    if isinstance(xs[0], dict):
        x = {k: np.concatenate([p[k] for p in xs]) for k in xs[0]}
    else:
        x = np.concatenate(xs)
    y = np.concatenate([p[1] for p in parts])
    w = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return x, y, w
