"""Export time, file size and load time per model type, next to ``joblib.dump``.

Run (after ``scripts/py_setup.sh``; ``MLE_PY_RELEASE=1`` for an optimized extension):

    $MLE_VENV/bin/python benches/export_bench.py

Prints a Markdown table: for each model, the time of ``mle.export_model`` (uncompressed and
with ``compression=True``), the ``.mle`` sizes, ``joblib.dump`` time and size (plain and with
``compress=3``), and the load times of ``mle.load_model`` and ``joblib.load``. Each time is the
median of several runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings

import joblib
import mle_runtime as mle
import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

REPEATS = 5


def median_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def models():
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xc, yc = load_breast_cancer(return_X_y=True)
    xr, yr = load_diabetes(return_X_y=True)
    xd, yd = load_digits(return_X_y=True)
    yield "Ridge (diabetes)", Ridge().fit(xr, yr), xr
    yield (
        "LogisticRegression pipeline (breast-cancer)",
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xc, yc),
        xc,
    )
    yield (
        "RandomForest 100 trees (breast-cancer)",
        RandomForestClassifier(n_estimators=100, random_state=0).fit(xc, yc),
        xc,
    )
    yield (
        "GradientBoosting 100 (digits, 10 classes)",
        GradientBoostingClassifier(n_estimators=100, random_state=0).fit(xd, yd),
        xd,
    )
    yield (
        "HistGradientBoosting (breast-cancer)",
        HistGradientBoostingClassifier(random_state=0).fit(xc, yc),
        xc,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield (
            "MLPClassifier 64x64 (digits)",
            MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=300, random_state=0).fit(xd, yd),
            xd,
        )
    try:
        import xgboost as xgb

        yield (
            "XGBClassifier 100x6 (breast-cancer)",
            xgb.XGBClassifier(n_estimators=100, max_depth=6, random_state=0).fit(xc, yc),
            xc,
        )
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
            torch.nn.ReLU(), torch.nn.Linear(256, 10),
        ).eval()
        yield "PyTorch MLP 64-256-256-10 (digits)", net, xd.astype(np.float32)
    except ImportError:
        pass
    try:
        import lightgbm as lgb

        yield (
            "LGBMClassifier 100x31 (breast-cancer)",
            lgb.LGBMClassifier(n_estimators=100, num_leaves=31, random_state=0, verbose=-1).fit(
                xc, yc
            ),
            xc,
        )
    except ImportError:
        pass


def measure(name: str, model, x, d: str) -> tuple:
    path = os.path.join(d, "m.mle")
    cpath = os.path.join(d, "mc.mle")
    jpath = os.path.join(d, "m.joblib")
    jcpath = os.path.join(d, "mc.joblib")
    sample = x[:64]
    kw = {"input_shape": (1, x.shape[1])} if not hasattr(model, "predict") else {}
    t_export = median_time(
        lambda: mle.export_model(model, path, sample_input=sample, validate=False, **kw)
    )
    t_export_c = median_time(
        lambda: mle.export_model(
            model, cpath, sample_input=sample, compression=True, validate=False, **kw
        )
    )
    t_joblib = median_time(lambda: joblib.dump(model, jpath))
    joblib.dump(model, jcpath, compress=3)
    t_load = median_time(lambda: mle.load_model(path), repeats=20)
    t_load_c = median_time(lambda: mle.load_model(cpath), repeats=20)
    t_jload = median_time(lambda: joblib.load(jpath), repeats=20)
    if hasattr(model, "predict"):
        ref = np.asarray(model.predict(x))
    else:  # a torch module: its forward
        import torch

        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
    ours = np.asarray(mle.load_model(path).predict(x))
    same = bool(np.all(ref == ours)) or bool(np.allclose(ref, ours, rtol=1e-5, atol=1e-6))
    kib = [os.path.getsize(p) / 1024 for p in (path, cpath, jpath, jcpath)]
    return (
        name,
        t_export * 1e3,
        t_export_c * 1e3,
        kib[0],
        kib[1],
        t_joblib * 1e3,
        kib[2],
        kib[3],
        t_load * 1e3,
        t_load_c * 1e3,
        t_jload * 1e3,
        same,
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = [measure(name, model, x, d) for name, model, x in models()]
    print(
        "| model | export ms | export zstd ms | .mle KiB | .mle zstd KiB | joblib.dump ms "
        "| joblib KiB | joblib compress=3 KiB | load ms | load zstd ms | joblib.load ms "
        "| same predictions |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} "
            f"| {r[6]:.1f} | {r[7]:.1f} | {r[8]:.2f} | {r[9]:.2f} | {r[10]:.2f} | {r[11]} |"
        )


if __name__ == "__main__":
    main()
