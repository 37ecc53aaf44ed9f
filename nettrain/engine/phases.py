"""Training in phases around a keras.applications backbone: ``fit.fine_tune``'s head phase
and fine-tuning phase, and a frozen backbone's features computed once for the head.

A run with ``fit.fine_tune: {after: A}`` trains epochs 0..A-1 with the backbone frozen (the
head), then unfreezes it (:func:`nettrain.model.backbone.set_trainable`) and recompiles the
model with a fresh optimizer of the same class at ``learning_rate`` for the epochs left: two
``model.fit`` calls, the second from ``initial_epoch=A``. run.json's ``phases`` and the
``fine_tune`` column of history.csv (0 head, 1 fine-tuning) say where each starts. A resume
puts the model in the phase of its checkpoint (:func:`restore_phase`) before loading it, so
the optimizer's variables match, and crosses the boundary as an uninterrupted run does.

While no layer up to the last backbone trains or draws random numbers (no augmentation, no
Dropout before it), each sample's features are the same every epoch: they are computed once
(one pass of the backbone over the training and validation splits) and the head alone trains
on them. The head's layers and the optimizer are the model's own, and the callbacks see the
whole model, so checkpoints, best.keras and the saved model are the whole model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from nettrain.model import backbone as backbones
from nettrain.model.builder import resolve_compiled
from nettrain.run import history

HEAD, FINE_TUNE = "head", history.FINE_TUNE  # the phase, and its column in history.csv
# Each time features are computed (a count the tests read: once a phase, never once an epoch).
computed = {"passes": 0}


@dataclass(frozen=True)
class Phase:
    """Epochs ``start`` (from 0, as Keras counts) up to ``end`` of one phase."""

    name: str
    start: int
    end: int


def plan(config: Any, epochs: int) -> list[Phase]:
    """The phases of a run that trains to ``epochs``: one, or the head's and fine-tuning's.

    Example: ``fine_tune: {after: 2}``, 5 epochs -> ``[head 0-2, fine_tune 2-5]``.
    """
    tune = config.fit.fine_tune
    if tune is None:
        return [Phase("whole", 0, epochs)]
    return [Phase(HEAD, 0, min(tune.after, epochs)), Phase(FINE_TUNE, tune.after,
                                                             max(tune.after, epochs))]


def record(prepared: Any) -> list[dict[str, Any]] | None:
    """run.json's ``phases``: where each starts (its first epoch, from 0 as history.csv's
    ``epoch``) and how it trains; None without ``fit.fine_tune``. Whether BatchNormalization
    keeps its statistics is the built backbones' (:attr:`Backbone.pretrained`)."""
    tune = prepared.config.fit.fine_tune
    if tune is None:
        return None
    pretrained = any(wrapper._nettrain_backbone.pretrained  # noqa: SLF001
                     for wrapper in backbones.find(prepared.model))
    return [{"phase": HEAD, "first_epoch": 0, "backbone": "frozen"},
            {"phase": FINE_TUNE, "first_epoch": tune.after, "unfreeze": tune.unfreeze,
             "learning_rate": tune.learning_rate, "batch_normalization":
             "inference mode" if pretrained else "trains (weights: null, no statistics)"}]


def column(config: Any) -> Callable[[int], dict[str, float]] | None:
    """history.csv's ``fine_tune`` column for epoch ``epoch``: 0 head, 1 fine-tuning."""
    tune = config.fit.fine_tune
    if tune is None:
        return None
    return lambda epoch: {FINE_TUNE: float(epoch >= tune.after)}


def fine_tune(prepared: Any) -> None:
    """Enter the fine-tuning phase: unfreeze the backbones' top layers (BatchNormalization
    kept in inference mode) and recompile with a fresh optimizer at the lower rate."""
    config, model = prepared.config, prepared.model
    tune = config.fit.fine_tune
    for wrapper in backbones.find(model):
        backbones.set_trainable(wrapper, tune.unfreeze)
    was = model.optimizer
    optimizer = type(was).from_config({**was.get_config(),
                                       "learning_rate": tune.learning_rate})
    kwargs = resolve_compiled(config).kwargs(config, prepared.data.size("train"))
    model.compile(**{**kwargs, "optimizer": optimizer})


def restore_phase(prepared: Any, done: int) -> None:
    """Before a checkpoint of ``done`` epochs is loaded: the model in that epoch's phase (a
    checkpoint after the boundary holds the fine-tuning optimizer's variables)."""
    tune = prepared.config.fit.fine_tune
    if tune is not None and done > tune.after:
        fine_tune(prepared)


