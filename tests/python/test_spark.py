"""mle_runtime.spark.score and .udf on a local[2] SparkSession over Parquet in 4+ partitions:
equal to rt.predict / predict_proba bit for bit (numeric, typed with a string category column,
string class labels), NULL as a missing value, columns checked when the plan is built, the
model shipped as bytes (broadcast), verified and compiled once per executor process, and
failures (unreadable path, corrupted file, unsigned model under a key policy, bytes changed in
transit, a wrong key on an executor) as clear errors naming the file, after which the session
still works."""

from __future__ import annotations

import os
import sys

import mle_runtime as mle
import numpy as np
import pyarrow as pa
import pytest
from engines_data import flipped, multiclass_case, numeric_case, same_bits, typed_case

pyspark = pytest.importorskip("pyspark")
ms = pytest.importorskip("mle_runtime.spark")
from pyspark.errors import PythonException  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

PARTITIONS = 5


@pytest.fixture(scope="module")
def spark():
    # The executors' Python must be this one (with pyarrow and mle_runtime).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    s = (SparkSession.builder.master("local[2]").appName("mle-test-spark")
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", str(PARTITIONS))
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000")
         .config("spark.driver.memory", "1g")
         .getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spark")
    return {"numeric": numeric_case(tmp), "typed": typed_case(tmp),
            "multiclass": multiclass_case(tmp)}


def _frame(spark, case):
    df = spark.read.parquet(case.parquet).repartition(PARTITIONS)
    assert df.rdd.getNumPartitions() >= 4
    return df


def _collect(df) -> pa.Table:
    return df.toArrow().sort_by("row_id")


def _check_rows(got: pa.Table, case):
    assert got.num_rows == case.table.num_rows
    assert np.array_equal(got["row_id"].to_numpy(), case.table["row_id"].to_numpy())


