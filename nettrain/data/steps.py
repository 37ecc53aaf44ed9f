"""The step planner: how many batches an epoch, a call of the compiled step and a validation
pass run, and which batches of which pass over the data each epoch takes.

:func:`plan` decides it from the sample counts, the batch sizes, ``fit.steps_per_epoch``,
``fit.validation_steps``, ``fit.validation_freq`` and ``compile.steps_per_execution``. The
pipelines (:mod:`nettrain.data.pipeline`, :mod:`nettrain.data.stream`) follow its
:class:`Schedule` s, the model is compiled with its calls (:func:`steps_per_execution`) and
``model.fit`` gets :meth:`Plan.fit_arguments`. The rule is Keras's own ``model.fit`` with
``steps_per_execution=1``:

- An epoch trains ``fit.steps_per_epoch`` batches (default: one pass over the training
  split). The batches run on from one pass into the next, each pass in its own order, as
  Keras takes them from a repeated dataset (what Keras asks for when an epoch is given in
  steps): an epoch is never cut short where a pass ends. Epoch ``k`` is the batches
  ``k * E`` to ``(k + 1) * E`` of the passes one after another, so it depends on ``k`` alone
  and a resumed run trains the batches an uninterrupted one does.
- A validation pass runs the first ``fit.validation_steps`` batches of the validation split
  (default, and at most: all of them), from its start each time; Keras runs it every
  ``fit.validation_freq`` epochs.
- ``steps_per_execution`` only groups batches into calls of the compiled step; it never
  changes which batches run. Keras ends a call early only where its iterator runs out, so a
  pipeline whose epochs are not a whole number of calls ends with each epoch (an iterator an
  epoch, the last call short); one whose epochs are is endless (one iterator for the whole
  fit: making an iterator costs more than a short epoch).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from nettrain.backends import select
from nettrain.config.schema import Config

DEFAULT_BATCH_SIZE = 32  # Keras's, when fit.batch_size is not given
# With ``steps_per_execution: auto``, one call of the compiled training step runs up to this
# many batches: Python, the callbacks' batch hooks and the progress display then run once per
# call instead of once per batch.
MAX_STEPS_PER_EXECUTION = 32

Segment = tuple[int, int, int]  # (pass, first batch, end batch): batches first..end-1 of a pass


def batches(samples: int, batch_size: int | None) -> int:
    """Batches in one pass over ``samples`` rows (the last one may be short)."""
    return -(-samples // (batch_size or DEFAULT_BATCH_SIZE))


@dataclass(frozen=True)
class Schedule:
    """Which batches of which pass over one split each epoch runs.

    Attributes:
        samples: rows in the split; batch_size: rows per batch (the last of a pass may be
            short).
        per_epoch: batches an epoch runs.
        runs_on: training: each epoch takes the next ``per_epoch`` batches of the passes one
            after another. Otherwise each epoch runs its pass's first ``per_epoch`` batches.
        endless: one pipeline for every epoch (``model.fit`` then needs ``steps_per_epoch``);
            otherwise each pass over the pipeline is one epoch, which ends there.
    """

    samples: int
    batch_size: int
    per_epoch: int
    runs_on: bool = False
    endless: bool = False

    @property
    def per_pass(self) -> int:
        """Batches in one pass over the split."""
        return batches(self.samples, self.batch_size)

    @property
    def same_every_epoch(self) -> bool:
        """Whether each epoch runs the first ``per_epoch`` batches of a pass of its own."""
        return not self.runs_on or self.per_epoch == self.per_pass

    def segments(self, epoch: int) -> list[Segment]:
        """The batches epoch ``epoch`` (counted from 0) runs, in order.

        Example: 23 rows in batches of 4 are 6 batches a pass; with 5 an epoch, epoch 1 is
        ``[(0, 5, 6), (1, 0, 4)]``: the last batch of pass 0, then 4 of pass 1.
        """
        if self.same_every_epoch:
            return [(epoch, 0, self.per_epoch)]
        return list(self._run(epoch * self.per_epoch, (epoch + 1) * self.per_epoch))

    def following(self, first_epoch: int) -> Iterator[Segment]:
        """The batches of epoch ``first_epoch`` and of every epoch after it, endlessly."""
        if self.same_every_epoch:
            return ((epoch, 0, self.per_epoch) for epoch in itertools.count(first_epoch))
        return self._run(first_epoch * self.per_epoch, None)

    def _run(self, start: int, stop: int | None) -> Iterator[Segment]:
        """Batches ``start`` to ``stop`` (None: no end) of the passes one after another."""
        while stop is None or start < stop:
            number, first = divmod(start, self.per_pass)
            end = self.per_pass if stop is None else min(self.per_pass, first + stop - start)
            yield number, first, end
            start += end - first

    def epoch_samples(self, epoch: int) -> int:
        """The rows epoch ``epoch`` runs."""
        return sum(min(end * self.batch_size, self.samples) - first * self.batch_size
                   for _, first, end in self.segments(epoch))


def whole(samples: int, batch_size: int | None, endless: bool = False) -> Schedule:
    """One whole pass over the split each epoch (evaluation, prediction)."""
    return Schedule(samples, batch_size or DEFAULT_BATCH_SIZE, batches(samples, batch_size),
                    endless=endless)


def train_batch_size(config: Config) -> int:
    """The training batch size: fit.batch_size, or Keras's default."""
    return config.fit.batch_size or DEFAULT_BATCH_SIZE


