"""Explanations side by side (issue 18): our exact TreeSHAP (``rt.explain``, one thread)
against XGBoost's ``pred_contribs`` and LightGBM's ``pred_contrib`` (one thread each) and
``shap.TreeExplainer`` (when shap imports), and leaf indices (``rt.apply``) against
``pred_leaf``, on a batch of 10,000 rows.

    python benches/compare/explain.py [--rows 10000] [--runs 10] [--no-cargo]

Trains XGBoost (100 trees, depth 6) and LightGBM (100 trees, 31 leaves) on a synthetic
binary task (20 features, 5% missing) and exports them with ``mle_runtime``. Before anything
is timed it checks that our contributions equal the framework's (and shap's) and that our
leaves equal ``pred_leaf``, and stops if not. Then it times, each the median of ``--runs``
after one warm-up: the frameworks and ``rt.explain`` / ``rt.apply`` in this process, and the
executor alone (``Session::explain_batch`` / ``apply_batch``, no Python in the loop) through
``cargo run --release -p mle-exec --example explain_bench`` (skipped with ``--no-cargo``).
Prints a Markdown table; ratios are the framework's time over ours (> 1: we are faster)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import lightgbm as lgb  # noqa: E402
import mle_runtime as mle  # noqa: E402
import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def data(n, nf=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, nf))
    logit = (X[:, 0] * 1.5 - X[:, 1] + np.sin(3 * X[:, 2]) + X[:, 3] * X[:, 4]
             + 0.3 * X[:, 5:].sum(1))
    y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


def best_median(f, runs):
    f()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[0], t[len(t) // 2]


def ours(path, X, runs):
    with tempfile.NamedTemporaryFile(suffix=".f64", delete=False) as f:
        f.write(np.ascontiguousarray(X, dtype="<f8").tobytes())
        rows = f.name
    try:
        cmd = ["cargo", "run", "-q", "--release", "-p", "mle-exec", "--example",
               "explain_bench", "--", str(path), rows, str(X.shape[1]), str(runs)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.unlink(rows)


def load_shap():
    try:
        return importlib.import_module("shap"), None
    except Exception as e:  # any import failure (numba, llvmlite, numpy bounds) counts
        return None, f"{type(e).__name__}: {e}"


def shap_matrix(explainer, X):
    """shap's values with its expected value as the last column, as ``pred_contribs``."""
    sv = explainer.shap_values(X, check_additivity=False)
    ev = explainer.expected_value
    if isinstance(sv, list):  # older shap: one array per class
        sv, ev = sv[-1], np.ravel(ev)[-1]
    sv = np.asarray(sv)
    if sv.ndim == 3:
        sv, ev = sv[..., -1], np.ravel(ev)[-1]
    return np.column_stack([sv, np.full(len(sv), float(np.ravel(ev)[-1]))])


def check(what, got, ref, tol):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise SystemExit(f"{what}: shape {got.shape} != {ref.shape}")
    err = float(np.max(np.abs(got - ref)))
    if not err <= tol:
        raise SystemExit(f"{what}: max abs diff {err:.3e} > {tol:.0e}")
    print(f"{what}: agree, max abs diff {err:.1e}", flush=True)
    return err


def bench_model(name, rt, contrib, leaf, X, tol, runs, shap_mod, shap_model, mle_path,
                use_cargo):
    """Checks, then times. ``contrib`` / ``leaf``: the framework's calls on X."""
    ref = contrib()
    err = check(f"{name} rt.explain vs framework", rt.explain(X, threads=1), ref, tol)
    check(f"{name} rt.apply vs pred_leaf", rt.apply(X, threads=1), leaf(), 0)
    explainer = None
    if shap_mod is not None:
        explainer = shap_mod.TreeExplainer(shap_model)
        check(f"{name} shap.TreeExplainer vs framework", shap_matrix(explainer, X), ref, tol)
    out = {"model": name, "err": err,
           "framework": best_median(contrib, runs)[1],
           "framework_leaf": best_median(leaf, runs)[1],
           "ours": best_median(lambda: rt.explain(X, threads=1), runs)[1],
           "ours_leaf": best_median(lambda: rt.apply(X, threads=1), runs)[1]}
    if explainer is not None:
        out["shap"] = best_median(lambda: explainer.shap_values(X, check_additivity=False),
                                  runs)[1]
    if use_cargo:
        me = ours(mle_path, X, runs)
        out["exec"], out["exec_leaf"] = me["explain_median_s"], me["apply_median_s"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-cargo", action="store_true", help="skip the executor-alone figures")
    a = ap.parse_args()
    Xtr, ytr = data(20_000)
    X, _ = data(a.rows, seed=1)
    tmp = Path(tempfile.mkdtemp())
    shap_mod, shap_err = load_shap()
    if shap_mod is None:
        print(f"shap not available: {shap_err}", flush=True)
    results = []

    xg = xgb.XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.1, n_jobs=1,
                           tree_method="hist", random_state=0).fit(Xtr, ytr)
    booster = xg.get_booster()
    booster.set_param({"nthread": 1})
    mle.export_model(xg, str(tmp / "xgb.mle"))
    dm = xgb.DMatrix(X, nthread=1)
    # XGBoost sums its contributions in float32: agreement to 1e-5 of margins of order 1.
    results.append(bench_model(
        "XGBoost 100 × depth 6", mle.load_model(str(tmp / "xgb.mle")),
        lambda: booster.predict(dm, pred_contribs=True),
        lambda: booster.predict(dm, pred_leaf=True), X, 1e-5, a.runs, shap_mod, booster,
        tmp / "xgb.mle", not a.no_cargo))

    lg = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, learning_rate=0.1, n_jobs=1,
                            verbose=-1, random_state=0).fit(Xtr, ytr)
    mle.export_model(lg, str(tmp / "lgb.mle"))
    b = lg.booster_
    results.append(bench_model(
        "LightGBM 100 × 31 leaves", mle.load_model(str(tmp / "lgb.mle")),
        lambda: b.predict(X, pred_contrib=True, num_threads=1),
        lambda: b.predict(X, pred_leaf=True, num_threads=1), X, 1e-9, a.runs, shap_mod, b,
        tmp / "lgb.mle", not a.no_cargo))

    shap_v = getattr(shap_mod, "__version__", "not installed")
    print(f"rows {a.rows}, 1 thread, median of {a.runs} runs; {platform.processor() or ''} "
          f"{os.cpu_count()} cores; xgboost {xgb.__version__}, lightgbm {lgb.__version__}, "
          f"shap {shap_v}")
    print("| model | call | framework | shap.TreeExplainer | ours `rt.explain` / `rt.apply` | "
          "ours vs framework | ours vs shap | executor alone | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ms = 1e3
        sh = r.get("shap")
        cells = [
            (r["model"], "contributions", r["framework"], sh, r["ours"], r.get("exec"),
             f"{r['err']:.1e}"),
            (r["model"], "leaves", r["framework_leaf"], None, r["ours_leaf"],
             r.get("exec_leaf"), "0"),
        ]
        def ratio(r):  # bold where we are ahead
            return f"**{r:.2f}×**" if r >= 1 else f"{r:.2f}×"

        for model, call, fw, shp, me, ex, err in cells:
            shp_s = "" if shp is None else f"{shp * ms:.1f} ms"
            vs_shap = "" if shp is None else ratio(shp / me)
            ex_s = "" if ex is None else f"{ex * ms:.1f} ms"
            print(f"| {model} | {call} | {fw * ms:.1f} ms | {shp_s} | {me * ms:.1f} ms | "
                  f"{ratio(fw / me)} | {vs_shap} | {ex_s} | {err} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
