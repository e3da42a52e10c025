"""datafusion-python: ``mle_runtime.datafusion.register(ctx)`` puts mle-sql's native UDFs
(through datafusion-ffi) into a ``datafusion.SessionContext``. The same model and Parquet data
scored in SQL give ``rt.predict`` / ``predict_proba`` / ``explain`` / ``apply`` bit for bit
(numeric regressor, typed model with a string column, classifier probabilities), NULL is a
missing value, and a missing, corrupt or unsigned model and a wrong call fail at planning time
with an error naming the file or the feature."""

from __future__ import annotations

import warnings

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

datafusion = pytest.importorskip("datafusion")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
lgb = pytest.importorskip("lightgbm")
en = pytest.importorskip("sklearn.ensemble")

from mle_runtime import datafusion as mdf  # noqa: E402


def _ctx(parquet, public_key=None, partitions=4):
    ctx = datafusion.SessionContext(
        datafusion.SessionConfig().with_target_partitions(partitions))
    mdf.register(ctx, public_key=public_key)
    ctx.register_parquet("t", str(parquet))
    return ctx


def _args(path, names):
    return ", ".join([f"'{path}'", *(f'"{n}"' for n in names)])


def _sql(ctx, query):
    """The query's result as one pyarrow Table, in the row order of ``t`` (``rid``)."""
    return ctx.sql(query).to_arrow_table().sort_by("rid")


@pytest.fixture(scope="module")
def numeric(tmp_path_factory):
    """A gradient-boosted regressor on diabetes, with missing values in the data."""
    d = tmp_path_factory.mktemp("df_num")
    data = load_diabetes(as_frame=True)
    X = data.frame.drop(columns=["target"])
    model = en.HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(X, data.target)
    path = d / "diabetes.mle"
    mle.export_model(model, path, feature_names=list(X.columns))
    Xm = X.copy()
    Xm.iloc[::7, 2] = np.nan  # NaN in the file: a missing value
    table = pa.Table.from_pandas(Xm, preserve_index=False)
    # and NULLs (not NaN) in another column
    bp = table.column("bp").to_numpy().astype(float)
    mask = np.zeros(len(bp), dtype=bool)
    mask[3::11] = True
    table = table.set_column(table.schema.get_field_index("bp"), "bp",
                             pa.array(bp, mask=mask))
    table = table.append_column("rid", pa.array(np.arange(table.num_rows), pa.int64()))
    pq.write_table(table, d / "diabetes.parquet", row_group_size=100)
    return path, d / "diabetes.parquet", table, list(X.columns)


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """A LightGBM classifier with a string category column (NULLs and an unseen category)."""
    d = tmp_path_factory.mktemp("df_typed")
    c = load_breast_cancer(as_frame=True)
    df = c.frame.drop(columns=["target"]).iloc[:, :8].copy()
    df.columns = [n.replace(" ", "_") for n in df.columns]
    q = np.quantile(c.frame["mean texture"], [0.25, 0.5, 0.75])
    band = np.asarray(["smooth", "fine", "coarse", "rough"], dtype=object)[
        np.digitize(c.frame["mean texture"], q)]
    df["texture_band"] = pd.Categorical(band)
    model = lgb.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1).fit(
        df, c.target)
    path = d / "cancer_cat.mle"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mle.export_model(model, path)
    scored = df.copy()
    sb = scored["texture_band"].astype(object)
    sb[::13] = None
    sb[4::29] = "never-seen"
    scored["texture_band"] = sb
    scored.iloc[::9, 1] = np.nan
    table = pa.Table.from_pandas(scored, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("texture_band"), "texture_band",
                             table.column("texture_band").cast(pa.string()))
    table = table.append_column("rid", pa.array(np.arange(table.num_rows), pa.int64()))
    pq.write_table(table, d / "cancer_cat.parquet", row_group_size=128)
    return path, d / "cancer_cat.parquet", table, list(df.columns)