def evaluation_batch_size(config: Config) -> int:
    """The batch size of validation and evaluation: fit.validation_batch_size or
    fit.batch_size."""
    return config.fit.validation_batch_size or config.fit.batch_size or DEFAULT_BATCH_SIZE


def evaluation(config: Config, samples: int) -> Schedule:
    """One whole pass over a split of ``samples`` rows at the evaluation batch size."""
    return whole(samples, evaluation_batch_size(config))


def steps_per_execution(config: Config, samples: int | None) -> int:
    """Batches per call of the compiled step: ``compile.steps_per_execution``, with ``auto``
    chosen from the batches of an epoch: the epoch split into equal calls of at most 32 (1
    when the size is unknown, with ``run_eagerly``, with ``distribute: mirrored``, which
    fails with more under Keras 3.15, and on the torch backend, which runs one step a call).

    Example: 60,000 samples in batches of 128 -> 469 batches -> 15 calls of 32 batches; 4
    samples in batches of 1 -> one call of 4.
    """
    value = config.compile.steps_per_execution
    if select.loaded() == "torch":
        return 1  # a config that trains with more is refused there; evaluating one runs
    if value != "auto":
        return value
    if config.compile.run_eagerly or config.distribute == "mirrored":
        return 1  # Keras runs several steps per call only in one graph on one device
    steps = config.fit.steps_per_epoch or (batches(samples, config.fit.batch_size)
                                           if samples else 0)
    if not steps:
        return 1
    return -(-steps // -(-steps // MAX_STEPS_PER_EXECUTION))


@dataclass(frozen=True)
class Plan:
    """The batches of a fit: training's and validation's schedules, and the calls."""

    per_call: int
    train: Schedule
    validation: Schedule | None
    validation_freq: int = 1

    def fit_arguments(self) -> dict[str, int | None]:
        """``model.fit``'s step arguments for pipelines that follow this plan: an endless
        training pipeline needs ``steps_per_epoch``; a finite one, and validation's, end each
        epoch and each validation pass themselves."""
        return {"steps_per_epoch": self.train.per_epoch if self.train.endless else None,
                "validation_steps": None, "validation_freq": self.validation_freq}

    @property
    def epoch_samples(self) -> int:
        """The training samples of an epoch, on average over the epochs (for samples/s)."""
        return round(self.train.per_epoch * self.train.samples / self.train.per_pass)


def plan(config: Config, samples: Mapping[str, int]) -> Plan:
    """The step plan of fitting ``config`` on splits of ``samples`` rows (split -> rows; a
    validation split only when validation data exists).

    Example: 23 training rows in batches of 4, ``steps_per_epoch: 5``,
    ``steps_per_execution: 2``, 13 validation rows, ``validation_steps: 2``: epochs of 5
    batches in calls of 2, 2 and 1 (an iterator an epoch), validation on the first 8 rows.
    """
    fit = config.fit
    per_call = steps_per_execution(config, samples["train"])
    batch_size = train_batch_size(config)
    per_epoch = fit.steps_per_epoch or batches(samples["train"], batch_size)
    train = Schedule(samples["train"], batch_size, per_epoch, runs_on=True,
                     endless=per_epoch % per_call == 0)
    validation = None
    if "validation" in samples:
        every = evaluation(config, samples["validation"])
        validation = Schedule(every.samples, every.batch_size,
                              min(fit.validation_steps or every.per_pass, every.per_pass))
    return Plan(per_call, train, validation, fit.validation_freq)
