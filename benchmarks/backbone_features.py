"""A frozen keras.applications backbone: its features computed once (nettrain's default) against
the backbone run every epoch, each a whole ``nettrain fit`` process, alternating in one run.

The other side is the same config with a ``Dropout: {rate: 0.0}`` before the backbone: it
changes no number, but a layer that may draw random numbers before the backbone makes the
features differ from epoch to epoch as far as nettrain can tell, so the backbone runs every
epoch (see nettrain.engine.phases.cacheable). Both sides train the same model on the same data.

    python benchmarks/backbone_features.py --pairs 2 --epochs 8 --out benchmarks/results/backbone_features.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from common import machine, run_timed, write_record

REPO = Path(__file__).resolve().parent.parent


def config(epochs: int, every_epoch: bool) -> dict:
    with open(REPO / "configs" / "digits_backbone.yaml") as f:
        cfg = yaml.safe_load(f)
    del cfg["fit"]["fine_tune"]  # the frozen backbone throughout
    cfg["fit"].update(epochs=epochs, verbose=0)
    cfg["save"] = {"formats": ["keras"]}
    if every_epoch:
        cfg["model"]["layers"].insert(0, {"Dropout": {"rate": 0.0}})
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs: dict[str, list[dict]] = {"once": [], "every_epoch": []}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            order = ("once", "every_epoch") if pair % 2 == 0 else ("every_epoch", "once")
            for side in order:
                path = Path(tmp) / f"{side}.yaml"
                path.write_text(yaml.safe_dump(config(args.epochs, side == "every_epoch")))
                timed = run_timed([sys.executable, "-m", "nettrain", "fit", str(path),
                                   "--run-dir", str(Path(tmp) / f"{side}-{pair}")],
                                  env=env, cwd=tmp)
                assert timed["rc"] == 0, timed
                runs[side].append(timed)
                load.append(os.getloadavg()[0])
                print(side, timed, file=sys.stderr)
    best = {side: min(r["seconds"] for r in rs) for side, rs in runs.items()}
    cpu = {side: min(r["cpu_seconds"] for r in rs) for side, rs in runs.items()}
    write_record({
        "benchmark": "backbone_features", "at": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                              time.gmtime()),
        "job": f"configs/digits_backbone.yaml, frozen MobileNetV3Small, {args.epochs} epochs, "
               "whole nettrain fit processes",
        "runs": runs, "best_seconds": best, "best_cpu_seconds": cpu,
        "speedup_wall": round(best["every_epoch"] / best["once"], 2),
        "speedup_cpu": round(cpu["every_epoch"] / cpu["once"], 2),
        "load_average": [round(v, 1) for v in load], "machine": machine()}, args.out)


if __name__ == "__main__":
    main()
