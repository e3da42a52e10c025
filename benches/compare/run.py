#!/usr/bin/env python3
"""Side-by-side inference benchmark: MLE Runtime against the runtimes people use instead.

    benches/compare/run.sh [--rows 1000000] [--quick] [--models rf,xgb_d6,...] [--train-only]

(run.sh runs this file with the benchmark venv made by benches/compare/setup.sh.)

Trains, with fixed seeds, on ``make_classification`` (28 float features, ``--rows`` rows):
a random forest, three XGBoost and two LightGBM ensembles, a HistGradientBoosting
classifier, a logistic regression and a PyTorch MLP (trained models, the converted ONNX
files and the compiled tl2cgen / lleaves libraries are cached under
``${MLE_BENCH_CACHE:-~/.cache/mle-bench-compare}``). Then, for batch sizes 1, 100, 10,000 and
1,000,000 and for 1 and 2 threads, it times every runtime on the same rows, interleaved
(every repetition visits the runtimes in a rotated order) and reports the median. Successive
calls get successive batches of the data (batch 100 cycles through 2,000 distinct batches of
200,000 rows), as a pipeline scoring a table does: a runtime that branches on the data is not
timed on one batch whose paths the branch predictor has learnt:

- ours: ``mle_runtime.load_model(path).predict_proba(x, threads=T)`` (``predict`` for the MLP),
  and the Rust ``mle bench`` command when its release binary exists (batch 1 latency through
  ``Session::predict_row``, throughput through ``predict_batch``);
- the framework's own predict (``Booster.inplace_predict`` for XGBoost, ``Booster.predict``
  for LightGBM, ``predict_proba`` for scikit-learn, the module's forward pass for PyTorch);
- onnxruntime on the skl2onnx / onnxmltools conversions (hand-written ONNX graph for the MLP);
- treelite + tl2cgen compiled with gcc -O3 (``quantize`` on), for tree models;
- lleaves for LightGBM.

Each runtime gets the input in the dtype it works in (converted once, outside the timing),
and its own thread setting (``nthread``, ``num_threads``, ``n_jobs``, threadpoolctl for
scikit-learn's OpenMP/BLAS, ``intra_op_num_threads``, ``torch.set_num_threads``, tl2cgen's
``nthread``, lleaves' ``n_jobs``, our ``threads``). Before timing, ours is checked against
the framework on every row: class decisions and the largest probability difference.

Writes a Markdown report to stdout and to ``benches/compare/results.md`` (raw figures in
``results.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import itertools
import json
import os
import pathlib
import pickle
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = pathlib.Path(
    os.environ.get("MLE_BENCH_CACHE", pathlib.Path.home() / ".cache/mle-bench-compare")
)
N_FEATURES = 28
SEED = 0

#: key -> (label, dataset). Dataset "bin" is binary, "mc" ten classes.
MODELS = {
    "rf": ("RandomForest 100 trees, depth 8", "bin"),
    "xgb_d6": ("XGBoost 100 rounds, depth 6", "bin"),
    "xgb_d8": ("XGBoost 500 rounds, depth 8", "bin"),
    "xgb_mc": ("XGBoost 10-class, 100 rounds, depth 6", "mc"),
    "lgb_31": ("LightGBM 100 rounds, 31 leaves", "bin"),
    "lgb_255": ("LightGBM 500 rounds, 255 leaves", "bin"),
    "lgb_127": ("LightGBM 200 rounds, 127 leaves", "bin"),
    "xgb_lg": ("XGBoost 200 rounds, lossguide, 127 leaves", "bin"),
    "hgb": ("HistGradientBoosting 100 iter, 31 leaves", "bin"),
    "logreg": ("LogisticRegression", "bin"),
    "mlp": ("PyTorch MLP 28-256-256-2", "bin"),
}
TREE_MODELS = {"rf", "xgb_d6", "xgb_d8", "xgb_mc", "lgb_31", "lgb_255", "lgb_127", "xgb_lg", "hgb"}
PEERS = ["framework", "onnxruntime", "tl2cgen", "lleaves"]
#: ``ours`` takes the float32 batch, ``ours_f64`` the same values as float64 (Parquet's usual
#: column type).
COLUMNS = ["ours", "ours_f64", "ours_cli"] + PEERS


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data, models
def make_data(rows: int, kind: str):
    from sklearn.datasets import make_classification

    if kind == "bin":
        X, y = make_classification(
            n_samples=rows,
            n_features=N_FEATURES,
            n_informative=16,
            n_redundant=4,
            n_classes=2,
            random_state=SEED,
        )
    else:
        X, y = make_classification(
            n_samples=rows,
            n_features=N_FEATURES,
            n_informative=16,
            n_redundant=4,
            n_classes=10,
            random_state=SEED + 1,
        )
    return np.ascontiguousarray(X, dtype=np.float32), y.astype(np.int64)


class MLP:
    """Builds the PyTorch module lazily so torch is imported only when needed."""

    @staticmethod
    def module():
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 2),
        )


def train(key: str, X: np.ndarray, y: np.ndarray, nt: int = 2):
    """Trains model ``key`` with fixed seeds on ``nt`` threads."""
    if key == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=100, max_depth=8, n_jobs=nt, random_state=SEED
        ).fit(X, y)
    if key.startswith("xgb"):
        import xgboost as xgb

        if key == "xgb_lg":
            return xgb.XGBClassifier(
                n_estimators=200, grow_policy="lossguide", max_leaves=127, max_depth=0,
                tree_method="hist", n_jobs=nt, random_state=SEED,
            ).fit(X, y)
        n, d = {"xgb_d6": (100, 6), "xgb_d8": (500, 8), "xgb_mc": (100, 6)}[key]
        return xgb.XGBClassifier(
            n_estimators=n, max_depth=d, tree_method="hist", n_jobs=nt, random_state=SEED
        ).fit(X, y)
    if key.startswith("lgb"):
        import lightgbm as lgb

        n, leaves = {"lgb_31": (100, 31), "lgb_255": (500, 255), "lgb_127": (200, 127)}[key]
        return lgb.LGBMClassifier(
            n_estimators=n, num_leaves=leaves, n_jobs=nt, random_state=SEED, verbose=-1
        ).fit(X, y)
    if key == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=100, early_stopping=False, random_state=SEED
        ).fit(X, y)
    if key == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=300).fit(X, y)
    if key == "mlp":
        import torch

        torch.manual_seed(SEED)
        torch.set_num_threads(nt)
        m = MLP.module()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        g = torch.Generator().manual_seed(SEED)
        for _ in range(2):
            perm = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), 1024):
                idx = perm[i : i + 1024]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(m(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return m.eval()
    raise ValueError(key)


def load_or_train(key: str, X: np.ndarray, y: np.ndarray, rows: int, nt: int = 2):
    path = CACHE / "models" / f"{key}-{rows}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    log(f"  training {key} on {rows:,} rows")
    t0 = time.perf_counter()
    with thread_limits(nt):
        m = train(key, X, y, nt)
    log(f"  trained {key} in {time.perf_counter() - t0:.1f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(m, f)
    tmp.replace(path)
    return m


def digest(model) -> str:
    return hashlib.sha256(pickle.dumps(model)).hexdigest()[:16]


# --------------------------------------------------------------------------- runtimes
def two_cols(p: np.ndarray) -> np.ndarray:
    """Probabilities as ``[n, n_classes]`` (a 1-column binary output gains the class-0 column)."""
    p = np.asarray(p, dtype=np.float64)
    p = p.reshape(p.shape[0], -1)
    if p.shape[1] == 1:
        p = np.column_stack([1.0 - p[:, 0], p[:, 0]])
    return p


class Runtime:
    """One way of running one model: ``fn(threads)`` returns the timed callable, taking the
    batch in ``dtype``; ``proba(out)`` turns its output into ``[n, classes]``."""

    def __init__(self, name, dtype, fn, proba=two_cols, note=""):
        self.name, self.dtype, self.fn, self.proba, self.note = name, dtype, fn, proba, note


def ours_runtime(key, model, X, workdir) -> Runtime:
    import mle_runtime as mle

    path = workdir / f"{key}.mle"
    kw = {}
    if key == "mlp":
        kw = {"input_shape": (1, N_FEATURES), "sample_input": X[:256]}
    else:
        kw = {"sample_input": X[:256]}
    res = mle.export_model(model, str(path), **kw)
    log(
        f"  ours: exported {key} ({res['size_bytes']:,} bytes, max abs err "
        f"{res['validation'].get('max_abs_error', float('nan')):.2e})"
    )
    rt = mle.load_model(str(path))
    if key == "mlp":

        def fn(t):
            return lambda x: rt.predict(x, threads=t)

        return Runtime("ours", np.float32, fn, proba=lambda o: np.asarray(o, np.float64))

    def fn(t):
        return lambda x: rt.predict_proba(x, threads=t)

    return Runtime("ours", np.float32, fn)


def ours_f64_runtime(key, workdir) -> Runtime:
    """The model ``ours_runtime`` exported, given float64 batches."""
    import mle_runtime as mle

    rt = mle.load_model(str(workdir / f"{key}.mle"))
    if key == "mlp":
        return Runtime("ours_f64", np.float64, lambda t: lambda x: rt.predict(x, threads=t),
                       proba=lambda o: np.asarray(o, np.float64))
    return Runtime("ours_f64", np.float64, lambda t: lambda x: rt.predict_proba(x, threads=t))


def framework_runtime(key, model) -> Runtime:
    if key.startswith("xgb"):
        booster = model.get_booster()

        def fn(t):
            booster.set_param({"nthread": t})
            return lambda x: booster.inplace_predict(x)

        return Runtime("framework", np.float32, fn, note="xgboost inplace_predict")
    if key.startswith("lgb"):
        booster = model.booster_

        def fn(t):
            return lambda x: booster.predict(x, num_threads=t)

        return Runtime("framework", np.float32, fn, note="lightgbm Booster.predict")
    if key == "mlp":
        import torch

        def fn(t):
            torch.set_num_threads(t)

            def run(x):
                with torch.inference_mode():
                    return model(torch.from_numpy(x)).numpy()

            return run

        return Runtime(
            "framework",
            np.float32,
            fn,
            proba=lambda o: np.asarray(o, np.float64),
            note="torch forward, inference_mode",
        )
    # scikit-learn: RF uses joblib threads (n_jobs), HGB OpenMP, LogisticRegression BLAS;
    # the OpenMP/BLAS pools are limited with threadpoolctl around each thread block.
    dtype = np.float32 if key == "rf" else np.float64

    def fn(t):
        if hasattr(model, "n_jobs"):
            model.n_jobs = t
        return model.predict_proba

    return Runtime("framework", dtype, fn, note="scikit-learn predict_proba")


def onnx_model(key, model, path: pathlib.Path):
    """The ONNX conversion of ``model`` (cached at ``path``) as bytes."""
    if path.exists():
        return path.read_bytes()
    if key in ("rf", "hgb", "logreg"):
        from skl2onnx import to_onnx

        onx = to_onnx(
            model,
            np.zeros((1, N_FEATURES), np.float32),
            options={id(model): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    elif key.startswith("xgb"):
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = convert_xgboost(
            model, initial_types=[("input", FloatTensorType([None, N_FEATURES]))], target_opset=15
        )
    elif key.startswith("lgb"):
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        onx = convert_lightgbm(
            model.booster_,
            initial_types=[("input", FloatTensorType([None, N_FEATURES]))],
            zipmap=False,
            target_opset=15,
        )
    elif key == "mlp":
        onx = mlp_onnx(model)
    else:
        raise ValueError(key)
    data = onx.SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def mlp_onnx(model):
    """The MLP as an ONNX graph (Gemm + Relu), written from the module's weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = [m for m in model if hasattr(m, "weight")]
    inits, nodes, prev = [], [], "input"
    for i, lin in enumerate(layers):
        w = lin.weight.detach().numpy().astype(np.float32)
        b = lin.bias.detach().numpy().astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "output" if i == len(layers) - 1 else f"h{i}"
        nodes.append(
            helper.make_node(
                "Gemm", [prev, f"w{i}", f"b{i}"], [f"g{i}" if out != "output" else out], transB=1
            )
        )
        if out != "output":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 2])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def ort_runtime(key, model, workdir_cache) -> Runtime:
    import onnxruntime as ort

    data = onnx_model(key, model, workdir_cache / f"{key}.onnx")
    sessions = {}

    def session(t):
        if t not in sessions:
            so = ort.SessionOptions()
            so.intra_op_num_threads = t
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[t] = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        return sessions[t]

    s1 = session(1)
    inp = s1.get_inputs()[0].name
    outs = [o.name for o in s1.get_outputs()]
    want = outs[-1]  # the probabilities (classifiers: [label, probabilities])

    def fn(t):
        s = session(t)
        return lambda x: s.run([want], {inp: x})[0]

    proba = (lambda o: np.asarray(o, np.float64)) if key == "mlp" else two_cols
    return Runtime(
        "onnxruntime", np.float32, fn, proba=proba, note=f"onnxruntime {ort.__version__}"
    )


