"""Models and Parquet data shared by the DuckDB and Spark tests: a numeric regressor, a typed
classifier with a string category column, and a multiclass classifier with string labels, each
written to ``.mle`` and scored on a Parquet file with NaN, NULL and unseen categories. Every
table carries a ``row_id`` column (not a feature) so engines that reorder rows can be compared
with ``rt.predict`` row by row."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mle_runtime as mle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

#: rows per Parquet file: the data sets repeated with fresh NaN/NULL patterns, enough for
#: several DuckDB vectors (2048 rows) and several Arrow batches per Spark partition.
N_ROWS = 6000


@dataclass
class Case:
    model: str  # the .mle path
    parquet: str  # the data
    table: pa.Table  # the data as read back from the Parquet file
    rt: mle.MLERuntime
    features: list[str]


def _repeat(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    reps = -(-n // len(frame))
    return pd.concat([frame] * reps, ignore_index=True).iloc[:n].reset_index(drop=True)


def _holes(table: pa.Table, seed: int, numeric_nan: bool = True) -> pa.Table:
    """NULL in ~4 % of every feature column's rows; NaN in another ~3 % of float columns."""
    rng = np.random.default_rng(seed)
    cols = []
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if name == "row_id":
            cols.append(col)
            continue
        n = len(col)
        null = rng.random(n) < 0.04
        if pa.types.is_floating(col.type) and numeric_nan:
            vals = col.to_numpy(zero_copy_only=False).copy()
            vals[rng.random(n) < 0.03] = np.nan
            col = pa.array(vals, type=col.type, mask=null)
        else:
            col = pa.array(col.to_pylist(), type=col.type, mask=null)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def _finish(tmp: Path, stem: str, model, frame: pd.DataFrame, seed: int, **export) -> Case:
    path = str(tmp / f"{stem}.mle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-name warnings of the exporter's validation
        res = mle.export_model(model, path, **export)
    assert res["success"], res
    data = _repeat(frame, N_ROWS)
    data.insert(0, "row_id", np.arange(len(data), dtype=np.int64))
    table = _holes(pa.Table.from_pandas(data, preserve_index=False), seed)
    parquet = str(tmp / f"{stem}.parquet")
    pq.write_table(table, parquet, row_group_size=1500)
    table = pq.read_table(parquet)
    rt = mle.load_model(path)
    return Case(path, parquet, table, rt, [f["name"] for f in rt.input_schema])


def numeric_case(tmp: Path) -> Case:
    """LightGBM regression on diabetes (all features float)."""
    import lightgbm as lgb

    d = load_diabetes(as_frame=True)
    X = d.frame.drop(columns=["target"])
    model = lgb.LGBMRegressor(n_estimators=40, num_leaves=15, verbose=-1).fit(X, d.target)
    return _finish(tmp, "diabetes", model, X, seed=1)


def typed_case(tmp: Path) -> Case:
    """LightGBM binary classifier on breast cancer with a string category column
    (``texture_band``); the data has unseen categories as well as NULLs."""
    import lightgbm as lgb

    d = load_breast_cancer(as_frame=True)
    df = d.frame.drop(columns=["target"]).iloc[:, :8].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    q = np.quantile(d.frame["mean texture"], [0.25, 0.5, 0.75])
    band = np.asarray(["smooth", "fine", "coarse", "rough"], dtype=object)[
        np.digitize(d.frame["mean texture"], q)]
    df["texture_band"] = pd.Categorical(band)
    model = lgb.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1).fit(
        df, d.target)
    data = df.assign(texture_band=df["texture_band"].astype(object))
    data.loc[5::23, "texture_band"] = "never-seen"
    return _finish(tmp, "cancer_typed", model, data, seed=2)


def multiclass_case(tmp: Path) -> Case:
    """A scikit-learn random forest on wine with string class labels."""
    from sklearn.ensemble import RandomForestClassifier

    d = load_wine(as_frame=True)
    X = d.frame.drop(columns=["target"]).iloc[:, :10]
    X.columns = [c.replace("/", "_") for c in X.columns]
    y = np.asarray(["barolo", "grignolino", "barbera"], dtype=object)[d.target]
    model = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(
        X.to_numpy(), y)
    return _finish(tmp, "wine", model, X, seed=3, feature_names=list(X.columns))


def flipped(path: str, out: str) -> str:
    """A copy of the model at ``path`` with bytes in its middle flipped."""
    data = bytearray(Path(path).read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 16):
        data[i] ^= 0xFF
    Path(out).write_bytes(bytes(data))
    return out


def same_bits(got, want) -> bool:
    """Equal bit for bit (floats compared as their integer bit patterns)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False
    if want.dtype.kind == "f":
        return got.dtype == want.dtype and np.array_equal(
            got.view(np.uint8), want.view(np.uint8))
    return np.array_equal(got.astype(want.dtype), want)
