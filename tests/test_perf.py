"""What the speed-ups of issue 9 must not cost: metrics.json's numbers, and memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import tiny_config, write_config
from nettrain.cli import app


def test_metrics_json_equals_keras_evaluate_at_the_training_batch_size(runner, tmp_path):
    # 90/30/30 iris rows in batches of 16: every split ends with a partial batch.
    config = tiny_config(fit={"epochs": 2, "batch_size": 16, "verbose": 0})
    path = write_config(tmp_path / "c.yaml", config)
    result = runner.invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exception is None, result.output
    assert result.exit_code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())

    import keras

    from nettrain.config.load import load_config
    from nettrain.data.loading import load_data
    from nettrain.model.builder import resolve_compiled

    run_config = load_config(tmp_path / "run" / "config.yaml")
    data = load_data(run_config)  # the run's seed: the same split
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    model.compile(**resolve_compiled(run_config).kwargs(run_config))
    assert set(metrics) == {"train", "validation", "test"}
    for split in metrics:
        direct = model.evaluate(data.x[split], data.y[split], batch_size=16, verbose=0,
                                return_dict=True)
        assert metrics[split].keys() == direct.keys()
        for name, value in direct.items():
            assert np.isclose(metrics[split][name], value, rtol=1e-5, atol=1e-6), \
                (split, name, metrics[split][name], value)


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def test_the_pipelines_of_one_array_hold_one_copy_of_it():
    """tf.constant copied a large array twice (one transient), each pipeline of a split held
    its own copy, and each iterator's graph rewrite copied it again."""
    from nettrain.data import pipeline, steps

    small = np.zeros((4, 2), dtype=np.float32)
    for shuffle in (True, False):  # TensorFlow's own start-up memory comes before
        next(iter(pipeline.arrays(small, small, None, 2, shuffle=shuffle)))
    x = np.random.default_rng(0).random((2**19, 64), dtype=np.float32)  # 128 MiB, small rows
    y = np.zeros(len(x), dtype=np.int64)
    before = _rss_mib()
    datasets = [pipeline.arrays(x, y, None, 8, shuffle=shuffle, seed=0,
                                schedule=steps.whole(len(x), 8, endless=endless))
                for shuffle, endless in ((True, True), (False, False), (False, True))]
    batches = [next(iter(ds)) for ds in datasets]
    grown = _rss_mib() - before
    assert grown < 1.4 * x.nbytes / 2**20, f"{grown:.0f} MiB for an array of 128 MiB"
    np.testing.assert_array_equal(batches[1][0].numpy(), x[:8])
    order = pipeline.shuffled(len(x), 0, 0)[:8]
    np.testing.assert_array_equal(batches[0][0].numpy(), x[order])