def treelite_model(key, model):
    import treelite

    if key in ("rf", "hgb"):
        return treelite.sklearn.import_model(model)
    if key.startswith("xgb"):
        return treelite.frontend.from_xgboost(model.get_booster())
    return treelite.frontend.from_lightgbm(model.booster_)


def tl2cgen_runtime(key, model, cache: pathlib.Path, opts: list[str]) -> Runtime:
    import tl2cgen

    lib = cache / f"{key}-tl2cgen.so"
    if not lib.exists():
        tm = treelite_model(key, model)
        n_trees = tm.num_tree
        params = {"parallel_comp": max(2, min(64, n_trees // 8)), "quantize": 1}
        log(f"  tl2cgen: compiling {key} ({n_trees} trees, gcc -O3 {' '.join(opts)}, {params})")
        t0 = time.perf_counter()
        tmp = cache / f"{key}-tl2cgen.tmp.so"
        tl2cgen.export_lib(
            tm, toolchain="gcc", libpath=str(tmp), params=params, nthread=2, options=opts
        )
        tmp.replace(lib)
        log(f"  tl2cgen: compiled in {time.perf_counter() - t0:.0f} s")
    preds = {}

    def predictor(t):
        if t not in preds:
            preds[t] = tl2cgen.Predictor(str(lib), nthread=t)
        return preds[t]

    p1 = predictor(1)
    dtype = np.float64 if p1.threshold_type == "float64" else np.float32

    def fn(t):
        p = predictor(t)
        return lambda x: p.predict(tl2cgen.DMatrix(x))

    return Runtime(
        "tl2cgen", dtype, fn, note=f"tl2cgen {tl2cgen.__version__}, DMatrix built per call"
    )


def lleaves_runtime(key, model, cache: pathlib.Path) -> Runtime:
    import lleaves

    txt = cache / f"{key}.lgb.txt"
    if not txt.exists():
        model.booster_.save_model(str(txt))
    obj = cache / f"{key}-lleaves.o"
    t0 = time.perf_counter()
    m = lleaves.Model(model_file=str(txt))
    m.compile(cache=str(obj))
    log(f"  lleaves: compiled/loaded {key} in {time.perf_counter() - t0:.0f} s")

    def fn(t):
        return lambda x: m.predict(x, n_jobs=t)

    return Runtime("lleaves", np.float64, fn, note="lleaves")


# --------------------------------------------------------------------------- timing
@contextlib.contextmanager
def thread_limits(t: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=t):
        yield


def time_batches(calls: dict, xs: dict, reps: int, target_s: float) -> dict:
    """Per-call seconds (median over ``reps``) of each callable on its inputs, interleaved:
    every repetition times each runtime once (``k`` calls, ``k`` sized so one timing takes
    about ``target_s``), in an order rotated by the repetition. ``xs[name]`` is a list of
    batches; successive calls take successive batches, cycling."""
    names = list(calls)
    k = {}
    for n in names:  # warm-up and calibration (a second warm-up call when it is fast)
        t0 = time.perf_counter()
        calls[n](xs[n][0])
        dt = time.perf_counter() - t0
        if dt < 0.5:
            t0 = time.perf_counter()
            calls[n](xs[n][-1])
            dt = time.perf_counter() - t0
        dt = max(dt, 1e-7)
        k[n] = max(1, min(100_000, int(target_s / dt)))
    samples = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            f, xb, kk = calls[n], xs[n], k[n]
            batches = itertools.islice(itertools.cycle(xb), kk)
            t0 = time.perf_counter()
            for x in batches:
                f(x)
            samples[n].append((time.perf_counter() - t0) / kk)
    return {n: float(np.median(v)) for n, v in samples.items()}


def time_single_rows(calls: dict, rows: dict, chunks: int, per_chunk: int, budget_s: float) -> dict:
    """Single-row latencies (seconds, every call timed alone, cycling through the rows),
    interleaved in ``chunks`` rounds; slow runtimes get fewer calls (``budget_s`` each)."""
    names = list(calls)
    m = {}
    for n in names:
        f, rs = calls[n], rows[n]
        for i in range(5):
            f(rs[i])
        t0 = time.perf_counter()
        f(rs[0])
        dt = max(time.perf_counter() - t0, 1e-7)
        m[n] = max(10, min(per_chunk, int(budget_s / chunks / dt)))
    lat = {n: [] for n in names}
    pc = time.perf_counter_ns
    for c in range(chunks):
        order = names[c % len(names) :] + names[: c % len(names)]
        for n in order:
            f, rs, out = calls[n], rows[n], lat[n]
            nr = len(rs)
            for i in range(m[n]):
                x = rs[(c * m[n] + i) % nr]
                t0 = pc()
                f(x)
                out.append(pc() - t0)
    return {n: np.asarray(v, dtype=np.float64) * 1e-9 for n, v in lat.items()}


# --------------------------------------------------------------------------- the Rust CLI
def find_cli() -> pathlib.Path | None:
    cands = [os.environ.get("MLE_CLI", "")]
    home = pathlib.Path.home()
    for t in (
        os.environ.get("CARGO_TARGET_DIR", ""),
        str(home / ".cache/mle-bench-target"),
        str(home / ".cache/tgt-compare"),
        str(REPO / "target"),
    ):
        if t:
            cands.append(str(pathlib.Path(t) / "release" / "mle"))
    for c in cands:
        if c and os.access(c, os.X_OK):
            return pathlib.Path(c)
    return None


CLI_LAT = re.compile(r"p50 ([\d.]+) µs, p90 ([\d.]+) µs, p99 ([\d.]+) µs")
CLI_RATE = re.compile(r"runs\): ([\d,]+) rows/s")


def cli_bench(cli, model_path, parquet, threads, iterations) -> dict:
    out = subprocess.run(
        [
            str(cli),
            "bench",
            "-m",
            str(model_path),
            "--input",
            str(parquet),
            "--threads",
            str(threads),
            "--iterations",
            str(iterations),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"mle bench failed: {out.stderr.strip()[:500]}")
    lat = CLI_LAT.search(out.stdout)
    rate = CLI_RATE.search(out.stdout)
    if not lat or not rate:
        raise RuntimeError(f"cannot parse mle bench output: {out.stdout[:500]}")
    return {
        "p50": float(lat.group(1)) * 1e-6,
        "p99": float(lat.group(3)) * 1e-6,
        "rate": float(rate.group(1).replace(",", "")),
    }


def write_parquet(X: np.ndarray, path: pathlib.Path, names: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    tbl = pa.table({n: X[:, i] for i, n in enumerate(names)})
    tmp = path.with_suffix(".tmp")
    pq.write_table(tbl, tmp)
    tmp.replace(path)


# --------------------------------------------------------------------------- one model
def bench_model(key, args, data, workdir, cli, results, checks, notes):
    label, kind = MODELS[key]
    X, y = data[kind]
    n_train = min(args.train_rows, len(X))
    log(f"\n== {key}: {label}")
    model = load_or_train(key, X[:n_train], y[:n_train], n_train, args.train_threads)
    mcache = CACHE / "compiled" / f"{key}-{digest(model)}"
    mcache.mkdir(parents=True, exist_ok=True)

    rts = []
    builders = [
        ("ours", lambda: ours_runtime(key, model, X, workdir)),
        ("ours_f64", lambda: ours_f64_runtime(key, workdir)),
        ("framework", lambda: framework_runtime(key, model)),
        ("onnxruntime", lambda: ort_runtime(key, model, mcache)),
    ]
    if key in TREE_MODELS:
        builders.append(("tl2cgen", lambda: tl2cgen_runtime(key, model, mcache, args.tl2cgen_opts)))
    if key.startswith("lgb"):
        builders.append(("lleaves", lambda: lleaves_runtime(key, model, mcache)))
    for name, b in builders:
        if args.train_only and name in ("ours", "ours_f64"):
            continue
        if name not in ("ours", "framework") and name not in args.runtimes:
            continue
        try:
            rts.append(b())
        except Exception as e:  # a peer that cannot take this model is reported, not fatal
            first = str(e).splitlines()[0][:200] if str(e) else ""
            msg = f"{label}: {name} unavailable ({type(e).__name__}: {first})"
            log("  " + msg)
            notes.append(msg)
            if name == "ours":
                raise
    if args.train_only:
        return
    xs = {np.float32: X, np.float64: np.ascontiguousarray(X, dtype=np.float64)}

    # Identical predictions: ours against the framework on every row.
    by = {r.name: r for r in rts}
    ours, fw = by["ours"], by["framework"]
    with thread_limits(2):
        po = ours.proba(ours.fn(2)(xs[ours.dtype]))
        pf = fw.proba(fw.fn(2)(xs[fw.dtype]))
    chk = {
        "rows": int(len(X)),
        "mismatches": int((po.argmax(1) != pf.argmax(1)).sum()),
        "max_abs_diff": float(np.max(np.abs(po - pf))),
    }
    # Only the runtimes asked for are timed (the framework is still built for the check).
    rts = [r for r in rts if r.name in args.runtimes]
    for r in rts:  # and the peers, for reference
        if r.name in ("ours", "framework"):
            continue
        if r.name == "ours_f64":  # the same model: bit for bit what it gives on float32
            with thread_limits(2):
                p64 = r.proba(r.fn(2)(xs[np.float64]))
            chk["ours_f64_differs_from_f32"] = int(np.sum(p64 != po))
            continue
        with thread_limits(2):
            pr = r.proba(r.fn(2)(xs[r.dtype][:100_000]))
        chk[f"{r.name}_mismatches"] = int((pr.argmax(1) != pf[:100_000].argmax(1)).sum())
        chk[f"{r.name}_max_abs_diff"] = float(np.max(np.abs(pr - pf[:100_000])))
    checks[key] = chk
    log(f"  check: {chk}")

    # Rust CLI: parquet inputs of the batch sizes >= 100.
    cli_model = workdir / f"{key}.mle"
    for t in args.threads:
        with thread_limits(t):
            calls = {r.name: r.fn(t) for r in rts}
            for b in args.batches:
                if b > len(X):
                    continue
                if b == 1:
                    rows = {
                        r.name: [xs[r.dtype][i : i + 1] for i in range(min(len(X), 4096))]
                        for r in rts
                    }
                    lat = time_single_rows(
                        calls,
                        rows,
                        chunks=args.reps,
                        per_chunk=args.lat_calls // args.reps,
                        budget_s=args.lat_budget,
                    )
                    for n, v in lat.items():
                        results.append(
                            {
                                "model": key,
                                "batch": 1,
                                "threads": t,
                                "runtime": n,
                                "rate": 1.0 / float(np.median(v)),
                                "p50": float(np.median(v)),
                                "p99": float(np.percentile(v, 99)),
                                "calls": int(len(v)),
                            }
                        )
                else:
                    reps = args.reps if b < 1_000_000 else 3
                    nb = len(X) // b  # distinct batches, in order (views, no copies)
                    xb = {
                        r.name: [xs[r.dtype][i * b : (i + 1) * b] for i in range(nb)] for r in rts
                    }
                    per = time_batches(calls, xb, reps=reps, target_s=args.target_s)
                    for n, s in per.items():
                        results.append(
                            {
                                "model": key,
                                "batch": b,
                                "threads": t,
                                "runtime": n,
                                "rate": b / s,
                                "seconds": s,
                            }
                        )
                log(
                    f"  timed batch {b:,} threads {t}: "
                    + ", ".join(
                        f"{r['runtime']} {fmt_rate(r['rate'])}"
                        for r in results
                        if r["model"] == key and r["batch"] == b and r["threads"] == t
                    )
                )
    if cli is not None:
        import mle_runtime as mle

        names = mle.load_model(str(cli_model)).feature_names
        for t in args.threads:
            for b in args.batches:
                if b < 100 or b > len(X):
                    continue
                pq = CACHE / "parquet" / f"{kind}-{b}-{'_'.join(names[:2])}.parquet"
                pq.parent.mkdir(parents=True, exist_ok=True)
                write_parquet(X[:b], pq, names)
                try:
                    r = cli_bench(cli, cli_model, pq, t, args.lat_calls)
                except Exception as e:
                    notes.append(f"{label}: mle bench failed ({e})")
                    log("  " + notes[-1])
                    continue
                results.append(
                    {
                        "model": key,
                        "batch": b,
                        "threads": t,
                        "runtime": "ours_cli",
                        "rate": r["rate"],
                    }
                )
                if b == min(x for x in args.batches if x >= 100):
                    results.append(
                        {
                            "model": key,
                            "batch": 1,
                            "threads": t,
                            "runtime": "ours_cli",
                            "rate": 1.0 / r["p50"],
                            "p50": r["p50"],
                            "p99": r["p99"],
                        }
                    )
        log(f"  mle bench done for {key}")


# --------------------------------------------------------------------------- report
def fmt_rate(r: float) -> str:
    if r >= 1e6:
        return f"{r / 1e6:.2f}M"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k"
    return f"{r:.0f}"


def fmt_us(s: float) -> str:
    us = s * 1e6
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        d = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = d.get("Flags", "")
        simd = [f for f in ("avx2", "fma", "avx512f") if f" {f}" in f" {flags} "]
        return (
            f"{d.get('Model name', '?').strip()}, {d.get('CPU(s)', '?').strip()} CPUs, "
            f"{'/'.join(simd) or 'no AVX2'}"
        )
    except OSError:
        return platform.processor() or "?"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in (
        "mle-runtime",
        "scikit-learn",
        "xgboost-cpu",
        "lightgbm",
        "torch",
        "onnxruntime",
        "skl2onnx",
        "onnxmltools",
        "treelite",
        "tl2cgen",
        "lleaves",
        "llvmlite",
        "numpy",
    ):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def build_desc() -> str:
    f = pathlib.Path(sys.prefix) / "mle-build.txt"
    return f.read_text().strip() if f.exists() else "an unrecorded tree"


def report(args, results, checks, notes, started, load_before, load_after, cli) -> str:
    by = {(r["model"], r["batch"], r["threads"], r["runtime"]): r for r in results}
    cli_models = sorted({r["model"] for r in results if r["runtime"] == "ours_cli"})
    lines = [
        "### Side by side with peers: results",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- command: `{args.command}`",
        f"- CPU: {cpu_name()}; load average (1 min) {load_before:.2f} before, "
        f"{load_after:.2f} after"
        + (
            ""
            if max(load_before, load_after) < 2.5
            else " — **taken under load: figures are noisy**"
        ),
        f"- data: make_classification, {N_FEATURES} float features, {args.rows:,} rows "
        f"(models trained on {min(args.train_rows, args.rows):,}); median of {args.reps} "
        "interleaved repetitions (3 at batch 1,000,000)",
        f"- versions: {versions()}; mle_runtime built (release) from {build_desc()}",
        "- Rust `mle bench`: "
        + (
            f"{cli}, models: {', '.join(cli_models) or 'none'}"
            if cli
            else "release binary not found (`cargo build --release -p mle-cli`): column empty"
        ),
        "",
        "Throughput in rows/s (batch 1: 1 / median latency). `ratio` = ours (Python) / fastest "
        "peer; above 1 we are ahead.",
        "",
        "| model | batch | thr | ours (Py) | ours f64 (Py) | ours (Rust CLI) | framework "
        "| onnxruntime | tl2cgen | lleaves | fastest peer | ratio | ratio f64 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key in args.models:
        for t in args.threads:
            for b in args.batches:
                row = {c: by.get((key, b, t, c)) for c in COLUMNS}
                if row["ours"] is None:
                    continue
                peers = {c: row[c]["rate"] for c in PEERS if row[c]}
                best = max(peers, key=peers.get) if peers else None
                ratio = row["ours"]["rate"] / peers[best] if best else float("nan")
                r64 = (row["ours_f64"]["rate"] / peers[best] if best and row["ours_f64"]
                       else float("nan"))
                cells = [fmt_rate(row[c]["rate"]) if row[c] else "—" for c in COLUMNS]

                def bold(r):
                    return f"**{r:.2f}**" if r >= 1 else f"{r:.2f}"

                lines.append(
                    f"| {MODELS[key][0]} | {b:,} | {t} | "
                    + " | ".join(cells)
                    + f" | {best or '—'} | {bold(ratio)} | {bold(r64)} |"
                )
    lines += [
        "",
        "Single-row latency, 1 thread, µs: median / p99 (Python: the call from Python, "
        "conversion included; Rust CLI: `Session::predict_row`). `ratio` = fastest peer's "
        "median / ours (Python).",
        "",
        "| model | ours (Py) | ours f64 (Py) | ours (Rust CLI) | framework | onnxruntime "
        "| tl2cgen | lleaves | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in args.models:
        row = {c: by.get((key, 1, 1, c)) for c in COLUMNS}
        if row["ours"] is None:
            continue
        cells = [
            f"{fmt_us(row[c]['p50'])} / {fmt_us(row[c]['p99'])}" if row[c] else "—" for c in COLUMNS
        ]
        peers = [row[c]["p50"] for c in PEERS if row[c]]
        ratio = min(peers) / row["ours"]["p50"] if peers else float("nan")
        lines.append(f"| {MODELS[key][0]} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    lines += [
        "",
        "Identical predictions (ours against the framework on every row; peers on the first "
        "100,000 rows): differing class decisions and max |Δ probability| (the MLP: logits).",
        "",
        "| model | rows | ours: class mismatches | ours: max abs diff | onnxruntime | tl2cgen "
        "| lleaves |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in args.models:
        c = checks.get(key)
        if not c:
            continue
        peer = [
            f"{c[p + '_mismatches']} / {c[p + '_max_abs_diff']:.1e}"
            if p + "_mismatches" in c
            else "—"
            for p in ("onnxruntime", "tl2cgen", "lleaves")
        ]
        lines.append(
            f"| {MODELS[key][0]} | {c['rows']:,} | {c['mismatches']} | "
            f"{c['max_abs_diff']:.1e} | " + " | ".join(peer) + " |"
        )
    big = max([b for b in args.batches if b <= args.rows] or [0])
    if len(args.threads) > 1:
        t1, t2 = args.threads[0], args.threads[-1]
        lines += [
            "",
            f"Thread scaling at batch {big:,}: rows/s with {t2} threads / with {t1}.",
            "",
            "| model | ours (Py) | ours (Rust CLI) | framework | onnxruntime | tl2cgen | lleaves |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key in args.models:
            cells = []
            for c in COLUMNS:
                a, b = by.get((key, big, t1, c)), by.get((key, big, t2, c))
                cells.append(f"{b['rate'] / a['rate']:.2f}" if a and b else "—")
            if any(x != "—" for x in cells):
                lines.append(f"| {MODELS[key][0]} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of data (and largest batch)")
    ap.add_argument(
        "--train-rows", type=int, default=None, help="rows to train on (default --rows)"
    )
    ap.add_argument("--train-threads", type=int, default=2, help="threads for training")
    ap.add_argument("--quick", action="store_true", help="20,000 rows, 3 repetitions: a smoke run")
    ap.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS)
    )
    ap.add_argument("--batches", default="1,100,10000,1000000")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=7, help="interleaved repetitions")
    ap.add_argument("--target-s", type=float, default=0.05, help="seconds per timing sample")
    ap.add_argument("--lat-calls", type=int, default=2000, help="single-row calls per runtime")
    ap.add_argument(
        "--lat-budget", type=float, default=3.0, help="seconds of single-row calls per runtime"
    )
    ap.add_argument("--tl2cgen-opts", default="-march=native", help="extra gcc options for tl2cgen")
    ap.add_argument(
        "--train-only", action="store_true", help="train, convert and compile; no timing"
    )
    ap.add_argument("--no-cli", action="store_true", help="skip the Rust mle bench column")
    ap.add_argument(
        "--runtimes",
        default="ours," + ",".join(PEERS),
        help="comma-separated runtimes to time (ours is always timed; the framework is always "
        "built, to check ours against it)",
    )
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    args.command = "benches/compare/run.sh " + " ".join(sys.argv[1:])
    if args.quick:
        args.rows = min(args.rows, 20_000)
        args.reps = min(args.reps, 3)
        args.lat_calls = min(args.lat_calls, 300)
        args.lat_budget = min(args.lat_budget, 0.5)
        args.target_s = min(args.target_s, 0.01)
    args.train_rows = args.train_rows or args.rows
    args.models = [m for m in args.models.split(",") if m]
    for m in args.models:
        if m not in MODELS:
            ap.error(f"unknown model {m!r} (known: {', '.join(MODELS)})")
    args.runtimes = {"ours", "ours_f64"} | {r for r in args.runtimes.split(",") if r}
    for r in args.runtimes - {"ours", "ours_f64", *PEERS}:
        ap.error(f"unknown runtime {r!r} (known: ours, {', '.join(PEERS)})")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.threads = [int(t) for t in args.threads.split(",")]
    args.tl2cgen_opts = args.tl2cgen_opts.split()

    warnings.filterwarnings("ignore")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    cli = None if args.no_cli else find_cli()
    notes = []
    data = {}
    kinds = {MODELS[m][1] for m in args.models}
    for k in sorted(kinds):
        log(f"data {k}: {args.rows:,} rows")
        data[k] = make_data(args.rows, k)
    results, checks = [], {}

    def write(final: bool) -> str:
        """Writes the report of the models done so far (after each model, so that a run cut
        short still leaves its figures)."""
        load_after = os.getloadavg()[0]
        text = report(args, results, checks, notes, started, load_before, load_after, cli)
        if not final:
            text += f"\n(partial: {len(checks)} of {len(args.models)} models done)\n"
        pathlib.Path(args.out).write_text(text)
        blob = {
            "command": args.command,
            "date": started.isoformat(),
            "cpu": cpu_name(),
            "load": [load_before, load_after],
            "results": results,
            "checks": checks,
            "notes": notes,
        }
        pathlib.Path(args.out).with_suffix(".json").write_text(json.dumps(blob, indent=1))
        return text

    with tempfile.TemporaryDirectory(prefix="mle-compare-") as tmp:
        for key in args.models:
            if cli is None and not args.no_cli:
                cli = find_cli()  # a release build finishing during the run is picked up
            bench_model(key, args, data, pathlib.Path(tmp), cli, results, checks, notes)
            if not args.train_only:
                write(final=False)
    if args.train_only:
        log("trained, converted and compiled; no timing (--train-only)")
        return
    print(write(final=True))


if __name__ == "__main__":
    main()
