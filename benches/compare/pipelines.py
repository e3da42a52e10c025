"""Whole scikit-learn pipelines, side by side (docs/BENCHMARKS.md, "Pipelines"):
ColumnTransformer(OneHotEncoder on 3 string columns, StandardScaler on 5 numbers) followed by
LogisticRegression, and by HistGradientBoostingClassifier; a batch of 100,000 rows, 1 thread.

- ours: ``mle_runtime.load_model(path).predict_proba(table)`` from a pyarrow Table (string
  columns as Arrow strings: the Lookup stage codes them);
- scikit-learn: ``pipeline.predict_proba(frame)`` on the pandas DataFrame;
- onnxruntime: the skl2onnx conversion of the same pipeline (string inputs as ONNX string
  tensors, numbers as one float tensor per column), ``intra_op_num_threads = 1``.

Every engine's probabilities are checked against scikit-learn's before timing. Run with the
benchmark venv (benches/compare/setup.sh):

    OMP_NUM_THREADS=1 python benches/compare/pipelines.py [--rows 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

STR = ["workclass", "education", "country"]
NUM = ["age", "hours", "capital_gain", "fnlwgt", "edu_num"]


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    cats = {
        "workclass": [f"w{i}" for i in range(7)],
        "education": [f"e{i}" for i in range(16)],
        "country": [f"c{i}" for i in range(40)],
    }
    df = pd.DataFrame({c: np.asarray(v, dtype=object)[rng.integers(0, len(v), n)]
                       for c, v in cats.items()})
    df["age"] = rng.normal(40, 12, n)
    df["hours"] = rng.normal(40, 10, n)
    df["capital_gain"] = rng.lognormal(6, 2, n)
    df["fnlwgt"] = rng.lognormal(12, 0.5, n)
    df["edu_num"] = rng.integers(1, 17, n).astype(np.float64)
    score = 0.03 * (df["age"] - 40) + (df["education"].str.len() > 2) * 0.8 \
        + rng.normal(0, 1, n)
    return df, (score > 0.5).astype(np.int64).to_numpy()


def pipelines():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def ct():
        return ColumnTransformer([
            ("oh", OneHotEncoder(handle_unknown="ignore", sparse_output=False), STR),
            ("sc", StandardScaler(), NUM),
        ], sparse_threshold=0.0)

    return {
        "ct+logistic": make_pipeline(ct(), LogisticRegression(max_iter=300)),
        "ct+hist_gbdt": make_pipeline(ct(), HistGradientBoostingClassifier(
            max_iter=100, max_leaf_nodes=31, random_state=0)),
    }


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def onnx_session(model, x):
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, StringTensorType([None, 1])) for c in STR] + \
        [(c, FloatTensorType([None, 1])) for c in NUM]
    onx = to_onnx(model, initial_types=types, target_opset={"": 17, "ai.onnx.ml": 3},
                  options={"zipmap": False})
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onx.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feeds = {c: x[c].to_numpy().astype(object).reshape(-1, 1) for c in STR}
    feeds.update({c: x[c].to_numpy(np.float32).reshape(-1, 1) for c in NUM})
    name = [o.name for o in sess.get_outputs()][1]
    return lambda: sess.run([name], feeds)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import mle_runtime as mle
    import pyarrow as pa

    train, y = frame(20_000, 0)
    test, _ = frame(args.rows, 1)
    table = pa.Table.from_pandas(test, preserve_index=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"rows {args.rows}, 1 thread, best of {args.repeat}")
    print(f"{'pipeline':<14} {'ours ms':>9} {'sklearn ms':>11} {'onnxrt ms':>10} "
          f"{'vs sklearn':>11} {'vs onnxrt':>10} {'vs faster':>10}")
    with tempfile.TemporaryDirectory() as d:
        for name, model in pipelines().items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(train, y)
            path = os.path.join(d, f"{name}.mle")
            mle.export_model(model, path)
            rt = mle.load_model(path)
            want = model.predict_proba(test)
            np.testing.assert_allclose(rt.predict_proba(table), want, rtol=1e-5, atol=1e-7)
            ours = best(lambda rt=rt: rt.predict_proba(table), args.repeat)
            sk = best(lambda m=model: m.predict_proba(test), args.repeat)
            try:
                run = onnx_session(model, test)
                np.testing.assert_allclose(run(), want, rtol=1e-3, atol=1e-4)
                ox = best(run, args.repeat)
            except Exception as e:  # a conversion skl2onnx cannot do: reported, not hidden
                print(f"  onnxruntime: {type(e).__name__}: {str(e)[:120]}")
                ox = float("nan")
            faster = np.nanmin([sk, ox])
            print(f"{name:<14} {ours * 1e3:9.1f} {sk * 1e3:11.1f} {ox * 1e3:10.1f} "
                  f"{sk / ours:10.1f}x {ox / ours:9.1f}x {faster / ours:9.1f}x")


if __name__ == "__main__":
    main()