def train(prepared: Any, path: Any, kwargs: dict[str, Any],
          arguments: Callable[[Any, int], tuple], fit_once: Callable[[Any, dict, dict], None]) \
        -> None:
    """Run ``model.fit`` (through ``fit_once``) for each phase with epochs left.

    Args:
        prepared: the run's Prepared (config, data, model); a resume restored it already.
        path: the run directory (its run.json gets ``phases``).
        kwargs: fit's arguments for the whole training (callbacks, ``initial_epoch``, the
            ``epochs`` to train to, ...).
        arguments: ``arguments(prepared, first_epoch)`` -> fit's data arguments and fit: keys.
        fit_once: ``fit_once(prepared, args, kwargs)`` runs one ``model.fit``.
    """
    from nettrain.run.record import RunRecord

    recorded = record(prepared)
    if recorded is not None:
        RunRecord(path).annotate(phases=recorded)
    start, end = kwargs["initial_epoch"], kwargs["epochs"]
    left = [p for p in plan(prepared.config, end) if p.end > start and p.start < end]
    if not left:  # nothing to train: Keras still ends the training (EarlyStopping restores)
        args, _ = arguments(prepared, start)
        fit_once(prepared, args, kwargs)
        return
    tuned = start > (prepared.config.fit.fine_tune.after if prepared.config.fit.fine_tune
                     else end)
    for phase in left:
        first = max(start, phase.start)
        if phase.name == FINE_TUNE and not tuned:
            fine_tune(prepared)
            tuned = True
        its = {**kwargs, "initial_epoch": first, "epochs": min(end, phase.end)}
        cached = features(prepared) if phase.name != FINE_TUNE else None
        if cached is not None:
            head, model = cached
            args, on_features = arguments(head, first)  # the pipelines of the features
            its["callbacks"] = [OnModel(kwargs["callbacks"], model)]
            if "validation_data" in its:
                its["validation_data"] = on_features["validation_data"]
            fit_once(head, args, its)
        else:
            args, _ = arguments(prepared, first)
            fit_once(prepared, args, its)
        if prepared.model.stop_training:  # a callback (or a NaN) ended the training
            return


def cacheable(model: Any, data: Any) -> int | None:
    """The index in ``model.layers`` of the last backbone when the features it gives are the
    same every epoch (nothing up to it trains or draws random numbers, the data is arrays in
    memory); else None."""
    found = backbones.find(model)
    x = data.x.get("train")
    if not found or data.stream or not isinstance(x, np.ndarray):
        return None
    last = model.layers.index(found[-1])
    for layer in model.layers[:last + 1]:
        if layer.trainable_weights:
            return None
        if layer not in found and getattr(layer, "_call_has_training_arg", False):
            return None  # Dropout, GaussianNoise, RandomFlip, ...: differs every epoch
    return last


def features(prepared: Any) -> tuple[Any, Any] | None:
    """A Prepared whose model is the head alone and whose training and validation inputs are
    the backbone's features, computed once; and the whole model. None when not cacheable."""
    import keras

    model, data, config = prepared.model, prepared.data, prepared.config
    last = cacheable(model, data)
    if last is None:
        return None
    body = keras.Sequential([keras.Input(shape=model.input_shape[1:]),
                             *model.layers[:last + 1]], name="features")
    head = keras.Sequential([keras.Input(shape=body.output_shape[1:]),
                             *model.layers[last + 1:]], name="head")
    batch = config.fit.validation_batch_size or config.fit.batch_size or 32
    x = dict(data.x)
    for split in ("train", "validation"):
        if split in x:
            x[split] = body.predict(x[split], batch_size=batch, verbose=0)
            computed["passes"] += 1
    kwargs = resolve_compiled(config).kwargs(config, data.size("train"))
    head.compile(**{**kwargs, "optimizer": model.optimizer})  # the same optimizer and state
    return dataclasses.replace(prepared, model=head, data=dataclasses.replace(data, x=x)), \
        model


class OnModel:
    """The run's callbacks as one callback that shows them the whole model while the head
    trains on features: checkpoints, best.keras and EarlyStopping's weights are the whole
    model's (the same variables). A stop they ask for stops the head's fit."""

    def __init__(self, callbacks: list[Any], model: Any) -> None:
        self.callbacks, self.whole, self.fitting = callbacks, model, None
        self.params: dict[str, Any] = {}

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params
        for callback in self.callbacks:
            callback.set_params(params)

    def set_model(self, model: Any) -> None:
        self.fitting = model
        self.whole.stop_training = False
        for callback in self.callbacks:
            callback.set_model(self.whole)

    def _forward(self, hook: str, *args: Any) -> None:
        if hook in ("on_epoch_end", "on_train_end") and hasattr(self.fitting, "jax_state_sync"):
            self.fitting.jax_state_sync()  # JAX keeps the state outside the variables till asked
        for callback in self.callbacks:
            getattr(callback, hook)(*args)
        if self.whole.stop_training:
            self.fitting.stop_training = True


def _hook(name: str) -> Callable[..., None]:
    def forward(self: OnModel, *args: Any, **kwargs: Any) -> None:
        self._forward(name, *args, *kwargs.values())
    forward.__name__ = name
    return forward


for _name in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
              "on_test_batch_begin", "on_test_batch_end", "on_batch_begin", "on_batch_end",
              "on_predict_begin", "on_predict_end", "on_predict_batch_begin",
              "on_predict_batch_end"):
    setattr(OnModel, _name, _hook(_name))