def test_numeric_regressor_bit_for_bit(numeric):
    path, parquet, table, names = numeric
    rt = mle.load_model(path)
    want = rt.predict(table.drop_columns(["rid"]))
    ctx = _ctx(parquet)
    got = _sql(ctx, f"SELECT rid, mle_predict({_args(path, names)}) AS p FROM t")
    assert got.num_rows == table.num_rows
    np.testing.assert_array_equal(got.column("p").to_numpy(), want)
    # the NULLs and NaNs reached the model as missing values (not zeros)
    zeros = table.drop_columns(["rid"]).to_pandas().fillna(0.0)
    assert not np.array_equal(rt.predict(zeros), want)


def test_typed_classifier_labels_and_probabilities(typed):
    path, parquet, table, names = typed
    rt = mle.load_model(path)
    X = table.drop_columns(["rid"])
    ctx = _ctx(parquet)
    got = _sql(ctx, f"SELECT rid, mle_predict({_args(path, names)}) AS label, "
                    f"mle_predict_proba({_args(path, names)}) AS proba FROM t")
    np.testing.assert_array_equal(got.column("label").to_numpy(), rt.predict(X))
    proba = np.asarray(got.column("proba").to_pylist(), dtype=np.float64)
    np.testing.assert_array_equal(proba, rt.predict_proba(X))
    assert got.schema.field("proba").type.value_type == pa.float64()


def test_dictionary_strings_and_views(typed, tmp_path):
    """A dictionary-encoded string column, and Utf8View (DataFusion's Parquet default), give
    the same numbers as plain strings."""
    path, _, table, names = typed
    rt = mle.load_model(path)
    want = rt.predict_proba(table.drop_columns(["rid"]))
    i = table.schema.get_field_index("texture_band")
    dict_table = table.set_column(i, "texture_band",
                                  table.column("texture_band").dictionary_encode())
    ctx = datafusion.SessionContext()
    mdf.register(ctx)
    ctx.register_record_batches("t", [dict_table.to_batches()])
    got = _sql(ctx, f"SELECT rid, mle_predict_proba({_args(path, names)}) AS p FROM t")
    np.testing.assert_array_equal(np.asarray(got.column("p").to_pylist()), want)


def test_explain_and_leaves_equal_runtime(numeric, typed):
    path, parquet, table, names = numeric
    rt = mle.load_model(path)
    X = table.drop_columns(["rid"])
    ctx = _ctx(parquet)
    got = _sql(ctx, f"SELECT rid, mle_explain({_args(path, names)}) AS e, "
                    f"mle_predict_leaf({_args(path, names)}) AS l FROM t")
    e = got.column("e").combine_chunks()
    assert [f.name for f in e.type] == rt.explain_columns
    explained = np.column_stack([e.field(k).to_numpy() for k in range(e.type.num_fields)])
    np.testing.assert_array_equal(explained, rt.explain(X))
    leaves = np.asarray(got.column("l").to_pylist(), dtype=np.int32)
    np.testing.assert_array_equal(leaves, rt.apply(X))

    path, parquet, table, names = typed
    rt = mle.load_model(path)
    ctx = _ctx(parquet)
    got = _sql(ctx, f"SELECT rid, mle_explain({_args(path, names)}) AS e FROM t")
    e = got.column("e").combine_chunks()
    explained = np.column_stack([e.field(k).to_numpy() for k in range(e.type.num_fields)])
    np.testing.assert_array_equal(explained, rt.explain(table.drop_columns(["rid"])))


