"""The baseline `nettrain serve` is measured against (issue 27): a plain FastAPI server of a
trained run's model.keras, written as a user would write one without nettrain: a pydantic
body of TF Serving's row format, the rows made tensors, `model.predict`, the answer as JSON.

    python benchmarks/serve_plain.py RUN --port 8600 [--call predict|predict_on_batch]
    curl -X POST localhost:8600/v1/models/renewals:predict \
      -d '{"instances": [{"plan": "premium", "region": "north", "seats": 5, "months": 12, "support_tickets": 0}]}'

`--call predict_on_batch` is a user who read Keras's docs further (`model.predict` builds a
data pipeline on every call). `benchmarks/serve_load.py --plain` runs it and drives both.
"""

from __future__ import annotations

import argparse

import keras
import tensorflow as tf
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Row(BaseModel):
    plan: str
    region: str
    seats: int
    months: float
    support_tickets: float


class PredictRequest(BaseModel):
    instances: list[Row]


def make_app(run: str, call: str) -> FastAPI:
    model = keras.saving.load_model(f"{run}/model.keras")
    app = FastAPI()

    # a plain def: FastAPI runs it in its thread pool, as its docs advise for blocking work
    @app.post("/v1/models/{name}:predict")
    def predict(name: str, request: PredictRequest) -> dict:
        rows = request.instances
        x = {"plan": tf.constant([[r.plan] for r in rows]),  # Keras takes strings as tensors
             "region": tf.constant([[r.region] for r in rows]),
             "seats": tf.constant([[r.seats] for r in rows], tf.int64),
             "months": tf.constant([[r.months] for r in rows], tf.float32),
             "support_tickets": tf.constant([[r.support_tickets] for r in rows], tf.float32)}
        out = model.predict(x, verbose=0) if call == "predict" else model.predict_on_batch(x)
        return {"predictions": out.tolist()}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": "renewals"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--call", choices=["predict", "predict_on_batch"], default="predict")
    args = parser.parse_args()
    uvicorn.run(make_app(args.run, args.call), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
