#!/usr/bin/env python3
"""Regenerates the importer fixtures under tests/fixtures/{xgboost,lightgbm}/.

Run with the project venv:  $HOME/.cache/mle-venv/bin/python scripts/make_fixtures.py

Each model is trained on one of scikit-learn's bundled datasets (small, shallow, few trees)
and saved in the framework's own formats (XGBoost: `NAME.json` and `NAME.ubj`; LightGBM:
`NAME.txt`). Beside it, `NAME.expected.json` holds the rows to predict (NaN written as
null) and the framework's own predictions at full precision:

- `margin`: raw scores, `[n_rows][n_targets]` (XGBoost `output_margin=True`, LightGBM
  `raw_score=True`);
- `output`: the transformed prediction (`[n_rows][1]` for regressors and rankers, the class
  probabilities `[n_rows][n_classes]` for classifiers, binary as `[1 - p, p]`);
- `label`: the predicted class index (classifiers only);
- `*_f32`: the same for the rows rounded to float32, present only when they differ.

The rows are test rows (with injected NaNs where the model was trained with them) plus
"edge" rows that put a feature exactly on a split threshold and just above it, so the
comparison operator and its precision are exercised.
"""

import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XGB_DIR = os.path.join(ROOT, "tests", "fixtures", "xgboost")
LGB_DIR = os.path.join(ROOT, "tests", "fixtures", "lightgbm")
N_TEST_ROWS = 30
MAX_EDGE_THRESHOLDS = 10
rng = np.random.default_rng(42)


def dataset(name, nan_frac=0.0, zero_frac=0.0):
    loader = {"diabetes": load_diabetes, "breast_cancer": load_breast_cancer, "iris": load_iris}[name]
    X, y = loader(return_X_y=True)
    X = X.astype(np.float64)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    if nan_frac:
        X[rng.random(X.shape) < nan_frac] = np.nan
    if zero_frac:
        X[rng.random(X.shape) < zero_frac] = 0.0
    return X, y


def with_categoricals(X, cats):
    """Replaces columns `j` of `cats = ((j, k), ...)` by `k` integer category codes (binned values)."""
    X = X.copy()
    for j, k in cats:
        col = X[:, j]
        finite = np.isfinite(col)
        ranks = np.full(col.shape, np.nan)
        order = np.argsort(np.argsort(col[finite]))
        ranks[finite] = np.floor(order * k / finite.sum())
        # Scramble the code order so a partition split is not a threshold split.
        perm = rng.permutation(k)
        codes = np.full(col.shape, np.nan)
        codes[finite] = perm[ranks[finite].astype(int)]
        X[:, j] = codes
    return X


