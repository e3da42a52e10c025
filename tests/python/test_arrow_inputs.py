"""Tables as inputs of rt.predict / predict_proba / run: pandas, pyarrow Tables and
RecordBatches (plain and dictionary string columns, chunked or not), Polars DataFrames and
objects with only the Arrow PyCapsule interface give the same numbers bit for bit; columns
bind by name (extra ones ignored, a missing one or one of the wrong kind named)."""

from __future__ import annotations

import warnings

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")
lgb = pytest.importorskip("lightgbm")
en = pytest.importorskip("sklearn.ensemble")


class StreamOnly:
    """Only ``__arrow_c_stream__`` (what a third-party table type offers)."""

    def __init__(self, table):
        self._t = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._t.__arrow_c_stream__(requested_schema)


class ArrayOnly:
    """Only ``__arrow_c_array__`` (one record batch as a struct array)."""

    def __init__(self, batch):
        self._b = batch

    def __arrow_c_array__(self, requested_schema=None):
        return self._b.__arrow_c_array__(requested_schema)


def cancer_frame():
    d = load_breast_cancer(as_frame=True)
    # LightGBM stores "mean radius" as "mean_radius": names without spaces bind everywhere
    df = d.frame.drop(columns=["target"]).iloc[:, :8].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    q = np.quantile(d.frame["mean texture"], [0.25, 0.5, 0.75])
    band = np.asarray(["smooth", "fine", "coarse", "rough"], dtype=object)[
        np.digitize(d.frame["mean texture"], q)]
    band[::17] = None  # missing values
    band[5::23] = "never-seen"  # unseen categories
    df["texture_band"] = pd.Categorical(band)
    return df, d.target.to_numpy()


@pytest.fixture(scope="module")
def categorical_model(tmp_path_factory):
    df, y = cancer_frame()
    fit = df.copy()
    fit["texture_band"] = pd.Categorical(
        fit["texture_band"].astype(object).where(fit["texture_band"] != "never-seen", None))
    model = lgb.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1).fit(fit, y)
    path = tmp_path_factory.mktemp("arrow") / "lgb_cat.mle"
    mle.export_model(model, path)
    return model, df, mle.load_model(path)


def _tables(df):
    """The same rows as every kind of table this runtime takes."""
    t = pa.Table.from_pandas(df, preserve_index=False)  # category -> dictionary column
    plain = t.set_column(t.schema.get_field_index("texture_band"), "texture_band",
                         t.column("texture_band").cast(pa.string()))
    n = t.num_rows
    # chunks with different dictionaries (each chunk's categories are its own values)
    def chunk(a, b):
        part = df.iloc[a:b].copy()
        part["texture_band"] = pd.Categorical(part["texture_band"].astype(object))
        return pa.Table.from_pandas(part, preserve_index=False)

    chunked = pa.concat_tables([chunk(a, b) for a, b in [(0, 100), (100, 101), (101, 400),
                                                         (400, n)]])
    polars_df = pl.from_pandas(df)
    return {
        "pandas": df,
        "pandas_object": df.assign(texture_band=df["texture_band"].astype(object)),
        "pandas_extra_columns": df.assign(other="x", more=np.arange(len(df))),
        "pandas_reordered": df[list(reversed(df.columns))],
        "table_dictionary": t,
        "table_plain": plain,
        "table_large_string": plain.set_column(
            plain.schema.get_field_index("texture_band"), "texture_band",
            plain.column("texture_band").cast(pa.large_string())),
        "record_batch": t.combine_chunks().to_batches()[0],
        "chunked": chunked,
        "polars_categorical": polars_df,
        "polars_string": polars_df.with_columns(pl.col("texture_band").cast(pl.String)),
        "polars_lazy": polars_df.lazy(),
        "stream_only": StreamOnly(t),
        "array_only": ArrayOnly(plain.combine_chunks().to_batches()[0]),
    }


