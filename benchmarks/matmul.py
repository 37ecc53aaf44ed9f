"""The peak float32 GEMM rate of this machine on the seed MNIST MLP's shapes, as JSON.

    python benchmarks/matmul.py full    # (small: tiny sizes, for the tests)

Each GEMM of one training step of the 784-500-10 MLP (forward, the weight gradients, the
hidden layer's input gradient) at 128 rows and at 8,192, and a 2048-cube, timed in NumPy
(its BLAS) and in JAX (XLA, as Keras on JAX runs them), each in a compiled loop over
distinct inputs so nothing is hoisted and no Python runs between them; the best of 5. The
peak is the best rate of all: no training step can run its GEMMs faster, so
``peak / FLOPs per sample`` bounds the samples/s from above.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def shapes(batch: int) -> list[tuple[str, int, int, int]]:
    """(name, m, k, n) of the GEMMs of one step at ``batch`` rows."""
    return [("forward 1", batch, 784, 500), ("forward 2", batch, 500, 10),
            ("grad W2", 500, batch, 10), ("grad h", batch, 10, 500),
            ("grad W1", 784, batch, 500)]


def rate_numpy(m: int, k: int, n: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    repeat = max(1, int(seconds * 100e9 / (2 * m * k * n)))
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            np.matmul(a, b, out=out)
        best = max(best, 2 * m * k * n * repeat / (time.perf_counter() - start))
    return best


def rate_jax(m: int, k: int, n: int, seconds: float) -> float:
    import jax
    import jax.numpy as jnp

    repeat = max(2, min(256, int(seconds * 100e9 / (2 * m * k * n))))
    xs = jax.random.normal(jax.random.key(0), (repeat, m, k), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32)

    @jax.jit
    def run(xs: jax.Array, b: jax.Array) -> jax.Array:
        return jax.lax.scan(lambda c, x: (c + (x @ b)[0, 0], None), 0.0, xs)[0]

    run(xs, b).block_until_ready()
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        run(xs, b).block_until_ready()
        best = max(best, 2 * m * k * n * repeat / (time.perf_counter() - start))
    return best


def main(size: str) -> dict:
    seconds = 0.3 if size == "full" else 0.01
    rows = {}
    cases = [*shapes(128), *[(f"{name} (8192 rows)", m, k, n) for name, m, k, n in shapes(8192)
                             if name in ("forward 1", "grad W1")],
             ("2048 cube", 2048, 2048, 2048)]
    if size != "full":  # one shape of a step and a cube; a 2048-cube cost 5 CPU seconds here
        cases = [cases[0], ("256 cube", 256, 256, 256)]
    for name, m, k, n in cases:
        rows[name] = {"shape": f"{m}x{k} @ {k}x{n}",
                      "numpy_gflops": round(rate_numpy(m, k, n, seconds) / 1e9, 1),
                      "jax_gflops": round(rate_jax(m, k, n, seconds) / 1e9, 1)}
    best = max(max(r["numpy_gflops"], r["jax_gflops"]) for r in rows.values())
    batch = [r for name, r in rows.items() if "8192" not in name and "cube" not in name]
    # the step at batch 128 at each GEMM's own best rate (its time is the sum of theirs)
    flops = {name: 2 * m * k * n for name, m, k, n in shapes(128)}
    step = sum(flops[name] / (max(r["numpy_gflops"], r["jax_gflops"]) * 1e9)
               for name, r in zip(flops, batch)) if len(batch) == len(flops) else None
    return {"gflops": best, "shape": "the best of every shape below",
            "gflops_batch_128": round(sum(flops.values()) / step / 1e9, 1) if step else best,
            "shape_batch_128": "the GEMMs of one step at 128 rows, each at its best rate",
            "shapes": rows, "threads": "NumPy's BLAS and XLA's defaults (all cores)"}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "full")))
