#!/usr/bin/env python3
"""Benchmark: a LightGBM model with one 40-category string feature, scored by mle_runtime
from pyarrow Tables (the category as a plain string column, as a dictionary column, and as
pre-encoded integer codes) against `lightgbm.predict` on the pandas categorical frame.

    <venv>/bin/python benches/typed_bench.py [--rows 100000] [--repeat 7]

Run it in a venv with a release build of mle_runtime (benches/compare/setup.sh makes one).
The model: 100 trees of 31 leaves on 8 float features and one `category` column of 40
strings (LightGBM's own categorical splits), fitted on 50,000 rows. The batch: `--rows` rows
with 5 % missing strings, 2 % unseen strings and 5 % missing numbers. One thread everywhere
(`num_threads=1` for LightGBM, `threads=1` for ours). Each way is timed end to end (the call
that takes the table and returns the probabilities), best of `--repeat` after one warm-up;
the outputs are checked against LightGBM's before timing. Prints a Markdown table.
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
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

N_NUM = 8
N_CAT = 40
CATS = [f"city_{i:02d}" for i in range(N_CAT)]


def frame(n: int, rng, unseen: bool):
    x = rng.standard_normal((n, N_NUM))
    c = rng.integers(0, N_CAT, n)
    effect = np.random.default_rng(42).standard_normal(N_CAT) * 2.0
    y = effect[c] + x[:, 0] + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] * x[:, 3]
    y = (y + 0.3 * rng.standard_normal(n) > 0).astype(int)
    city = np.asarray(CATS, dtype=object)[c]
    if unseen:
        city[rng.random(n) < 0.02] = "somewhere-else"
        city[rng.random(n) < 0.05] = None
        x[rng.random((n, N_NUM)) < 0.05] = np.nan
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(N_NUM)])
    known = np.isin(city, np.asarray(CATS, dtype=object))
    df["city"] = pd.Categorical(np.where(known, city, None), categories=CATS)  # unseen: NaN
    return df, y, city


def best(f, repeat: int) -> float:
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    train, y, _ = frame(50_000, rng, unseen=False)
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, min_data_per_group=20,
                               num_threads=1, verbose=-1).fit(train, y)
    df, _, city = frame(args.rows, rng, unseen=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "lgb_city.mle")
        mle.export_model(model, path)
        rt = mle.load_model(path)
    assert [f["kind"] for f in rt.input_schema][-1] == "category"

    nums = [pa.array(df[f"x{i}"].to_numpy(), from_pandas=True) for i in range(N_NUM)]
    names = [f"x{i}" for i in range(N_NUM)] + ["city"]
    plain = pa.array(city, type=pa.string(), from_pandas=True)
    codes_of = {c: i for i, c in enumerate(rt.input_schema[-1]["categories"])}
    codes = pa.array([codes_of.get(c) for c in city], type=pa.int32())
    tables = {
        "pyarrow, plain string column": pa.table(nums + [plain], names=names),
        "pyarrow, dictionary column": pa.table(nums + [plain.dictionary_encode()], names=names),
        "pyarrow, pre-encoded int32 codes": pa.table(nums + [codes], names=names),
    }

    def lgb_predict():
        return model.predict_proba(df, num_threads=1)

    want = lgb_predict()
    for name, t in tables.items():
        got = rt.predict_proba(t, threads=1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)

    rows = [("lightgbm.predict_proba, pandas categorical", best(lgb_predict, args.repeat))]
    for name, t in tables.items():
        rows.append((f"mle_runtime, {name}",
                     best(lambda t=t: rt.predict_proba(t, threads=1), args.repeat)))
    lgb_s = rows[0][1]
    codes_s = rows[-1][1]
    print(f"LightGBM 100 trees × 31 leaves, 8 floats + 1 category of {N_CAT} strings; "
          f"batch {args.rows:,}, 1 thread; best of {args.repeat}; "
          f"{platform.machine()}, {os.cpu_count()} cores, mle_runtime {mle.__version__}\n")
    print("| way | ms | rows/s | × lightgbm | vs our codes |")
    print("|---|---:|---:|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {s * 1e3:.1f} | {args.rows / s / 1e6:.2f} M | {lgb_s / s:.2f}× "
              f"| {100 * (s / codes_s - 1):+.0f} % |")


if __name__ == "__main__":
    main()
