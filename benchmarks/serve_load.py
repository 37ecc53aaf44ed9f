"""Benchmark: `nettrain serve` under load on loopback, against `model.predict` in-process.

Trains a small tabular classifier with string categories (configs/renewals_categorical.yaml,
2 epochs) unless --run names one, starts `python -m nettrain serve RUN` as a child process,
and drives it with a bounded asyncio client (httpx, one connection per client) at each
--clients level: --requests requests of --rows rows each, TF Serving's row format
(`POST /v1/models/NAME:predict` with `instances`), or nettrain's `/predict` with --route rows.
For each level it records requests/s, rows/s, p50/p99 latency, failed requests (any answer but
200, or no answer) and the server's RSS before and after. Between levels, in a child process of
its own, a plain script loads the same model.keras and times `model.predict` on the same rows
(a tf.data pipeline of batches of 1,024, the best of 3): the in-process rows/s the server is compared with. The
sides alternate: plain, serve at 1, plain, serve at 8, ...

    python benchmarks/serve_load.py --clients 1 8 64 --requests 5000 --out benchmarks/results/serve_load.json

With --plain (issue 27), the other side is a plain FastAPI + model.predict server of the same
model.keras (benchmarks/serve_plain.py), driven by the same client with the same bodies for
--seconds a side, the sides alternating for --pairs pairs at each level; each side's rows/s
and its server's CPU seconds a request are recorded, and the ratio of the rows/s:

    python benchmarks/serve_load.py --plain predict --client raw --clients 64 --seconds 10 --pairs 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, write_record

REPO = Path(__file__).resolve().parents[1]
CSV = REPO / "configs" / "data" / "renewals.csv"

PLAIN = """\
import json, sys, time
import pandas as pd, keras, tensorflow as tf
model = keras.saving.load_model(sys.argv[1] + "/model.keras")
frame = pd.read_csv(sys.argv[2], dtype={"plan": str, "region": str})
x = {"plan": frame[["plan"]].to_numpy(object), "region": frame[["region"]].to_numpy(object),
     "seats": frame[["seats"]].to_numpy("int64"), "months": frame[["months"]].to_numpy("float32"),
     "support_tickets": frame[["support_tickets"]].to_numpy("float32")}
x = tf.data.Dataset.from_tensor_slices(x).batch(1024)  # Keras takes string arrays this way
model.predict(x, verbose=0)  # traced once, as the server's warm-up
times = []
for _ in range(3):
    start = time.perf_counter()
    model.predict(x, verbose=0)
    times.append(time.perf_counter() - start)