def test_plan_time_errors_name_the_problem(numeric):
    path, parquet, _, names = numeric
    ctx = _ctx(parquet)
    # wrong arity: the model's features are listed
    with pytest.raises(Exception, match=r"takes 10 feature arguments.*but 2 were given"):
        ctx.sql(f"SELECT mle_predict({_args(path, names[:2])}) FROM t")
    # a string column for a numeric feature
    with pytest.raises(Exception, match=r"for feature \"age\".*has type Utf8"):
        ctx.sql(f"SELECT mle_predict('{path}', 'x', {', '.join(names[1:])}) FROM t")
    # the path must be a literal
    with pytest.raises(Exception, match="must be the model path as a string literal"):
        ctx.sql(f"SELECT mle_predict(\"age\", {', '.join(names)}) FROM t")
    # a regressor has no probabilities
    with pytest.raises(Exception, match="not a classifier"):
        ctx.sql(f"SELECT mle_predict_proba({_args(path, names)}) FROM t")
    # no arguments
    with pytest.raises(Exception, match="missing the model path"):
        ctx.sql("SELECT mle_predict() FROM t")


def test_missing_corrupt_and_unsigned_models(numeric, tmp_path):
    path, parquet, _, names = numeric
    ctx = _ctx(parquet)
    missing = tmp_path / "nowhere.mle"
    with pytest.raises(Exception, match="nowhere.mle"):
        ctx.sql(f"SELECT mle_predict({_args(missing, names)}) FROM t")
    corrupt = tmp_path / "corrupt.mle"
    b = bytearray(path.read_bytes())
    b[len(b) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(b))
    with pytest.raises(Exception, match="corrupt.mle"):
        ctx.sql(f"SELECT mle_predict({_args(corrupt, names)}) FROM t")
    garbage = tmp_path / "garbage.mle"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(Exception, match="garbage.mle"):
        ctx.sql(f"SELECT mle_predict({_args(garbage, names)}) FROM t")
    # a directory is not a model
    with pytest.raises(Exception, match=str(tmp_path.name)):
        ctx.sql(f"SELECT mle_predict({_args(tmp_path, names)}) FROM t")

    secret, public = mle.generate_keypair()
    ctx = _ctx(parquet, public_key=public)
    with pytest.raises(Exception, match=r"diabetes.mle.*(sign|Sign)"):
        ctx.sql(f"SELECT mle_predict({_args(path, names)}) FROM t")
    # the same trust policy from a key file, and a signed file passes it
    model = en.HistGradientBoostingRegressor(max_iter=5).fit(
        np.arange(40.0).reshape(20, 2), np.arange(20.0))
    signed = tmp_path / "signed.mle"
    mle.export_model(model, signed, feature_names=["a", "b"], signing_key=secret)
    kf = tmp_path / "key.pub"
    kf.write_bytes(public)
    ctx = datafusion.SessionContext()
    mdf.register(ctx, public_key=str(kf))
    ctx.register_record_batches("s", [[pa.record_batch({"a": [1.0, 2.0], "b": [3.0, None]})]])
    ctx.register_parquet("t", str(parquet))
    got = ctx.sql(f"SELECT mle_predict('{signed}', a, b) AS p FROM s").to_arrow_table()
    rt = mle.load_model(signed, public_key=public)
    np.testing.assert_array_equal(
        got.column("p").to_numpy(), rt.predict(np.array([[1.0, 3.0], [2.0, np.nan]])))
    with pytest.raises(Exception, match=r"diabetes.mle"):
        ctx.sql(f"SELECT mle_predict({_args(path, names)}) FROM t")


def test_empty_input_and_literal_features(numeric):
    path, parquet, table, names = numeric
    ctx = _ctx(parquet)
    got = ctx.sql(f"SELECT mle_predict({_args(path, names)}) AS p FROM t WHERE rid < 0")
    assert got.to_arrow_table().num_rows == 0
    # a literal among the columns is the same value in every row
    assert names[0] == "age"
    rest = ", ".join(f'"{n}"' for n in names[1:])
    q = f"SELECT rid, mle_predict('{path}', 0.01, {rest}) AS p FROM t"
    got = _sql(ctx, q)
    X = table.drop_columns(["rid"]).to_pandas()
    X["age"] = 0.01
    np.testing.assert_array_equal(got.column("p").to_numpy(), mle.load_model(path).predict(X))
