"""Score `.mle` models inside DuckDB queries.

>>> import duckdb, mle_runtime.duckdb                                   # doctest: +SKIP
>>> con = duckdb.connect()                                              # doctest: +SKIP
>>> mle_runtime.duckdb.register(con, "churn.mle")                       # doctest: +SKIP
'churn'
>>> con.sql("SELECT churn(city, age, income) FROM 'customers.parquet'")  # doctest: +SKIP

:func:`register` adds one scalar function to a DuckDB connection, named after the model (the
file's stem unless ``name`` is given), with one parameter per model feature in feature order
and the DuckDB type of the feature's kind: ``DOUBLE`` for float features, ``BIGINT`` for
integer ones, ``BOOLEAN`` for Booleans, ``VARCHAR`` for string and (string) category features.
DuckDB checks the call when it binds the query: a wrong number of arguments, or a column it
cannot cast implicitly to the parameter's type (a ``VARCHAR`` for a numeric feature, a number
for a string feature), is a ``duckdb.BinderException`` before anything runs.

The function is an Arrow UDF (``create_function(..., type="arrow")``): DuckDB hands it whole
vectors as Arrow arrays, which the runtime binds to the model's features by name and reads in
place through the Arrow C interfaces (the same input policy as ``load_model(...).predict`` on a
pyarrow Table, from the one adapter core), so no Python runs per row. ``NULL`` is a missing
value (nulls are passed to the model, not short-circuited); the output is never ``NULL``.
The model is loaded (and verified, against ``public_key`` when one is given) once, when the
function is registered; the values are those of ``load_model(path).predict`` bit for bit.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from .errors import MLEError
from .runtime import MLERuntime, load_model

__all__ = ["register"]

_OUTPUTS = ("prediction", "proba")

#: DuckDB parameter type of each feature kind.
_KIND_TYPES = {
    "float": "DOUBLE",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
}

#: DuckDB type of each numpy dtype an output can have.
_DTYPE_TYPES = {
    "float64": "DOUBLE",
    "float32": "FLOAT",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "int16": "SMALLINT",
    "int8": "TINYINT",
    "uint64": "UBIGINT",
    "uint32": "UINTEGER",
    "uint16": "USMALLINT",
    "uint8": "UTINYINT",
    "bool": "BOOLEAN",
}


def _parameter_type(feature: dict, path: str) -> str:
    kind = feature["kind"]
    if kind == "category":
        cats = feature.get("categories") or []
        integer = bool(cats) and all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cats)
        return "BIGINT" if integer else "VARCHAR"
    try:
        return _KIND_TYPES[kind]
    except KeyError:
        raise MLEError(
            f"{path}: feature {feature['name']!r} has kind {kind!r}, which has no DuckDB "
            f"parameter type") from None


def _output_types(rt: MLERuntime, path: str) -> tuple[str, str | None]:
    """The DuckDB type of the prediction and of the probabilities (None without them), from
    the model's outputs as ``rt.predict`` returns them."""
    outs = {o["name"]: o for o in rt.outputs}
    proba = "DOUBLE[]" if "probabilities" in outs else None
    if rt.classes_ is not None:
        dt = rt.classes_.dtype
        if dt.kind in "US":
            return "VARCHAR", proba
        return _DTYPE_TYPES.get(dt.name, "BIGINT"), proba
    if "label" in outs:  # a classifier without class labels: the class index
        return "BIGINT", proba
    name = "prediction" if "prediction" in outs else rt.outputs[0]["name"]
    o = outs[name]
    elem = {"f64": "DOUBLE", "f32": "FLOAT", "i64": "BIGINT"}.get(o["dtype"])
    if elem is None:
        raise MLEError(f"{path}: output {name!r} has dtype {o['dtype']}, which has no DuckDB "
                       f"type")
    return (elem if len(o["shape"]) == 1 else elem + "[]"), proba


def _to_arrow(values: np.ndarray):
    """A numpy output as an Arrow array: 1-D as is (strings as Utf8), 2-D as a list per
    row."""
    import pyarrow as pa

    if values.ndim == 1:
        if values.dtype.kind in "OUS":
            return pa.array(values, type=pa.string())
        return pa.array(values)
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).ravel()))


def register(con, model_path, name: str | None = None, output: str = "prediction",
             public_key=None) -> str:
    """Registers the model at ``model_path`` as a scalar function of the DuckDB connection
    ``con`` and returns the function's name.

    Parameters
    ----------
    con
        A ``duckdb.DuckDBPyConnection``.
    model_path
        Path of the ``.mle`` model file.
    name
        The function's name; by default the file's stem (``churn.mle`` → ``churn``).
    output
        ``"prediction"``: the model's prediction (``rt.predict``: the number for
        regressors, the class label for classifiers). ``"proba"``: the class probabilities
        as a ``DOUBLE[]`` list, one entry per class in the order of the model's classes
        (classifiers only).
    public_key
        An ED25519 public key (a key file's path or its raw bytes): when given, a model
        that is unsigned or signed by another key is refused.

    Raises
    ------
    ModelFileError, CorruptedFileError, SecurityError, ...
        When the model cannot be loaded (missing or unreadable file, corrupted file,
        signature policy), naming the file, as :func:`mle_runtime.load_model`.
    MLEError
        When ``output`` is not one of ``"prediction"``, ``"proba"``, or ``"proba"`` is asked
        of a model without probabilities.
    """
    if output not in _OUTPUTS:
        raise MLEError(f"output must be one of {', '.join(map(repr, _OUTPUTS))}, "
                       f"got {output!r}")
    path = os.fspath(model_path)
    rt = load_model(path, public_key)
    features = rt.input_schema
    names = [f["name"] for f in features]
    params = [_parameter_type(f, path) for f in features]
    pred_type, proba_type = _output_types(rt, path)
    if output == "proba":
        if proba_type is None:
            raise MLEError(
                f"{path}: {rt.metadata['model_type']} has no probabilities output "
                f"(outputs: {', '.join(o['name'] for o in rt.outputs)}); use "
                f"output=\"prediction\"")
        return_type, score = proba_type, rt.predict_proba
    else:
        return_type, score = pred_type, rt.predict
    if name is None:
        name = Path(path).stem
    if not name:
        raise MLEError(f"{path}: no function name (pass name=...)")
    import pyarrow as pa

    def function(*columns):
        # DuckDB passes one (chunked) Arrow array per parameter; bind them by name.
        table = pa.Table.from_arrays(list(columns), names=names)
        return _to_arrow(score(table))

    # DuckDB takes the function's arity from its signature.
    function.__signature__ = inspect.Signature(
        [inspect.Parameter(f"c{i}", inspect.Parameter.POSITIONAL_ONLY)
         for i in range(len(names))])
    function.__name__ = name
    con.create_function(name, function, params, return_type, type="arrow",
                        null_handling="special")
    return name