best = min(times)
print(json.dumps({"rows": len(frame), "seconds": best}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rows(n: int) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(CSV, dtype={"plan": str, "region": str}).drop(columns=["renewed"])
    records = frame.to_dict("records")
    return [records[i % len(records)] for i in range(n)]


def _until(count: int, seconds: float | None) -> Any:
    """The indices of the bodies to send: all of them, or (``seconds``) those begun before
    the deadline, cycling through the bodies."""
    import itertools

    if seconds is None:
        yield from range(count)
        return
    deadline = time.perf_counter() + seconds
    for i in itertools.cycle(range(count)):
        if time.perf_counter() > deadline:
            return
        yield i


async def _load(url: str, bodies: list[bytes], clients: int, kind: str = "httpx",
                seconds: float | None = None) -> dict:
    latencies: list[float] = []
    failed, why = 0, {}
    next_body = _until(len(bodies), seconds)
    if kind == "raw":
        return await _load_raw(url, bodies, clients, seconds)
    import httpx

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failed
        for i in next_body:
            start = time.perf_counter()
            try:
                response = await http.post(url, content=bodies[i],
                                           headers={"Content-Type": "application/json"})
                problem = None if response.status_code == 200 else \
                    f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__} {exc}"[:200]
            latencies.append(time.perf_counter() - start)
            if problem:
                failed += 1
                why[problem] = why.get(problem, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return _summary(len(latencies), failed, why, wall, latencies)


def _summary(requests: int, failed: int, why: dict, wall: float, latencies: list) -> dict:
    """One load level's figures: requests/s, p50 and p99 latency, what failed and why."""
    latencies = sorted(latencies)
    return {"requests": requests, "failed": failed, "failures": why,
            "seconds": round(wall, 2), "requests_per_second": round(requests / wall, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)}


async def _load_raw(url: str, bodies: list[bytes], clients: int,
                    seconds: float | None = None) -> dict:
    """As :func:`_load`, with a client that costs far less CPU a request than httpx (about
    0.1 ms against 2-5 ms on the shared machine, where the client and the server share 2
    cores): HTTP/1.1 written by hand on one keep-alive connection per client."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    failed, why = 0, {}
    next_body = _until(len(bodies), seconds)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()

    async def client() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in next_body:
                start = time.perf_counter()
                problem = None
                try:
                    writer.write(head + str(len(bodies[i])).encode() + b"\r\n\r\n" + bodies[i])
                    status = await reader.readuntil(b"\r\n")
                    headers = await reader.readuntil(b"\r\n\r\n")
                    length = next(int(line.split(b":", 1)[1]) for line in headers.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    answer = await reader.readexactly(length)
                    if status.split()[1] != b"200":
                        problem = f"{status.split()[1].decode()} {answer[:200]!r}"
                except (OSError, asyncio.IncompleteReadError, StopIteration) as exc:
                    problem = f"{type(exc).__name__} {exc}"[:200]
                latencies.append(time.perf_counter() - start)
                if problem:
                    failed += 1
                    why[problem] = why.get(problem, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    return _summary(len(latencies), failed, why, wall, latencies)


def _side(url: str, bodies: list[bytes], clients: int, kind: str, pid: int,
          seconds: float | None) -> dict:
    """One load on the server ``pid`` at ``url``: its figures, with the server's CPU."""
    cpu, mine = _cpu_seconds(pid), time.process_time()
    result = asyncio.run(_load(url, bodies, clients, kind, seconds))
    result["server_cpu_ms_per_request"] = round(
        1000 * (_cpu_seconds(pid) - cpu) / max(result["requests"], 1), 2)
    result["server_cpu_seconds"] = round(_cpu_seconds(pid) - cpu, 2)
    result["client_cpu_ms_per_request"] = round(
        1000 * (time.process_time() - mine) / max(result["requests"], 1), 2)
    return result


def _against_plain(args: argparse.Namespace, url: str, bodies: list[bytes], server: Any,
                   run: Path, env: dict) -> tuple[dict, dict]:
    """Issue 27's comparison: nettrain serve and a plain FastAPI + model.predict server of
    the same model (serve_plain.py, started here), --seconds a side, alternating, --pairs
    pairs a level (the first side of each pair alternating too)."""
    import httpx

    port = _free_port()
    plain = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "serve_plain.py"),
                              str(run), "--port", str(port), "--call", args.plain],
                             env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        sides = {"nettrain": (url, server.pid),
                 "plain": (f"http://127.0.0.1:{port}/v1/models/renewals:predict", plain.pid)}
        for name, (where, pid) in sides.items():  # a warm-up each: first calls trace
            _side(where, bodies, 4, args.client, pid, 1.0)
        levels = {}
        for clients in args.clients:
            runs: dict[str, list] = {"nettrain": [], "plain": []}
            for pair in range(args.pairs):
                order = ["plain", "nettrain"] if pair % 2 == 0 else ["nettrain", "plain"]
                for name in order:
                    where, pid = sides[name]
                    result = _side(where, bodies, clients, args.client, pid, args.seconds)
                    result["rows_per_second"] = round(result["requests_per_second"] * args.rows)
                    runs[name].append(result)
                    print(clients, name, result, flush=True)
            best = {n: max(r["rows_per_second"] for r in rs) for n, rs in runs.items()}
            levels[str(clients)] = {
                "runs": runs, "rows_per_second": best,
                "ratio": round(best["nettrain"] / max(best["plain"], 1e-9), 1),
                "ratios_by_pair": [
                    round(n["rows_per_second"] / max(p["rows_per_second"], 1e-9), 1)
                    for n, p in zip(runs["nettrain"], runs["plain"], strict=True)],
                "server_cpu_ms_per_request": {
                    n: min(r["server_cpu_ms_per_request"] for r in rs) for n, rs in runs.items()}}
        return levels, {"plain_rss_mib": round(_rss_mib(plain.pid), 1)}
    finally:
        plain.terminate()
        plain.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, default=5000, help="requests per level")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--route", choices=["tf", "rows"], default="tf")
    parser.add_argument("--run", type=Path, default=None, help="a trained renewals run")
    parser.add_argument("--serve-args", default="", help="more options of nettrain serve")
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                        help="httpx (a real client, 2-5 CPU ms a request) or raw (HTTP/1.1 "
                             "by hand, about 0.1 ms: the server's cost shows)")
    parser.add_argument("--plain", choices=["predict", "predict_on_batch"], default=None,
                        help="compare with benchmarks/serve_plain.py (FastAPI + this Keras "
                             "call) instead of model.predict in-process")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="with --plain: seconds of load a side")
    parser.add_argument("--pairs", type=int, default=2, help="with --plain: pairs a level")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load_start = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="nettrain-serve-bench-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETTRAIN_RUNS": str(folder / "runs")}
    run = args.run
    if run is None:
        run = folder / "run"
        subprocess.run([sys.executable, "-m", "nettrain", "fit",
                        str(REPO / "configs" / "renewals_categorical.yaml"), "fit.epochs=2",
                        "--run-dir", str(run), "--quiet"], env=env, cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    rows = _rows(args.requests * args.rows)
    import pandas as pd

    pd.DataFrame(rows).to_csv(folder / "rows.csv", index=False)
    key = "instances" if args.route == "tf" else "rows"
    bodies = [json.dumps({key: rows[i:i + args.rows]}).encode()
              for i in range(0, len(rows), args.rows)]
    port = _free_port()
    # cwd=REPO: `python -m` puts the working directory before PYTHONPATH, so started from
    # another checkout the server would be that checkout's nettrain.
    server = subprocess.Popen([sys.executable, "-m", "nettrain", "serve", str(run), "--port",
                               str(port), "--grpc-port", "0", *args.serve_args.split()],
                              env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    extra: dict = {}
    try:
        import httpx

        for _ in range(600):
            try:
                name = httpx.get(f"{base}/health").json()["model"]
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        url = f"{base}/v1/models/{name}:predict" if args.route == "tf" else f"{base}/predict"
        if args.plain:
            levels, extra = _against_plain(args, url, bodies, server, run, env)
            extra["nettrain_rss_mib"] = round(_rss_mib(server.pid), 1)
        else:
            levels = _levels(args, url, bodies, server, run, folder, env, base)
    finally:
        server.terminate()
        server.wait(60)
    if args.plain:
        work = (f"renewals_categorical (5 columns, 3 of them categories): nettrain serve "
                f"against a plain FastAPI + model.{args.plain} server of the same model.keras "
                f"(benchmarks/serve_plain.py), REST, {args.rows} row(s) a request, client "
                f"{args.client}, {args.seconds:g} s a side, {args.pairs} pair(s) a level, "
                "alternating; rows/s: the best of each side")
    else:
        work = (f"renewals_categorical (5 columns, 3 of them categories) served over REST, "
                f"route {args.route}, {args.rows} row(s) a request, {args.requests} requests "
                f"per level, client {args.client}; model.predict: the same rows in-process, "
                "batch 1,024")
    record = {
        "benchmark": "serve_plain" if args.plain else "serve_load",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "work": work,
        "machine": {**machine(), "load_average_start": load_start,
                    "load_average_end": os.getloadavg()},
        "levels": levels, **extra,
    }
    write_record(record, args.out)


def _levels(args: argparse.Namespace, url: str, bodies: list[bytes], server: Any, run: Path,
            folder: Path, env: dict, base: str) -> dict:
    """Issue 18's levels: serve at each --clients level, model.predict in-process between."""
    import httpx

    levels = {}
    for clients in args.clients:
        plain = subprocess.run([sys.executable, "-c", PLAIN, str(run),
                                str(folder / "rows.csv")], env=env, capture_output=True,
                               text=True, check=True)
        predict = json.loads(plain.stdout.strip().splitlines()[-1])
        before, calls = _rss_mib(server.pid), httpx.get(f"{base}/health").json()
        result = _side(url, bodies, clients, args.client, server.pid, None)
        after = httpx.get(f"{base}/health").json()
        result["rows_per_model_call"] = round(
            (after["rows_predicted"] - calls["rows_predicted"]) /
            max(after["model_calls"] - calls["model_calls"], 1), 1)
        result.update(rows_per_second=round(result["requests_per_second"] * args.rows),
                      rss_mib_before=round(before, 1),
                      rss_mib_after=round(_rss_mib(server.pid), 1),
                      model_predict_rows_per_second=round(predict["rows"] /
                                                          predict["seconds"]))
        result["ratio_to_model_predict"] = round(
            result["rows_per_second"] / result["model_predict_rows_per_second"], 4)
        levels[str(clients)] = result
        print(clients, result, flush=True)
    return levels


if __name__ == "__main__":
    main()
