#!/usr/bin/env python3
"""The numpy peer of bench/src (OpenBLAS sgemm for matmul, numpy ufuncs for softmax and sums), on the CPU.

Reads {"budget_ms": ..., "min_iters": ..., "cases": [...]} as JSON on stdin; each case is one of
  {"op": "matmul", "M", "N", "K", "transA", "transB"}   op(A)·op(B) in float32; a transposed operand is a strided view
  {"op": "softmax", "rows", "cols"}                      exp(x - max) / sum over the last axis, float32
  {"op": "sum_rows", "rows", "cols"} / {"op": "sum_all", "n"}
and prints {"blas": ..., "threads": ..., "numpy": ..., "results": [{"p50_ms", "min_ms", "cpu_ms", "samples"}]} as JSON
(cpu_ms: CPU time of the process per call, all threads).
Run by bench/src/peers/numpy.ts with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they can slow OpenBLAS here).
"""
import json
import statistics
import sys
import time

import numpy as np


def blas_info():
    try:
        b = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{b.get('name')} {b.get('version')} ({b.get('openblas configuration', '').strip()})"
    except Exception as e:  # older numpy
        return f"unknown ({e})"


def threads_info():
    try:
        from threadpoolctl import threadpool_info

        return [f"{p.get('internal_api')} {p.get('num_threads')} threads" for p in threadpool_info()]
    except ImportError:
        return "threadpoolctl not installed: OpenBLAS default (all cores)"


def make(case, rng):
    f32 = np.float32
    if case["op"] == "matmul":
        M, N, K = case["M"], case["N"], case["K"]
        a = rng.standard_normal((K, M) if case.get("transA") else (M, K)).astype(f32)
        b = rng.standard_normal((N, K) if case.get("transB") else (K, N)).astype(f32)
        a = a.T if case.get("transA") else a
        b = b.T if case.get("transB") else b
        return lambda: a @ b
    if case["op"] == "softmax":
        x = rng.standard_normal((case["rows"], case["cols"])).astype(f32)

        def softmax():
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)

        return softmax
    if case["op"] == "sum_rows":
        x = rng.standard_normal((case["rows"], case["cols"])).astype(f32)
        return lambda: x.sum(axis=-1)
    if case["op"] == "sum_all":
        x = rng.standard_normal(case["n"]).astype(f32)
        return lambda: x.sum()
    raise ValueError(f"numpy_ops.py: unknown op {case['op']!r}")


def time_case(fn, budget_ms, min_iters):
    fn()  # warm-up: page faults, thread pool start
    samples = []
    end = time.perf_counter() + budget_ms / 1000
    c0 = time.process_time()  # CPU time of every thread of this process (OpenBLAS's too)
    while len(samples) < min_iters or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - c0) * 1000 / len(samples)
    return {"p50_ms": statistics.median(samples), "min_ms": min(samples), "cpu_ms": cpu, "samples": len(samples)}


def main():
    spec = json.load(sys.stdin)
    rng = np.random.default_rng(0)
    results = [time_case(make(c, rng), spec.get("budget_ms", 500), spec.get("min_iters", 3)) for c in spec["cases"]]
    print(json.dumps({"numpy": np.__version__, "blas": blas_info(), "threads": threads_info(), "results": results}))


if __name__ == "__main__":
    main()
