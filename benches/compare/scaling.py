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

Two columns say what the machine gave during the model's repetitions: ``machine`` is the
median, over the same repetitions, of what two processes spinning on pure arithmetic get done
against one (2.00 when both cores are fully ours); ``steal`` is the share of CPU time the
hypervisor gave to other guests while our 2-thread runs ran (``/proc/stat``, Linux only).
"""

from __future__ import annotations

import argparse
import multiprocessing
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the harness next to this file)

SPIN_S = 0.25


def spin(start: float, end: float) -> int:
    """Pure arithmetic from ``start`` to ``end`` (``time.monotonic``, one clock for all
    processes); returns the iterations done in that window (the machine control)."""
    while time.monotonic() < start:
        pass
    n, x = 0, 1
    while time.monotonic() < end:
        for _ in range(1000):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        n += 1000
    return n


def machine(pool) -> float:
    """Work done by two processes spinning in the same window over the work of one."""

    def window() -> tuple[float, float]:
        # Starts a little later, so that both workers have their task when it opens.
        start = time.monotonic() + 0.05
        return start, start + SPIN_S

    one = pool.apply(spin, window())
    two = sum(pool.starmap(spin, [window()] * 2, chunksize=1))
    return two / one


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest times are inside user/nice)
    return (v[7], sum(v[:8])) if len(v) >= 8 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--train-rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", default=",".join(run.MODELS))
    args = ap.parse_args()
    data = {}
    print(f"rows {args.rows:,}, {args.reps} interleaved repetitions, median rows/s")
    print(
        "| model | Python 1 thr | Python 2 thr | ratio | Rust 1 thr | Rust 2 thr | ratio "
        "| machine | steal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    # Forked before any model runs: the workers only spin.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool, tempfile.TemporaryDirectory(prefix="mle-scaling-") as tmp:
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
            ctl = []
            steal, total = 0, 0
            for rep in range(args.reps):
                ctl.append(machine(pool))
                for t in (1, 2) if rep % 2 == 0 else (2, 1):
                    before = cpu_ticks()
                    s = time.perf_counter()
                    ours.fn(t)(X)
                    py[t].append(len(X) / (time.perf_counter() - s))
                    b = rt.benchmark(X, num_runs=1, warmup=0, threads=t)
                    rs[t].append(b["throughput_rows_per_s"])
                    after = cpu_ticks()
                    if t == 2 and before and after:
                        steal += after[0] - before[0]
                        total += after[1] - before[1]
            p1, p2 = statistics.median(py[1]), statistics.median(py[2])
            r1, r2 = statistics.median(rs[1]), statistics.median(rs[2])
            f = run.fmt_rate
            st = f"{100 * steal / total:.0f} %" if total else "n/a"
            print(
                f"| {label} | {f(p1)} | {f(p2)} | {p2 / p1:.2f} | {f(r1)} | {f(r2)} "
                f"| {r2 / r1:.2f} | {statistics.median(ctl):.2f} | {st} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