def json_rows(a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def edge_rows(base, thresholds, f32):
    """Rows with a feature exactly on a threshold, and just above (and below for f32)."""
    rows = []
    seen = set()
    for f, t in thresholds:
        if (f, t) in seen or not np.isfinite(t):
            continue
        seen.add((f, t))
        if len(seen) > MAX_EDGE_THRESHOLDS:
            break
        b = base[len(rows) % len(base)].copy()
        vals = [t, np.nextafter(t, np.inf)]
        if f32:
            t32 = np.float32(t)
            vals += [float(np.nextafter(t32, np.float32(np.inf))), float(np.nextafter(t32, np.float32(-np.inf)))]
        for v in vals:
            r = b.copy()
            r[f] = v
            rows.append(r)
    return np.array(rows) if rows else np.zeros((0, base.shape[1]))


def xgb_thresholds(booster):
    d = json.loads(booster.save_raw("json"))
    out = []
    gb = d["learner"]["gradient_booster"]
    model = gb["gbtree"]["model"] if gb["name"] == "dart" else gb["model"]
    for t in model.get("trees", []):
        for i, lc in enumerate(t["left_children"]):
            if lc != -1 and t["split_type"][i] == 0:
                out.append((t["split_indices"][i], float(np.float32(t["split_conditions"][i]))))
    return out


def lgb_thresholds(text):
    out = []
    feats = dtypes = None
    for line in text.splitlines():
        if line.startswith("split_feature="):
            feats = [int(v) for v in line.split("=", 1)[1].split()]
        elif line.startswith("decision_type="):
            dtypes = [int(v) for v in line.split("=", 1)[1].split()]
        elif line.startswith("threshold=") and feats is not None:
            ths = [float(v) for v in line.split("=", 1)[1].split()]
            pending = list(zip(feats, ths))
        elif line.startswith("left_child=") and feats is not None:
            out += [(f, t) for (f, t), d in zip(pending, dtypes) if d & 1 == 0]
            feats = dtypes = None
    return out


def write_expected(path, info, rows, pred64, pred32):
    doc = dict(info)
    doc["n_features"] = int(rows.shape[1])
    doc["rows"] = json_rows(rows)
    for k, v in pred64.items():
        doc[k] = v.tolist() if k == "label" else json_rows(v)
    for k, v in pred32.items():
        if not np.array_equal(np.asarray(v), np.asarray(pred64[k]), equal_nan=True):
            doc[k + "_f32"] = v.tolist() if k == "label" else json_rows(v)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


# ----------------------------------------------------------------------------- XGBoost


def xgb_predict(booster, X, task, objective, cat_features):
    types = ["c" if j in cat_features else "q" for j in range(X.shape[1])] if cat_features else None
    names = booster.feature_names
    dm = xgb.DMatrix(X, feature_types=types, feature_names=names, enable_categorical=bool(cat_features))
    margin = booster.predict(dm, output_margin=True)
    if margin.ndim == 1:
        margin = margin[:, None]
    out = {"margin": margin}
    if task == "regression" or task == "ranking":
        out["output"] = booster.predict(dm)
    elif task == "binary":
        if objective == "binary:logitraw":
            # The booster's output is the margin itself: the importer maps it through a sigmoid.
            p = 1.0 / (1.0 + np.exp(-margin[:, 0].astype(np.float64)))
        else:
            p = booster.predict(dm).astype(np.float64)
        out["output"] = np.stack([1.0 - p, p], axis=1)
        out["label"] = (p > 0.5).astype(np.int64)
    else:
        m = margin.astype(np.float64)
        e = np.exp(m - m.max(axis=1, keepdims=True))
        prob = booster.predict(dm) if objective == "multi:softprob" else e / e.sum(axis=1, keepdims=True)
        out["output"] = prob
        out["label"] = np.argmax(prob, axis=1).astype(np.int64)
    return out


def xgb_case(name, data, task, params, n_estimators=4, nan_frac=0.1, cat=(), rank=False, rf=False,
             two_targets=False):
    X, y = dataset(data, nan_frac=nan_frac)
    if two_targets:
        y = np.stack([y, np.sqrt(y)], axis=1)
    if cat:
        X = with_categoricals(X, cat)
    if task == "binary" or task == "multiclass":
        y = y.astype(int)
    if rank:
        y = np.minimum((y / 70).astype(int), 4)
    n_train = len(y) - N_TEST_ROWS
    Xtr, ytr, Xte = X[:n_train], y[:n_train], X[n_train:]
    cat_features = {j for j, _ in cat}
    feature_names = [f"x{j}" for j in range(X.shape[1])] if cat or data == "diabetes" else None
    types = ["c" if j in cat_features else "q" for j in range(X.shape[1])] if cat else None
    dtrain = xgb.DMatrix(Xtr, ytr, feature_types=types, feature_names=feature_names,
                         enable_categorical=bool(cat),
                         qid=(np.arange(n_train) // 25) if rank else None)
    p = {"max_depth": 3, "eta": 0.3, "tree_method": "hist", "seed": 7, **params}
    if cat:
        p["max_cat_to_onehot"] = 1
    rounds = 1 if rf else n_estimators
    booster = xgb.train(p, dtrain, rounds)
    booster.save_model(os.path.join(XGB_DIR, name + ".json"))
    booster.save_model(os.path.join(XGB_DIR, name + ".ubj"))
    rows = np.vstack([Xte, edge_rows(Xte, xgb_thresholds(booster), f32=True)])
    if cat:
        extra = rows[:3].copy()
        j = cat[0][0]
        extra[0, j], extra[1, j], extra[2, j] = -1.0, 1000.0, 2.7  # negative, unseen, fractional
        rows = np.vstack([rows, extra])
    objective = p["objective"]
    pred64 = xgb_predict(booster, rows, task, objective, cat_features)
    pred32 = xgb_predict(booster, rows.astype(np.float32).astype(np.float64), task, objective, cat_features)
    info = {"framework": "xgboost", "framework_version": xgb.__version__, "objective": objective, "task": task}
    if task in ("binary", "multiclass"):
        info["n_classes"] = int(len(np.unique(y)))
    write_expected(os.path.join(XGB_DIR, name + ".expected.json"), info, rows, pred64, pred32)


def make_xgboost():
    os.makedirs(XGB_DIR, exist_ok=True)
    xgb_case("reg_squarederror", "diabetes", "regression", {"objective": "reg:squarederror"})
    xgb_case("reg_pseudohuber", "diabetes", "regression", {"objective": "reg:pseudohubererror", "huber_slope": 50.0})
    xgb_case("reg_absoluteerror", "diabetes", "regression", {"objective": "reg:absoluteerror"})
    xgb_case("reg_logistic", "breast_cancer", "regression", {"objective": "reg:logistic"})
    xgb_case("binary_logistic", "breast_cancer", "binary", {"objective": "binary:logistic"})
    xgb_case("binary_logitraw", "breast_cancer", "binary", {"objective": "binary:logitraw"})
    xgb_case("binary_base_score", "breast_cancer", "binary", {"objective": "binary:logistic", "base_score": 0.3})
    xgb_case("multi_softprob", "iris", "multiclass", {"objective": "multi:softprob", "num_class": 3})
    xgb_case("multi_softmax", "iris", "multiclass", {"objective": "multi:softmax", "num_class": 3})
    xgb_case("multi_parallel", "iris", "multiclass",
             {"objective": "multi:softprob", "num_class": 3, "num_parallel_tree": 2, "subsample": 0.8})
    xgb_case("rf_binary", "breast_cancer", "binary",
             {"objective": "binary:logistic", "num_parallel_tree": 4, "subsample": 0.7,
              "colsample_bynode": 0.5, "eta": 1.0}, rf=True)
    xgb_case("multi_quantile", "diabetes", "regression",
             {"objective": "reg:quantileerror", "quantile_alpha": [0.2, 0.5, 0.8]})
    xgb_case("multi_target", "diabetes", "regression", {"objective": "reg:squarederror"}, two_targets=True)
    xgb_case("count_poisson", "diabetes", "regression", {"objective": "count:poisson"})
    xgb_case("reg_gamma", "diabetes", "regression", {"objective": "reg:gamma"})
    xgb_case("reg_tweedie", "diabetes", "regression", {"objective": "reg:tweedie", "tweedie_variance_power": 1.3})
    xgb_case("rank_ndcg", "diabetes", "ranking", {"objective": "rank:ndcg"}, rank=True)
    xgb_case("rank_pairwise", "diabetes", "ranking", {"objective": "rank:pairwise"}, rank=True)
    xgb_case("dart", "diabetes", "regression",
             {"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.5, "skip_drop": 0.0})
    xgb_case("cat_regression", "diabetes", "regression", {"objective": "reg:squarederror"}, cat=((2, 10), (8, 6)))
    xgb_case("cat_binary", "breast_cancer", "binary", {"objective": "binary:logistic"}, cat=((22, 12), (27, 5), (0, 40)))
    # An unsupported model: a linear booster.
    X, y = dataset("diabetes")
    b = xgb.train({"booster": "gblinear"}, xgb.DMatrix(X[:100], y[:100]), 2)
    b.save_model(os.path.join(XGB_DIR, "gblinear.json"))
    # Another: vector-leaf trees (one tree for all targets).
    b = xgb.train({"multi_strategy": "multi_output_tree", "tree_method": "hist", "max_depth": 2},
                  xgb.DMatrix(X[:100], np.stack([y[:100], np.sqrt(y[:100])], axis=1)), 1)
    b.save_model(os.path.join(XGB_DIR, "vector_leaf.json"))


# ----------------------------------------------------------------------------- LightGBM


def lgb_predict(booster, X, task):
    margin = booster.predict(X, raw_score=True)
    if margin.ndim == 1:
        margin = margin[:, None]
    out = {"margin": margin}
    pred = booster.predict(X)
    if task in ("regression", "ranking"):
        out["output"] = pred
    elif task == "binary":
        out["output"] = np.stack([1.0 - pred, pred], axis=1)
        out["label"] = (pred > 0.5).astype(np.int64)
    else:
        out["output"] = pred
        out["label"] = np.argmax(pred, axis=1).astype(np.int64)
    return out


def lgb_case(name, data, task, params, n_estimators=5, nan_frac=0.1, zero_frac=0.0, cat=(), rank=False):
    X, y = dataset(data, nan_frac=nan_frac, zero_frac=zero_frac)
    if cat:
        X = with_categoricals(X, cat)
    if rank:
        y = np.minimum((y / 70).astype(int), 4)
    if params.get("objective") in ("poisson", "gamma", "tweedie", "mape"):
        y = y / 100.0
    n_train = len(y) - N_TEST_ROWS
    Xtr, ytr, Xte = X[:n_train], y[:n_train], X[n_train:]
    p = {"num_leaves": 6, "learning_rate": 0.3, "verbose": -1, "min_data_in_leaf": 5, "seed": 7,
         "deterministic": True, "min_data_per_group": 5, "cat_smooth": 1.0, "max_cat_to_onehot": 2, "cat_l2": 1.0,
         **params}
    ds = lgb.Dataset(Xtr, ytr, categorical_feature=[j for j, _ in cat] if cat else "auto",
                     group=[25] * (n_train // 25) + ([n_train % 25] if n_train % 25 else []) if rank else None,
                     free_raw_data=False)
    booster = lgb.train(p, ds, n_estimators)
    text = booster.model_to_string()
    with open(os.path.join(LGB_DIR, name + ".txt"), "w") as f:
        f.write(text)
    rows = np.vstack([Xte, edge_rows(Xte, lgb_thresholds(text), f32=False)])
    if cat:
        extra = rows[:3].copy()
        j = cat[0][0]
        extra[0, j], extra[1, j], extra[2, j] = -1.0, 1000.0, 2.7
        rows = np.vstack([rows, extra])
    if zero_frac:
        extra = rows[:2].copy()
        extra[0, :] = 0.0
        extra[1, :] = -0.0
        rows = np.vstack([rows, extra])
    pred64 = lgb_predict(booster, rows, task)
    pred32 = lgb_predict(booster, rows.astype(np.float32).astype(np.float64), task)
    objective = text.split("objective=", 1)[1].split("\n", 1)[0]
    info = {"framework": "lightgbm", "framework_version": lgb.__version__, "objective": objective, "task": task}
    if task in ("binary", "multiclass"):
        info["n_classes"] = int(len(np.unique(y)))
    write_expected(os.path.join(LGB_DIR, name + ".expected.json"), info, rows, pred64, pred32)


def make_lightgbm():
    os.makedirs(LGB_DIR, exist_ok=True)
    lgb_case("regression", "diabetes", "regression", {"objective": "regression"})
    lgb_case("regression_l1", "diabetes", "regression", {"objective": "regression_l1"})
    lgb_case("huber", "diabetes", "regression", {"objective": "huber", "alpha": 20.0})
    lgb_case("fair", "diabetes", "regression", {"objective": "fair"})
    lgb_case("quantile", "diabetes", "regression", {"objective": "quantile", "alpha": 0.3})
    lgb_case("mape", "diabetes", "regression", {"objective": "mape"})
    lgb_case("zero_as_missing", "diabetes", "regression", {"objective": "regression", "zero_as_missing": True},
             nan_frac=0.05, zero_frac=0.15)
    lgb_case("no_missing", "diabetes", "regression", {"objective": "regression", "use_missing": False})
    lgb_case("binary", "breast_cancer", "binary", {"objective": "binary"})
    lgb_case("binary_sigmoid", "breast_cancer", "binary", {"objective": "binary", "sigmoid": 0.6})
    lgb_case("multiclass", "iris", "multiclass", {"objective": "multiclass", "num_class": 3})
    lgb_case("multiclassova", "iris", "multiclass", {"objective": "multiclassova", "num_class": 3, "sigmoid": 1.5})
    lgb_case("poisson", "diabetes", "regression", {"objective": "poisson"})
    lgb_case("gamma", "diabetes", "regression", {"objective": "gamma"})
    lgb_case("tweedie", "diabetes", "regression", {"objective": "tweedie", "tweedie_variance_power": 1.2})
    lgb_case("xentropy", "breast_cancer", "regression", {"objective": "cross_entropy"})
    lgb_case("lambdarank", "diabetes", "ranking", {"objective": "lambdarank"}, rank=True)
    lgb_case("rank_xendcg", "diabetes", "ranking", {"objective": "rank_xendcg"}, rank=True)
    lgb_case("rf_binary", "breast_cancer", "binary",
             {"objective": "binary", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1,
              "feature_fraction": 0.6})
    lgb_case("rf_multiclass", "iris", "multiclass",
             {"objective": "multiclass", "num_class": 3, "boosting": "rf", "bagging_fraction": 0.7,
              "bagging_freq": 1})
    lgb_case("cat_regression", "diabetes", "regression", {"objective": "regression"}, cat=((2, 10), (8, 6)))
    lgb_case("cat_binary", "breast_cancer", "binary", {"objective": "binary"}, cat=((22, 12), (27, 5), (0, 40)))
    # An unsupported model: linear trees.
    X, y = dataset("diabetes", nan_frac=0.0)
    b = lgb.train({"objective": "regression", "linear_tree": True, "num_leaves": 3, "verbose": -1},
                  lgb.Dataset(X, y), 2)
    with open(os.path.join(LGB_DIR, "linear_tree.txt"), "w") as f:
        f.write(b.model_to_string())


if __name__ == "__main__":
    which = sys.argv[1:] or ["xgboost", "lightgbm"]
    if "xgboost" in which:
        make_xgboost()
    if "lightgbm" in which:
        make_lightgbm()
    total = sum(os.path.getsize(os.path.join(d, f)) for d in (XGB_DIR, LGB_DIR) if os.path.isdir(d)
                for f in os.listdir(d))
    print(f"fixtures written: {total / 1024:.0f} KiB")
