#!/usr/bin/env python3
"""Benchmark: the Polars plugin (`mle_runtime.polars.predict`) against the usual way of
scoring in Polars, `map_batches` calling the original framework's `predict`.

    $HOME/.cache/mle-venv/bin/python benches/polars_bench.py [--rows 10000000] [--repeat 3]

Models: an XGBoost regressor, a LightGBM regressor (100 trees each) and a scikit-learn
random-forest classifier, trained on a synthetic regression/classification problem with
20 float32 features. The table is `--rows` rows of those features, in memory. Each way is
timed end to end (`collect`) on the in-memory and the streaming engines, best of
`--repeat`; predictions are checked against each other before timing. Prints a Markdown
table (rows/s and the ratio plugin / map_batches) to paste into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import mle_runtime as mle
import numpy as np
import polars as pl
from mle_runtime.polars import predict

N_FEATURES = 20


def train(kind: str, n_train: int = 20_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train, N_FEATURES)).astype(np.float32)
    y = X[:, 0] * 2 + np.sin(X[:, 1] * 3) + X[:, 2] * X[:, 3] + 0.1 * rng.standard_normal(n_train)
    if kind == "xgboost":
        import xgboost as xgb

        return xgb.XGBRegressor(n_estimators=100, max_depth=6, n_jobs=os.cpu_count()).fit(X, y)
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMRegressor(n_estimators=100, num_leaves=31, verbose=-1).fit(X, y)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=50, max_depth=10, n_jobs=-1, random_state=0).fit(
        X, (y > 0).astype(np.int64)
    )


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run(df: pl.DataFrame, expr: pl.Expr, engine: str) -> pl.DataFrame:
    return df.lazy().select(expr).collect(engine=engine)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="xgboost,lightgbm,sklearn")
    args = ap.parse_args()

    names = [f"f{j}" for j in range(N_FEATURES)]
    rng = np.random.default_rng(1)
    data = rng.standard_normal((args.rows, N_FEATURES)).astype(np.float32)
    df = pl.DataFrame({n: data[:, j] for j, n in enumerate(names)})
    del data
    tmp = tempfile.mkdtemp(prefix="mle_polars_bench_")

    rows = []
    for kind in args.models.split(","):
        model = train(kind)
        path = os.path.join(tmp, f"{kind}.mle")
        mle.export_model(model, path, feature_names=names)
        out_dtype = pl.Int64 if kind == "sklearn" else pl.Float32

        def framework_batch(s: pl.Series, model=model, out_dtype=out_dtype) -> pl.Series:
            X = s.struct.unnest().to_numpy()
            return pl.Series(model.predict(X)).cast(out_dtype)

        plugin_expr = predict(path, *names)
        baseline_expr = (
            pl.struct(names)
            .map_batches(framework_batch, return_dtype=out_dtype, is_elementwise=True)
            .alias("prediction")
        )
        # Correctness first, on a slice.
        head = df.head(100_000)
        a = head.select(plugin_expr)["prediction"].to_numpy().astype(np.float64)
        b = head.select(baseline_expr)["prediction"].to_numpy().astype(np.float64)
        if kind == "sklearn":
            agree = float(np.mean(a == b))
            assert agree > 0.999, f"{kind}: labels agree on {agree:.4%} of rows"
        else:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

        for engine in ("in-memory", "streaming"):
            t_plugin, _ = best_of(args.repeat, lambda e=plugin_expr, g=engine: run(df, e, g))
            t_base, _ = best_of(args.repeat, lambda e=baseline_expr, g=engine: run(df, e, g))
            rows.append((kind, engine, args.rows / t_plugin, args.rows / t_base, t_base / t_plugin))
            print(f"{kind:9s} {engine:9s} plugin {args.rows / t_plugin:14,.0f} rows/s  "
                  f"map_batches {args.rows / t_base:14,.0f} rows/s  ratio {t_base / t_plugin:.2f}x",
                  flush=True)

    import lightgbm
    import sklearn
    import xgboost

    print()
    print(f"{args.rows:,} rows × {N_FEATURES} float32 features, {os.cpu_count()} cores "
          f"({platform.processor() or platform.machine()}), polars {pl.__version__}, "
          f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}, "
          f"scikit-learn {sklearn.__version__}; best of {args.repeat}.")
    print()
    print("| model | engine | plugin rows/s | map_batches + framework rows/s "
          "| plugin / map_batches |")
    print("|---|---|---:|---:|---:|")
    for kind, engine, p, b, r in rows:
        print(f"| {kind} | {engine} | {p:,.0f} | {b:,.0f} | {r:.2f}× |")


if __name__ == "__main__":
    main()
