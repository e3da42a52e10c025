"""mle_runtime.duckdb.register: the model as a DuckDB scalar function over Parquet, equal to
rt.predict / predict_proba bit for bit (numeric, typed with a string category column, string
class labels; 1 and 2 DuckDB threads), NULL as a missing value, the model's arity and kinds
checked by DuckDB's binder, and load failures as the package's errors naming the file."""

from __future__ import annotations

import mle_runtime as mle
import numpy as np
import pyarrow as pa
import pytest
from engines_data import flipped, multiclass_case, numeric_case, same_bits, typed_case

duckdb = pytest.importorskip("duckdb")
mdb = pytest.importorskip("mle_runtime.duckdb")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("duckdb")
    return {"numeric": numeric_case(tmp), "typed": typed_case(tmp),
            "multiclass": multiclass_case(tmp)}


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def _arrow(rel) -> pa.Table:
    t = rel.arrow()
    return t.read_all() if hasattr(t, "read_all") else t


def _call(fn, case) -> str:
    return f"{fn}({', '.join(case.features)})"


@pytest.mark.parametrize("which", ["numeric", "typed", "multiclass"])
@pytest.mark.parametrize("threads", [1, 2])
def test_prediction_equals_rt_predict(cases, con, which, threads):
    case = cases[which]
    con.execute(f"SET threads = {threads}")
    name = mdb.register(con, case.model)
    assert name == {"numeric": "diabetes", "typed": "cancer_typed", "multiclass": "wine"}[which]
    got = _arrow(con.sql(
        f"SELECT row_id, {_call(name, case)} AS p FROM '{case.parquet}' ORDER BY row_id"))
    assert got.num_rows == case.table.num_rows
    assert np.array_equal(got["row_id"].to_numpy(), case.table["row_id"].to_numpy())
    want = case.rt.predict(case.table)
    p = got["p"].to_numpy(zero_copy_only=False)
    if want.dtype.kind in "US":
        assert got.schema.field("p").type == pa.string()
        assert list(p) == list(want)
    else:
        assert same_bits(p, want), which
    if which == "numeric":
        assert got.schema.field("p").type == pa.float64()


@pytest.mark.parametrize("which", ["typed", "multiclass"])
def test_proba_is_a_list_equal_to_predict_proba(cases, con, which):
    case = cases[which]
    mdb.register(con, case.model, name="proba_fn", output="proba")
    got = _arrow(con.sql(
        f"SELECT {_call('proba_fn', case)} AS p FROM '{case.parquet}' ORDER BY row_id"))
    assert pa.types.is_list(got.schema.field("p").type)
    assert got.schema.field("p").type.value_type == pa.float64()
    p = np.stack(got["p"].to_numpy(zero_copy_only=False))
    want = case.rt.predict_proba(case.table)
    assert p.shape == want.shape and same_bits(p, want)


def test_null_is_a_missing_value(cases, con):
    case = cases["typed"]
    mdb.register(con, case.model, name="m", output="proba")
    # A row whose every feature is NULL, and one with a NULL string and a NULL number.
    row = case.table.slice(0, 1)
    nulls = pa.table({f: pa.nulls(1, row.schema.field(f).type) for f in case.features})
    mixed = row.set_column(row.schema.get_field_index("texture_band"), "texture_band",
                           pa.nulls(1, pa.string()))
    mixed = mixed.set_column(mixed.schema.get_field_index("mean_radius"), "mean_radius",
                             pa.nulls(1, pa.float64()))
    for t in (nulls, mixed):
        con.register("t", t)
        got = _arrow(con.sql(f"SELECT {_call('m', case)} AS p FROM t"))
        con.unregister("t")
        p = np.stack(got["p"].to_numpy(zero_copy_only=False))
        assert same_bits(p, case.rt.predict_proba(t))
    # NULL in a float column scores as NaN does.
    as_nan = mixed.set_column(mixed.schema.get_field_index("mean_radius"), "mean_radius",
                              pa.array([np.nan]))
    assert same_bits(case.rt.predict_proba(as_nan), case.rt.predict_proba(mixed))
    # NULL literals bind to every parameter type.
    got = con.execute(f"SELECT m({', '.join(['NULL'] * len(case.features))})").fetchall()
    assert np.array_equal(np.asarray(got[0][0]), case.rt.predict_proba(nulls)[0])


def test_parameter_types_follow_the_model_kinds(cases, con):
    case = cases["typed"]
    mdb.register(con, case.model, name="m")
    con.register("t", case.table)
    # integer and float columns are implicitly cast to DOUBLE
    ints = ", ".join(
        f"TRY_CAST({f} AS INTEGER)" if f == "mean_area" else f for f in case.features)
    assert con.execute(f"SELECT count(m({ints})) FROM t").fetchone()[0] == case.table.num_rows
    # wrong arity and a string for a float feature are refused when DuckDB binds the query
    with pytest.raises(duckdb.BinderException, match="m"):
        con.sql(f"SELECT m({', '.join(case.features[:-1])}) FROM t")
    swapped = [case.features[-1]] + case.features[1:-1] + [case.features[0]]
    with pytest.raises(duckdb.BinderException, match="VARCHAR"):
        con.sql(f"SELECT m({', '.join(swapped)}) FROM t")


def test_output_option_errors(cases, con):
    with pytest.raises(mle.MLEError, match="no probabilities"):
        mdb.register(con, cases["numeric"].model, output="proba")
    with pytest.raises(mle.MLEError, match="output must be"):
        mdb.register(con, cases["numeric"].model, output="label")


def test_load_failures_name_the_file(cases, con, tmp_path):
    good = cases["numeric"]
    missing = str(tmp_path / "nope.mle")
    with pytest.raises(mle.ModelFileError, match="nope.mle"):
        mdb.register(con, missing)
    with pytest.raises(mle.ModelFileError, match=str(tmp_path)):
        mdb.register(con, str(tmp_path))
    bad = flipped(good.model, str(tmp_path / "flipped.mle"))
    with pytest.raises(mle.CorruptedFileError, match="flipped.mle"):
        mdb.register(con, bad)
    _, public = mle.generate_keypair()
    with pytest.raises(mle.SecurityError, match="diabetes.mle"):
        mdb.register(con, good.model, public_key=public)
    # nothing was registered and the connection still works
    assert con.execute("SELECT 41 + 1").fetchone()[0] == 42
    with pytest.raises(duckdb.CatalogException):
        con.sql("SELECT flipped(1.0)")


def test_signed_model_under_its_key(cases, con, tmp_path):
    case = cases["multiclass"]
    secret, public = mle.generate_keypair()
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_wine(return_X_y=True)
    X = X[:, :10]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    path = str(tmp_path / "signed.mle")
    mle.export_model(model, path, signing_key=secret, feature_names=case.features)
    assert mdb.register(con, path, public_key=public) == "signed"
    got = con.execute(f"SELECT {_call('signed', case)} AS p FROM '{case.parquet}' "
                      f"ORDER BY row_id").fetchnumpy()["p"]
    assert np.array_equal(np.asarray(got), mle.load_model(path).predict(case.table))
