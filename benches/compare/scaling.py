#!/usr/bin/env python3
"""Thread scaling of our runtime: 2 threads against 1 on one large batch, interleaved.

    $MLE_BENCH_VENV/bin/python benches/compare/scaling.py [--rows 1000000] [--reps 7]
        [--models rf,xgb_d6,...] [--train-rows 200000]

Uses the models of ``benches/compare/run.py`` (trained and cached there, same seeds and data).
Each repetition times one call with 1 thread and one with 2, in alternating order, so that a
burst of noise on this shared machine hits both; the figure is the median over repetitions.
Two paths are timed: ``predict_proba`` from Python (``predict`` for the MLP: input checks,
the outputs handed to NumPy) and ``Runtime.benchmark`` (the Rust loop over
``Session::predict_batch``, no Python in the timing).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the harness next to this file)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", default=",".join(run.MODELS))
    args = ap.parse_args()
    data = {}
    print(f"rows {args.rows:,}, {args.reps} interleaved repetitions, median rows/s")
    print("| model | Python 1 thr | Python 2 thr | ratio | Rust 1 thr | Rust 2 thr | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="mle-scaling-") as tmp:
        for key in [m for m in args.models.split(",") if m]:
            label, kind = run.MODELS[key]
            if kind not in data:
                data[kind] = run.make_data(args.rows, kind)
            X, y = data[kind]
            n = min(args.train_rows, len(X))
            model = run.load_or_train(key, X[:n], y[:n], n)
            ours = run.ours_runtime(key, model, X, pathlib.Path(tmp))
            import mle_runtime

            rt = mle_runtime.load_model(str(pathlib.Path(tmp) / f"{key}.mle"))
            py = {1: [], 2: []}
            rs = {1: [], 2: []}
            for rep in range(args.reps):
                for t in (1, 2) if rep % 2 == 0 else (2, 1):
                    s = time.perf_counter()
                    ours.fn(t)(X)
                    py[t].append(len(X) / (time.perf_counter() - s))
                    b = rt.benchmark(X, num_runs=1, warmup=0, threads=t)
                    rs[t].append(b["throughput_rows_per_s"])
            p1, p2 = statistics.median(py[1]), statistics.median(py[2])
            r1, r2 = statistics.median(rs[1]), statistics.median(rs[2])
            f = run.fmt_rate
            print(
                f"| {label} | {f(p1)} | {f(p2)} | {p2 / p1:.2f} | {f(r1)} | {f(r2)} "
                f"| {r2 / r1:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
