#!/usr/bin/env python3
"""Imported ONNX forests against onnxruntime on the same ``.onnx`` file, and an imported
CatBoost model against ``catboost.predict(thread_count=1)``: one batch, one thread.

    python benches/compare/onnx_catboost.py [--rows 10000] [--reps 15] [--cases rf,lgb,cb,cb_cat]

Needs a release build of ``mle_runtime`` (benches/compare/setup.sh) and onnx, onnxruntime,
skl2onnx, onnxmltools, lightgbm and catboost in the same interpreter.

Cases (all fitted here with fixed seeds on synthetic data, 20 float features):
  rf      skl2onnx RandomForestClassifier, 100 trees, max_depth 10 (binary)
  lgb     onnxmltools LightGBM LGBMClassifier, 300 trees, 31 leaves (binary)
  cb      CatBoostClassifier, 500 trees depth 6, float features only (binary)
  cb_cat  CatBoostClassifier, 500 trees depth 6, plus 2 string categorical features
          (one-hot for the small one, CTRs for the other; max_ctr_complexity=1, as the importer
          refuses CTRs over feature combinations); the scored rows hold unseen categories

The ONNX cases export the ``.onnx`` file with ``mle.export_model(path_of_onnx, ...)`` and give
onnxruntime the same file (``intra_op_num_threads=1``, ``inter_op_num_threads=1``, sequential
execution, ZipMap removed so that its Python dict output is not what is timed). The outputs
(class probabilities) are checked equal within 1e-5 relative (1e-6 absolute) before anything
is timed. Each repetition times one call of each engine, in alternating order, so that a burst
of noise on a shared machine hits both; the figure is the median over repetitions.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

import numpy as np

N_FEATURES = 20


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    logit = X[:, 0] * 1.5 - X[:, 1] + 0.8 * X[:, 2] * X[:, 3] + np.sin(X[:, 4] * 2)
    y = (logit + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def check(got, want, what: str) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64).reshape(got.shape)
    err = np.abs(got - want)
    tol = np.maximum(1e-5 * np.abs(want), 1e-6)
    if not np.all(err <= tol):
        raise SystemExit(f"{what}: outputs differ (max abs error {err.max():.3g})")
    return float(err.max())


def ort_session(path: pathlib.Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    outs = [o.name for o in s.get_outputs() if "tensor(float" in o.type]
    return lambda x: s.run(outs, {name: x})[0]


def onnx_case(key: str, X, y, tmp: pathlib.Path):
    if key == "rf":
        from skl2onnx import to_onnx
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(100, max_depth=10, random_state=0, n_jobs=1).fit(X, y)
        proto = to_onnx(model, X[:1], options={id(model): {"zipmap": False}},
                        target_opset={"": 17, "ai.onnx.ml": 3})
        label = "skl2onnx RandomForestClassifier (100 trees, depth 10)"
    else:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = lgb.LGBMClassifier(n_estimators=300, num_leaves=31, random_state=0,
                                   n_jobs=1, verbose=-1).fit(X, y)
        types = [("input", FloatTensorType([None, N_FEATURES]))]
        proto = convert_lightgbm(model, initial_types=types, zipmap=False, target_opset=15)
        label = "onnxmltools LightGBM (300 trees, 31 leaves)"
    path = tmp / f"{key}.onnx"
    path.write_bytes(proto.SerializeToString())
    return label, path, ort_session(path)


def catboost_frame(X, seed: int, unseen: bool):
    """X with two string columns: ``small`` (3 values, one-hot in CatBoost) and ``city`` (40
    values, CTRs); ``unseen`` adds values never seen in training."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["small"] = rng.choice(["a", "b", "c", "zz"] if unseen else ["a", "b", "c"], len(X))
    frame["city"] = np.array([f"c{v}" for v in rng.integers(0, 45 if unseen else 40, len(X))],
                             dtype=object)
    return frame


def catboost_case(key: str, X, y):
    from catboost import CatBoostClassifier

    cat = None if key == "cb" else ["small", "city"]
    frame = X if key == "cb" else catboost_frame(X, 7, unseen=False)
    if key == "cb_cat":
        # Shift the target with the categories so that CatBoost uses them.
        y = ((y + (frame["city"].str[1:].astype(int) % 3 == 0)) % 2).to_numpy()
    model = CatBoostClassifier(iterations=500, depth=6, random_seed=0, verbose=False,
                               thread_count=1, cat_features=cat, allow_writing_files=False,
                               # CTRs over feature combinations are refused by the importer.
                               max_ctr_complexity=1)
    model.fit(frame, y)
    label = ("CatBoost (500 trees, depth 6, 20 float)" if key == "cb" else
             "CatBoost (500 trees, depth 6, 20 float + 2 string categorical)")
    return label, model, frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--cases", default="rf,lgb,cb,cb_cat")
    args = ap.parse_args()

    import mle_runtime as mle

    X_train, y_train = make_data(args.train_rows, seed=0)
    X, _ = make_data(args.rows, seed=1)
    print(f"batch {args.rows:,} rows, 1 thread, {args.reps} interleaved repetitions, median")
    print("| model | peer | peer | ours (`predict_proba`) | ratio | max abs diff |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="mle-onnx-cb-") as tmp_s:
        tmp = pathlib.Path(tmp_s)
        for key in [c for c in args.cases.split(",") if c]:
            out = tmp / f"{key}.mle"
            if key in ("rf", "lgb"):
                label, path, peer = onnx_case(key, X_train, y_train, tmp)
                mle.export_model(str(path), str(out))
                peer_name = "onnxruntime 1 thread"
                x_ours = x_peer = X
            else:
                label, model, frame = catboost_case(key, X_train, y_train)
                mle.export_model(model, str(out), sample_input=frame)
                peer_name = "`catboost.predict(thread_count=1)`"
                x_ours = x_peer = X if key == "cb" else catboost_frame(X, 11, unseen=True)

                def peer(x, model=model):
                    return model.predict(x, prediction_type="Probability", thread_count=1)

            rt = mle.load_model(str(out))

            def ours(x, rt=rt):
                return rt.predict_proba(x, threads=1)

            diff = check(ours(x_ours), peer(x_peer), label)
            t_ours, t_peer = [], []
            for rep in range(args.reps):
                order = ((ours, x_ours, t_ours), (peer, x_peer, t_peer))
                for fn, x, acc in order if rep % 2 == 0 else order[::-1]:
                    s = time.perf_counter()
                    fn(x)
                    acc.append(time.perf_counter() - s)
            mo, mp = statistics.median(t_ours), statistics.median(t_peer)
            print(f"| {label} | {peer_name} | {mp * 1e3:.2f} ms | {mo * 1e3:.2f} ms "
                  f"| **{mp / mo:.2f}×** | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
