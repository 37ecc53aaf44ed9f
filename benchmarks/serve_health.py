"""Benchmark: how long `GET /health` takes while big `POST /predict` requests run (issue 24:
request CPU work on the event loop made /health wait for it).

Starts `python -m nettrain serve RUN` (the nettrain of --pythonpath, default this checkout),
times --probes /health calls alone, then again while --clients processes each post
--rows-row `/predict` JSON bodies back to back (http.client, one kept-alive connection each,
answers read but not parsed), and prints the median and max of each, and the /predict
requests done. Trains configs/renewals_categorical.yaml (1 epoch) unless --run names a run.

    python benchmarks/serve_health.py --run RUN --rows 1400 --clients 2 --probes 200
    python benchmarks/serve_health.py --run RUN --pythonpath /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CSV = REPO / "configs" / "data" / "renewals.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_forever(port: int, body: bytes, done: multiprocessing.Value) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while True:
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200, answer.status
        with done.get_lock():
            done.value += 1


def _probe(port: int, probes: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    for _ in range(probes):
        start = time.perf_counter()
        connection.request("GET", "/health")
        connection.getresponse().read()
        times.append(1000 * (time.perf_counter() - start))
        time.sleep(0.02)
    return times


def _figures(times: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def wait_up(port: int) -> None:
    """Until the server on ``port`` answers (two minutes at most)."""
    for _ in range(600):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/")
            return
        except OSError:
            time.sleep(0.2)


def renewals(run: Path | None, pythonpath: Path, prefix: str) -> tuple[Path, dict, Path, list]:
    """A scratch folder, the servers' environment (``pythonpath``'s nettrain), the renewals
    run to serve (``run``, else one trained now for an epoch) and the CSV's rows to send."""
    import pandas as pd

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "NETTRAIN_RUNS": str(folder / "runs")}
    if run is None:
        run = folder / "run"
        subprocess.run([sys.executable, "-m", "nettrain", "fit",
                        str(REPO / "configs" / "renewals_categorical.yaml"), "fit.epochs=1",
                        "--run-dir", str(run), "--quiet"], env=env, cwd=pythonpath,
                       check=True, stdout=subprocess.DEVNULL)
    records = pd.read_csv(CSV, dtype={"plan": str, "region": str}) \
        .drop(columns=["renewed"]).to_dict("records")
    return folder, env, run, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a trained renewals run")
    parser.add_argument("--rows", type=int, default=1400, help="rows per /predict request")
    parser.add_argument("--clients", type=int, default=2, help="processes posting /predict")
    parser.add_argument("--probes", type=int, default=200, help="/health calls per phase")
    parser.add_argument("--pythonpath", type=Path, default=REPO,
                        help="the checkout whose nettrain serves")
    args = parser.parse_args()
    folder, env, run, records = renewals(args.run, args.pythonpath, "nettrain-serve-health-")
    body = json.dumps({"rows": [records[i % len(records)] for i in range(args.rows)]}).encode()
    port = _free_port()
    # cwd: `python -m` puts the working directory before PYTHONPATH
    server = subprocess.Popen([sys.executable, "-m", "nettrain", "serve", str(run), "--port",
                               str(port), "--grpc-port", "0"], env=env, cwd=args.pythonpath)
    try:
        wait_up(port)
        alone = _probe(port, args.probes)
        done = multiprocessing.Value("i", 0)
        loaders = [multiprocessing.Process(target=_post_forever, args=(port, body, done),
                                           daemon=True) for _ in range(args.clients)]
        for p in loaders:
            p.start()
        while done.value < args.clients:  # every loader has had an answer: the load is on
            time.sleep(0.05)
        start, before = time.perf_counter(), done.value
        loaded = _probe(port, args.probes)
        seconds, requests = time.perf_counter() - start, done.value - before
        for p in loaders:
            p.kill()
    finally:
        server.terminate()
        server.wait(60)
    print(json.dumps({"pythonpath": str(args.pythonpath), "rows": args.rows,
                      "clients": args.clients, "health_alone": _figures(alone),
                      "health_under_load": _figures(loaded),
                      "predict_per_second": round(requests / seconds, 1)}))


if __name__ == "__main__":
    main()
