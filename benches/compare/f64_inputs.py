"""f32 against f64 inputs on mid-size leaf-wise tree models (issue 20), one thread.

    python benches/compare/f64_inputs.py [--rows 100000] [--batch 10000] [--repeat 7]

Trains on ``make_classification`` (40 float features) with fixed seeds:

- LightGBM 200 rounds, 127 leaves (leaf-wise, thresholds in f64: our ``fast-f64`` kernel);
- XGBoost 200 rounds, ``grow_policy="lossguide"``, 127 leaves, depth 0 (no limit);
- LightGBM 100 rounds, 63 leaves.

Exports each with ``mle_runtime`` and times ``rt.predict_proba(x, threads=1)`` on the same
batch as float32 and as float64, against the framework's own predict (one thread, the dtype
it takes best). Before timing, our f32 and f64 results are checked equal to each other where
the values are f32 (the f64 batch is the f32 batch widened), and to the framework within
1e-6. Each figure is the median of ``--repeat`` runs after one warm-up; rows/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import lightgbm as lgb  # noqa: E402
import mle_runtime as mle  # noqa: E402
import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402

N_FEATURES = 40


def median_s(f, repeat):
    f()
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return sorted(t)[len(t) // 2]


def models(X, y):
    yield "LightGBM 200 rounds, 127 leaves", lgb.LGBMClassifier(
        n_estimators=200, num_leaves=127, n_jobs=2, random_state=0, verbose=-1
    ).fit(X, y)
    yield "XGBoost 200 rounds, lossguide, 127 leaves", xgb.XGBClassifier(
        n_estimators=200, grow_policy="lossguide", max_leaves=127, max_depth=0,
        tree_method="hist", n_jobs=2, random_state=0,
    ).fit(X, y)
    yield "LightGBM 100 rounds, 63 leaves", lgb.LGBMClassifier(
        n_estimators=100, num_leaves=63, n_jobs=2, random_state=0, verbose=-1
    ).fit(X, y)


def framework(model):
    if isinstance(model, lgb.LGBMClassifier):
        b = model.booster_
        return np.float64, lambda x: b.predict(x, num_threads=1)
    b = model.get_booster()
    b.set_param({"nthread": 1})
    return np.float32, lambda x: b.inplace_predict(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000, help="training rows")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    X, y = make_classification(n_samples=a.rows + a.batch, n_features=N_FEATURES,
                               n_informative=24, n_redundant=6, random_state=0)
    X = X.astype(np.float32)
    xtr, ytr, xb = X[: a.rows], y[: a.rows], X[a.rows:]
    x32 = np.ascontiguousarray(xb, dtype=np.float32)
    x64 = np.ascontiguousarray(xb, dtype=np.float64)
    print(f"batch {a.batch:,}, 1 thread, {platform.processor() or platform.machine()}, "
          f"mle_runtime {mle.__version__}, lightgbm {lgb.__version__}, xgboost {xgb.__version__}")
    print()
    print("| Model | ours f32 | ours f64 | f64 / f32 | framework | ours f64 vs framework |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for label, model in models(xtr, ytr):
            path = os.path.join(d, "m.mle")
            mle.export_model(model, path, sample_input=xtr[:256])
            rt = mle.load_model(path)
            p32 = rt.predict_proba(x32, threads=1)
            p64 = rt.predict_proba(x64, threads=1)
            if not np.array_equal(p32, p64):
                raise SystemExit(f"{label}: f32 and f64 inputs disagree")
            dt, fw = framework(model)
            pf = np.asarray(fw(np.ascontiguousarray(xb, dtype=dt)))
            pf = pf if pf.ndim == 2 else np.column_stack([1 - pf, pf])
            err = float(np.max(np.abs(pf - p64)))
            if err > 1e-6:
                raise SystemExit(f"{label}: max |ours - framework| = {err:.2e}")
            t32 = median_s(lambda rt=rt: rt.predict_proba(x32, threads=1), a.repeat)
            t64 = median_s(lambda rt=rt: rt.predict_proba(x64, threads=1), a.repeat)
            xf = np.ascontiguousarray(xb, dtype=dt)
            tf = median_s(lambda fw=fw, xf=xf: fw(xf), a.repeat)
            r = a.batch
            print(f"| {label} | {r / t32 / 1e6:.3f} M/s | {r / t64 / 1e6:.3f} M/s | "
                  f"{t32 / t64:.2f} | {r / tf / 1e6:.3f} M/s | {tf / t64:.2f}× |")


if __name__ == "__main__":
    main()
