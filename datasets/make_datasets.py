"""Make the small sample data and example models shipped in `datasets/`.

Run from the repository root with the project venv:

    $HOME/.cache/mle-venv/bin/python datasets/make_datasets.py

Writes, for scikit-learn's bundled breast-cancer, iris, wine and diabetes data:

- `datasets/<name>.parquet`: the features (snake_case column names) and the target, with a
  few missing values (Parquet nulls) injected into the features (seeded, reproducible);
- `datasets/models/<name>.{json,txt}`: an XGBoost (JSON) or LightGBM (text) model trained on it;
- `datasets/models/<name>.mle`: that model converted by `mle convert` (set `MLE_BIN` to the
  `mle` binary, otherwise `cargo run -p mle-cli` is used);
- `datasets/models/<name>.expected.parquet`: the framework's own predictions on the parquet
  file (missing values included): `prediction` and, for classifiers, `proba_0`, `proba_1`, ...
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb
from sklearn import datasets as skd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "datasets"
MODELS = OUT / "models"
SEED = 7
MISSING_FRACTION = 0.02


def snake(name: str) -> str:
    s = re.sub(r"\(.*?\)", "", name)
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s


def load(name: str) -> tuple[pd.DataFrame, np.ndarray, str, list[str] | None]:
    loader = {
        "breast_cancer": skd.load_breast_cancer,
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "diabetes": skd.load_diabetes,
    }[name]
    d = loader()
    cols = [snake(c) for c in d.feature_names]
    x = pd.DataFrame(np.asarray(d.data, dtype=np.float64), columns=cols)
    target = {
        "breast_cancer": "malignant",
        "iris": "species",
        "wine": "cultivar",
        "diabetes": "progression",
    }[name]
    names = list(d.target_names) if hasattr(d, "target_names") and name != "diabetes" else None
    y = np.asarray(d.target)
    if name == "breast_cancer":
        # scikit-learn codes malignant as 0; make 1 = malignant, the usual positive class.
        y = 1 - y
        names = None
    return x, y, target, names


def inject_missing(x: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    mask = rng.random(x.shape) < MISSING_FRACTION
    return mask


def write_parquet(path: Path, x: pd.DataFrame, mask: np.ndarray, target: str, y, labels) -> None:
    arrays = [pa.array(x[c].to_numpy(), mask=mask[:, j]) for j, c in enumerate(x.columns)]
    names = list(x.columns)
    if labels is not None:
        arrays.append(pa.array([str(labels[i]) for i in y]))
    elif np.issubdtype(np.asarray(y).dtype, np.integer):
        arrays.append(pa.array(np.asarray(y, dtype=np.int64)))
    else:
        arrays.append(pa.array(np.asarray(y, dtype=np.float64)))
    names.append(target)
    pq.write_table(pa.table(arrays, names=names), path, compression="zstd")


def train(name: str, x: pd.DataFrame, y: np.ndarray) -> tuple[Path, str, object]:
    if name == "breast_cancer":
        m = xgb.XGBClassifier(n_estimators=40, max_depth=4, learning_rate=0.2, random_state=SEED)
        m.fit(x, y)
        path = MODELS / f"{name}.json"
        m.save_model(path)
        return path, "xgboost", m
    if name == "wine":
        m = xgb.XGBClassifier(n_estimators=30, max_depth=3, learning_rate=0.3, random_state=SEED)
        m.fit(x, y)
        path = MODELS / f"{name}.json"
        m.save_model(path)
        return path, "xgboost", m
    if name == "iris":
        m = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, min_child_samples=5,
                               random_state=SEED, verbose=-1)
        m.fit(x, y)
    else:
        m = lgb.LGBMRegressor(n_estimators=60, num_leaves=15, learning_rate=0.1,
                              random_state=SEED, verbose=-1)
        m.fit(x, y)
    path = MODELS / f"{name}.txt"
    m.booster_.save_model(path)
    return path, "lightgbm", m


def mle_command() -> list[str]:
    if os.environ.get("MLE_BIN"):
        return [os.environ["MLE_BIN"]]
    return ["cargo", "run", "-q", "-p", "mle-cli", "--"]


def main() -> int:
    MODELS.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name in ["breast_cancer", "iris", "wine", "diabetes"]:
        x, y, target, labels = load(name)
        mask = inject_missing(x, rng)
        write_parquet(OUT / f"{name}.parquet", x, mask, target, y, labels)
        # Train on the complete data; predict on the data with its missing values.
        src, fmt, model = train(name, x, y)
        xm = x.mask(mask)
        expected: dict[str, np.ndarray] = {}
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(xm)
            expected["prediction"] = np.asarray(model.predict(xm), dtype=np.int64)
            for k in range(proba.shape[1]):
                expected[f"proba_{k}"] = proba[:, k].astype(np.float64)
        else:
            expected["prediction"] = np.asarray(model.predict(xm), dtype=np.float64)
        pq.write_table(pa.table(expected), MODELS / f"{name}.expected.parquet")
        dst = MODELS / f"{name}.mle"
        cmd = mle_command() + ["convert", str(src), str(dst), "--from", fmt]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
