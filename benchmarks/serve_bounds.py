"""Benchmark: what a hostile request costs the server (issue 31): a gRPC PredictRequest of a
few hundred bytes whose TensorProtos declare --declared rows and carry one value each (it was
filled to 5 GB), and a REST request of --rows rows (--max-rows' default), each while /health
is probed.

Starts `python -m nettrain serve RUN` (the nettrain of --pythonpath, default this checkout)
and prints, for each request: its status, seconds, the server's peak RSS (VmHWM) before and
after, and the slowest /health answer meanwhile. Trains configs/renewals_categorical.yaml
(1 epoch) unless --run names a run.

    python benchmarks/serve_bounds.py --run RUN --declared 6000000 --rows 10000
    python benchmarks/serve_bounds.py --run RUN --pythonpath /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from serve_health import _free_port, renewals, wait_up  # noqa: E402


def _memory(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    kib = {line.split(":")[0]: int(line.split()[1]) for line in status
           if line.startswith(("VmHWM", "VmRSS"))}
    return {"peak_rss_mib": round(kib["VmHWM"] / 1024, 1),
            "rss_mib": round(kib["VmRSS"] / 1024, 1)}


def _while_probed(port: int, pid: int, ask) -> dict:
    """``ask()`` (-> a status) timed, with /health probed meanwhile, and the memory around."""
    before, slowest, done = _memory(pid), [0.0], threading.Event()

    def probe() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while not done.is_set():
            start = time.perf_counter()
            connection.request("GET", "/health")
            connection.getresponse().read()
            slowest[0] = max(slowest[0], time.perf_counter() - start)
            time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    start = time.perf_counter()
    status = ask()
    seconds = time.perf_counter() - start
    done.set()
    prober.join(120)
    return {"status": status, "seconds": round(seconds, 3), "before": before,
            "after": _memory(pid), "slowest_health_ms": round(1000 * slowest[0], 1)}


def _grpc_declared(target: str, rows: int) -> tuple[int, str]:
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "renewals"
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=rows),
             tensor_shape_pb2.TensorShapeProto.Dim(size=1)])
    for name, dtype, values in (("plan", "DT_STRING", {"string_val": [b"basic"]}),
                                ("region", "DT_STRING", {"string_val": [b"west"]}),
                                ("seats", "DT_INT64", {"int64_val": [5]}),
                                ("months", "DT_FLOAT", {"float_val": [12.0]}),
                                ("support_tickets", "DT_FLOAT", {"float_val": [0.0]})):
        request.inputs[name].CopyFrom(tensor_pb2.TensorProto(
            dtype=types_pb2.DataType.Value(dtype), tensor_shape=shape, **values))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    try:
        stub.Predict(request, 600)
        return request.ByteSize(), "OK"
    except grpc.RpcError as exc:
        return request.ByteSize(), exc.code().name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a trained renewals run")
    parser.add_argument("--declared", type=int, default=6_000_000,
                        help="rows each TensorProto declares (carrying one value)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the REST request")
    parser.add_argument("--pythonpath", type=Path, default=REPO,
                        help="the checkout whose nettrain serves")
    args = parser.parse_args()
    import tensorflow_serving.apis.prediction_service_pb2_grpc  # noqa: F401  (not timed)

    folder, env, run, records = renewals(args.run, args.pythonpath, "nettrain-serve-bounds-")
    body = json.dumps({"instances": [records[i % len(records)]
                                     for i in range(args.rows)]}).encode()
    port, grpc_port = _free_port(), _free_port()
    server = subprocess.Popen([sys.executable, "-m", "nettrain", "serve", str(run), "--port",
                               str(port), "--grpc-port", str(grpc_port), "--model-name",
                               "renewals"], env=env, cwd=args.pythonpath)
    try:
        wait_up(port)
        sizes: list[int] = []

        def declared() -> str:
            size, status = _grpc_declared(f"127.0.0.1:{grpc_port}", args.declared)
            sizes.append(size)
            return status

        def rest() -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            connection.request("POST", "/v1/models/renewals:predict", body,
                               {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            return answer.status

        grpc_figures = _while_probed(port, server.pid, declared)
        rest_figures = _while_probed(port, server.pid, rest)
    finally:
        server.terminate()
        server.wait(60)
    print(json.dumps({"pythonpath": str(args.pythonpath),
                      "grpc_declared": {"rows": args.declared, "request_bytes": sizes[0],
                                        **grpc_figures},
                      "rest_rows": {"rows": args.rows, "body_bytes": len(body),
                                    **rest_figures}}, indent=1))


if __name__ == "__main__":
    main()