def _values(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_list(col.type):
        return np.stack(col.to_numpy(zero_copy_only=False))
    return col.to_numpy(zero_copy_only=False)


def _same_column(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Equal values, NULLs in the same rows, NaN where NaN."""
    if a.type != b.type or not a.is_null().equals(b.is_null()):
        return False
    if pa.types.is_floating(a.type):
        return same_bits(a.fill_null(0).to_numpy(), b.fill_null(0).to_numpy())
    return a.to_pylist() == b.to_pylist()


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if want.dtype.kind in "US":
        return list(got) == list(want)
    return same_bits(got, want)


@pytest.mark.parametrize("which", ["numeric", "typed", "multiclass"])
def test_score_equals_rt_predict(spark, cases, which):
    case = cases[which]
    df = _frame(spark, case)
    out = ms.score(df, case.model)
    assert out.columns == df.columns + (
        ["prediction"] if which == "numeric" else ["prediction", "probabilities"])
    got = _collect(out)
    _check_rows(got, case)
    want = case.rt.predict(case.table)
    assert _same(_values(got["prediction"]), want)
    # the input columns pass through untouched (NULLs, NaN and unseen categories included)
    for c in df.columns:
        assert _same_column(got[c], case.table[c]), c
    if which != "numeric":
        assert out.schema["probabilities"].dataType == T.ArrayType(T.DoubleType(), False)
        assert same_bits(_values(got["probabilities"]), case.rt.predict_proba(case.table))
    expected_type = {"numeric": T.DoubleType(), "typed": T.LongType(),
                     "multiclass": T.StringType()}[which]
    assert out.schema["prediction"].dataType == expected_type


def test_udf_prediction_and_proba(spark, cases):
    case = cases["typed"]
    df = _frame(spark, case)
    pred = ms.udf(case.model)
    proba = ms.udf(case.model, output="proba")
    got = _collect(df.select("row_id", pred(*case.features), proba(*case.features)))
    _check_rows(got, case)
    assert got.column_names == ["row_id", "prediction", "probabilities"]
    assert same_bits(_values(got["prediction"]), case.rt.predict(case.table))
    assert same_bits(_values(got["probabilities"]), case.rt.predict_proba(case.table))
    # Columns as Column objects, string labels
    case = cases["multiclass"]
    df = _frame(spark, case)
    wine = ms.udf(case.model)
    got = _collect(df.select("row_id", wine(*[F.col(c) for c in case.features])))
    assert list(got["prediction"].to_pylist()) == list(case.rt.predict(case.table))


def test_nulls_are_missing_values(spark, cases):
    case = cases["typed"]
    schema = T.StructType(
        [T.StructField("row_id", T.LongType())]
        + [T.StructField(f, T.StringType() if f == "texture_band" else T.DoubleType())
           for f in case.features])
    rows = [(0, *([None] * len(case.features))),
            (1, None, 17.0, None, 500.0, None, None, None, None, "rough"),
            (2, 12.0, None, 80.0, None, 0.1, 0.1, 0.05, 0.02, None)]
    df = spark.createDataFrame(rows, schema).repartition(3)
    got = _collect(ms.score(df, case.model))
    local = pa.Table.from_pylist(
        [dict(zip(["row_id", *case.features], r, strict=True)) for r in rows],
        schema=pa.schema([("row_id", pa.int64())] + [
            (f, pa.string() if f == "texture_band" else pa.float64())
            for f in case.features]))
    assert same_bits(_values(got["probabilities"]), case.rt.predict_proba(local))
    assert same_bits(_values(got["prediction"]), case.rt.predict(local))


def test_columns_checked_when_the_plan_is_built(spark, cases):
    case = cases["typed"]
    df = _frame(spark, case)
    with pytest.raises(mle.InputError, match="texture_band"):
        ms.score(df.drop("texture_band"), case.model)
    with pytest.raises(mle.InputError, match="mean_radius.*not numeric"):
        ms.score(df.withColumn("mean_radius", F.lit("x")), case.model)
    with pytest.raises(mle.InputError, match="prediction"):
        ms.score(df.withColumn("prediction", F.lit(1)), case.model)
    f = ms.udf(case.model)
    with pytest.raises(mle.InputError, match=r"cancer_typed\.mle.*takes 9 feature columns"):
        f(*case.features[:-1])
    with pytest.raises(mle.MLEError, match="no probabilities"):
        ms.udf(cases["numeric"].model, output="proba")
    # a column of the wrong kind given to the UDF fails the job with the runtime's message
    swapped = [case.features[-1]] + case.features[1:-1] + [case.features[0]]
    with pytest.raises(PythonException, match=r"cancer_typed\.mle.*not numeric"):
        df.select(f(*swapped)).collect()
    assert df.count() == case.table.num_rows  # the session still works


def test_load_failures_name_the_file(spark, cases, tmp_path):
    good = cases["numeric"]
    df = _frame(spark, good)
    missing = str(tmp_path / "absent.mle")
    with pytest.raises(mle.ModelFileError, match="absent.mle"):
        ms.score(df, missing)
    with pytest.raises(mle.ModelFileError, match="directory"):
        ms.udf(str(tmp_path))
    bad = flipped(good.model, str(tmp_path / "flipped.mle"))
    with pytest.raises(mle.CorruptedFileError, match="flipped.mle"):
        ms.score(df, bad)
    _, public = mle.generate_keypair()
    with pytest.raises(mle.SecurityError, match="diabetes.mle"):
        ms.score(df, good.model, public_key=public)
    with pytest.raises(mle.SecurityError, match="diabetes.mle"):
        ms.udf(good.model, public_key=public)
    assert df.count() == good.table.num_rows


def test_signed_model_key_travels_to_executors(spark, cases, tmp_path):
    case = cases["numeric"]
    secret, public = mle.generate_keypair()
    import lightgbm as lgb
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    path = str(tmp_path / "signed.mle")
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    mle.export_model(model, path, signing_key=secret, feature_names=case.features)
    key_file = tmp_path / "key.pub"
    key_file.write_text(public.hex() + "\n")
    df = _frame(spark, case)
    got = _collect(ms.score(df, path, public_key=str(key_file)))
    assert same_bits(_values(got["prediction"]), mle.load_model(path).predict(case.table))
    # On an executor, the bytes are verified again under the key that travels with the job:
    # a different key there is a SecurityError naming the file, not a crash.
    _, shipped = ms._ship(path, public)
    _, other = mle.generate_keypair()
    wrong = ms._Shipped(shipped.path, shipped.digest, other, shipped.broadcast)
    with pytest.raises(PythonException, match=r"SecurityError.*signed\.mle"):
        df.mapInArrow(_touch(wrong), "n long").collect()


def _touch(shipped):
    def run(batches):
        shipped.runtime()
        for b in batches:
            yield pa.RecordBatch.from_pydict({"n": [b.num_rows]})

    return run


def test_bytes_changed_in_transit_are_refused_on_the_executor(spark, cases, tmp_path):
    case = cases["numeric"]
    df = _frame(spark, case)
    _, shipped = ms._ship(case.model, None)
    bad = flipped(case.model, str(tmp_path / "transit.mle"))
    with open(bad, "rb") as f:
        changed = spark.sparkContext.broadcast(f.read())
    wrong = ms._Shipped(shipped.path, shipped.digest, None, changed)
    with pytest.raises(PythonException, match=r"CorruptedFileError.*diabetes\.mle.*SHA-256"):
        df.mapInArrow(_touch(wrong), "n long").collect()
    # and a digest that matches corrupted bytes: the executor's own checks name the file
    import hashlib

    with open(bad, "rb") as f:
        data = f.read()
    corrupt = ms._Shipped(shipped.path, hashlib.sha256(data).hexdigest(), None, changed)
    with pytest.raises(PythonException, match=r"CorruptedFileError.*diabetes\.mle"):
        df.mapInArrow(_touch(corrupt), "n long").collect()
    assert df.count() == case.table.num_rows


def test_model_compiled_once_per_executor_process(spark, cases):
    case = cases["typed"]
    df = spark.read.parquet(case.parquet).repartition(8)
    _, shipped = ms._ship(case.model, None)
    # the broadcast is made once per model content and SparkContext
    assert ms._ship(case.model, None)[1].broadcast is shipped.broadcast

    def report(batches):
        for b in batches:
            rt = shipped.runtime()
            rt.predict(b)
        yield pa.RecordBatch.from_pydict(
            {"pid": [os.getpid()], "loads": [ms._LOADS[shipped.digest]]})

    rows = df.mapInArrow(report, "pid long, loads long").collect()
    assert len(rows) == 8
    assert all(r.loads == 1 for r in rows), rows
    # 8 tasks on 2 cores: Python workers are reused, each compiled the model once
    assert len({r.pid for r in rows}) < 8