def test_every_table_gives_the_same_bits(categorical_model):
    model, df, rt = categorical_model
    want_labels = rt.predict(df)
    want_proba = rt.predict_proba(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(want_labels, model.predict(df))
        np.testing.assert_allclose(want_proba, model.predict_proba(df), rtol=1e-5, atol=1e-6)
    for name, x in _tables(df).items():
        np.testing.assert_array_equal(rt.predict(x), want_labels, err_msg=name)
        got = rt.predict_proba(x)
        assert got.dtype == np.float64
        assert np.array_equal(got.view(np.uint64), want_proba.view(np.uint64)), name
        outs = rt.run([x])
        assert np.array_equal(outs[1], want_proba), name


def test_numeric_model_from_tables_equals_numpy(tmp_model):
    d = load_diabetes(as_frame=True)
    df = d.frame.drop(columns="target")
    model = en.HistGradientBoostingRegressor(max_iter=20).fit(df, d.target)
    path = tmp_model()
    mle.export_model(model, path, sample_input=df)
    rt = mle.load_model(path)
    want = rt.predict(df.to_numpy())
    t = pa.Table.from_pandas(df, preserve_index=False)
    for x in [df, t, t.to_batches()[0], pl.from_pandas(df), StreamOnly(t),
              pa.concat_tables([t.slice(0, 7), t.slice(7)])]:
        got = rt.predict(x)
        assert np.array_equal(got, want)
    assert rt.input_schema[0] == {"name": "age", "kind": "float"}
    assert rt.predict(t.slice(0, 0)).shape == (0,)


def test_missing_column_is_named(categorical_model):
    _, df, rt = categorical_model
    for x in [df.drop(columns="mean_area"),
              pa.Table.from_pandas(df.drop(columns="mean_area"), preserve_index=False),
              pl.from_pandas(df.drop(columns="mean_area")),
              pl.from_pandas(df.drop(columns="mean_area")).lazy()]:
        with pytest.raises(mle.InputError, match="mean_area"):
            rt.predict(x)


def test_string_where_a_number_is_expected_is_named(categorical_model):
    _, df, rt = categorical_model
    bad = df.assign(mean_radius="big")
    for x in [bad, pa.Table.from_pandas(bad, preserve_index=False), pl.from_pandas(bad)]:
        with pytest.raises(mle.InputError, match="mean_radius"):
            rt.predict(x)


def test_unconvertible_object_column_is_named(categorical_model):
    _, df, rt = categorical_model
    bad = df.assign(**{"mean_radius": [1.0, "x"] * (len(df) // 2) + [1.0] * (len(df) % 2)})
    with pytest.raises(mle.InputError, match="mean_radius"):
        rt.predict(bad)


def test_pandas_frame_with_other_names_is_not_scored_by_position(categorical_model):
    _, df, rt = categorical_model
    renamed = df.set_axis([f"c{i}" for i in range(df.shape[1])], axis=1)
    with pytest.raises(mle.InputError, match="by name"):
        rt.predict(renamed)
    numeric = pd.DataFrame(np.zeros((3, df.shape[1])))
    with pytest.raises(mle.InputError):
        rt.predict(numeric)


def test_a_plain_array_is_not_a_table(categorical_model):
    _, _, rt = categorical_model
    with pytest.raises(mle.InputError, match="table"):
        rt.predict(ArrayOnly(pa.array([1.0, 2.0])))


def test_benchmark_takes_tables(categorical_model):
    _, df, rt = categorical_model
    for x in [df, pa.Table.from_pandas(df, preserve_index=False), pl.from_pandas(df)]:
        b = rt.benchmark(x, num_runs=3, warmup=1)
        assert b["num_runs"] == 3 and b["batch_size"] == len(df)
        assert b["throughput_rows_per_s"] > 0


def test_threads_and_validate_export_with_frames(categorical_model, tmp_path):
    model, df, rt = categorical_model
    t = pa.Table.from_pandas(df, preserve_index=False)
    assert np.array_equal(rt.predict_proba(t, threads=2), rt.predict_proba(df))
    path = tmp_path / "again.mle"
    mle.export_model(model, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = mle.validate_export(model, path, df)  # unseen and missing categories included
    assert v["passed"] and v["label_mismatches"] == 0


def test_a_wrong_capsule_is_an_input_error(categorical_model):
    _, df, rt = categorical_model
    t = pa.Table.from_pandas(df, preserve_index=False)

    class WrongCapsule:
        def __arrow_c_stream__(self, requested_schema=None):
            schema_capsule, _ = t.to_batches()[0].__arrow_c_array__()
            return schema_capsule  # named "arrow_schema", not "arrow_array_stream"

    class NotACapsule:
        def __arrow_c_stream__(self, requested_schema=None):
            return 42

    for x in [WrongCapsule(), NotACapsule()]:
        with pytest.raises(mle.InputError, match="PyCapsule"):
            rt.predict(x)
