"""Score `.mle` models inside Polars queries.

The expressions returned here run the model in native code, chunk by chunk, inside Polars'
eager, lazy and streaming engines — no Python call per row or per batch. They are Polars
expression plugins (``polars.plugins.register_plugin_function``) whose native functions,
``mle_predict``, ``mle_predict_proba`` and ``mle_explain``, live in the
``mle_runtime._native`` extension.

Given expressions bind by position to the model's features (the order of ``feature_names``
given at export); given none, the frame's columns named like the model's features are used
(by name, in feature order; other columns are ignored). Each column is checked against its
feature's kind: integer, float and Boolean columns (false = 0, true = 1) for numeric features;
``String``, ``Categorical`` and ``Enum`` columns for string and category features (numbers are
taken as category codes); nulls are missing values, and an unseen category is missing (or an
error, as the model's framework does). Columns cross to the runtime through the Arrow C Data
Interface (no copy; strings cross as string views and dictionaries, read in place) and
follow the same input policy and output contract as SQL, the CLI and ``load_model``:
probabilities are Float64 everywhere. Models are loaded once per process through the shared
model cache (regular files only; a file is identified by device, inode, modification time
and size). Every failure (missing file, corrupt model, wrong number of columns, a column of the
wrong kind, bad signature) raises ``polars.exceptions.ComputeError`` with the runtime's message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from polars.plugins import register_plugin_function

if TYPE_CHECKING:
    from polars._typing import IntoExpr

__all__ = ["explain", "predict", "predict_proba"]

KeyLike = str | os.PathLike | bytes | None


def _library() -> Path:
    from mle_runtime import _native

    return Path(_native.__file__)


def _hex_key(public_key: KeyLike) -> str | None:
    """The public key as 64 hex characters (from raw bytes, a key file, or hex text)."""
    if public_key is None:
        return None
    if isinstance(public_key, bytes):
        data = public_key
    elif isinstance(public_key, str) and not os.path.exists(public_key):
        data = public_key.encode()
    else:
        with open(public_key, "rb") as f:
            data = f.read(4097)
    if len(data) == 32:
        return data.hex()
    # Hex text (possibly with a trailing newline); the native side validates it.
    return data.decode("ascii", errors="replace").strip()


def _pin(path: str, key: str | None) -> str | None:
    """Pins the model's current version for this expression: every chunk of a query then uses
    the same compiled model even if the file is replaced meanwhile. A model that cannot be
    loaded now is not pinned; the query then reports why (as a ``ComputeError``)."""
    from mle_runtime import _native

    try:
        return _native.polars_pin(path, key)
    except Exception:
        return None


def _feature_names(function_name: str, path: str, key: str | None) -> list[str]:
    """The model's feature names, in order, from its metadata (through the shared cache, under
    the same trust policy as the expression)."""
    from mle_runtime import _native

    try:
        rt = _native.Runtime(path, None if key is None else key.encode())
        return list(json.loads(rt.metadata_json)["input"]["feature_names"])
    except Exception as e:  # the runtime's typed errors, a missing file, ...
        msg = (
            f"{function_name}: no feature columns given, and the feature names of {path} "
            f"cannot be read to bind the frame's columns by name: {e}"
        )
        raise ValueError(msg) from e


def _call(
    function_name: str,
    model_path: str | os.PathLike,
    exprs: tuple[IntoExpr, ...],
    public_key: KeyLike,
    alias: str,
) -> pl.Expr:
    args: list[IntoExpr] = []
    for e in exprs:
        # Allow predict(path, ["a", "b"]) as well as predict(path, "a", "b").
        if isinstance(e, (list, tuple)):
            args.extend(e)
        else:
            args.append(e)
    # Absolute, so a lazy query still finds the model if the working directory changes.
    path = os.path.abspath(os.fspath(model_path))
    key = _hex_key(public_key)
    if not args:
        # By name: the frame's columns named like the model's features, in feature order.
        args = [pl.col(name) for name in _feature_names(function_name, path, key)]
    return register_plugin_function(
        plugin_path=_library(),
        function_name=function_name,
        args=args,
        kwargs={"model_path": path, "public_key": key, "pin": _pin(path, key)},
        is_elementwise=True,
        use_abs_path=True,
    ).alias(alias)


def predict(
    model_path: str | os.PathLike,
    *exprs: IntoExpr,
    public_key: KeyLike = None,
) -> pl.Expr:
    """Predict with a `.mle` model, as a Polars expression.

    Parameters
    ----------
    model_path
        Path of the ``.mle`` model file.
    *exprs
        The feature columns, in the model's feature order: expressions or column names (a
        list of them works too). None: the frame's columns named like the model's features
        (by name; extra columns ignored). Numeric features take integer, float and Boolean
        columns; string and category features take String, Categorical and Enum columns (or
        numeric category codes); nulls are missing values.
    public_key
        Optional ED25519 public key (a key file's path, 64 hex characters, or 32 raw
        bytes). When given, a model that is unsigned or signed by another key is refused.

    Returns
    -------
    polars.Expr
        A column named ``prediction``: Float32/Float64 for regressors (an ``Array`` for
        multi-target models), the class label (Int64 or String) for classifiers.

    Raises
    ------
    polars.exceptions.ComputeError
        When the query runs: missing or corrupt model file, wrong number of feature columns,
        a column of the wrong kind (a string for a numeric feature, ...), a missing feature
        column (by name), invalid signature; or the model file was replaced after the
        expression was built and its pinned version is no longer held.
    ValueError
        Given no expressions, when the model's feature names cannot be read (missing or
        invalid file), as the expression is built.

    Notes
    -----
    The model is loaded and pinned when the expression is built: every chunk of a query
    scores with that version, even if the file is replaced while the query runs (never a mix
    of two models). Build the expression again to pick up a new file.

    Examples
    --------
    >>> import numpy as np, polars as pl, mle_runtime
    >>> from sklearn.linear_model import LinearRegression
    >>> from mle_runtime.polars import predict
    >>> df = pl.DataFrame({"x1": [1.0, 2.0, 3.0, 4.0], "x2": [0.0, 1.0, 0.0, 1.0]})
    >>> reg = LinearRegression().fit(df.to_numpy(), 2 * df["x1"] + 3 * df["x2"] + 1)
    >>> _ = mle_runtime.export_model(reg, "/tmp/mle_doctest_reg.mle", feature_names=["x1", "x2"])
    >>> out = df.with_columns(predict("/tmp/mle_doctest_reg.mle", "x1", "x2"))
    >>> [round(v, 4) for v in out["prediction"]]
    [3.0, 8.0, 7.0, 12.0]
    """
    return _call("mle_predict", model_path, exprs, public_key, "prediction")


def predict_proba(
    model_path: str | os.PathLike,
    *exprs: IntoExpr,
    public_key: KeyLike = None,
) -> pl.Expr:
    """Class probabilities of a `.mle` classifier, as a Polars expression.

    Parameters
    ----------
    model_path
        Path of the ``.mle`` model file (a classifier).
    *exprs
        The feature columns, in the model's feature order: expressions or column names (a
        list of them works too). None: the frame's columns named like the model's features
        (by name; extra columns ignored). Numeric features take integer, float and Boolean
        columns; string and category features take String, Categorical and Enum columns (or
        numeric category codes); nulls are missing values.
    public_key
        Optional ED25519 public key (a key file's path, 64 hex characters, or 32 raw
        bytes). When given, a model that is unsigned or signed by another key is refused.

    Returns
    -------
    polars.Expr
        A column named ``probabilities`` of dtype ``Array(Float64, n_classes)``, one
        probability per class in the order of the model's classes.

    Raises
    ------
    polars.exceptions.ComputeError
        When the query runs: as :func:`predict`, and when the model is not a classifier.

    Notes
    -----
    The model version is pinned when the expression is built, as in :func:`predict`.

    Examples
    --------
    >>> import numpy as np, polars as pl, mle_runtime
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mle_runtime.polars import predict_proba
    >>> df = pl.DataFrame({"x": [-2.0, -1.0, 1.0, 2.0]})
    >>> clf = LogisticRegression().fit(df.to_numpy(), [0, 0, 1, 1])
    >>> _ = mle_runtime.export_model(clf, "/tmp/mle_doctest_clf.mle", feature_names=["x"])
    >>> out = df.with_columns(predict_proba("/tmp/mle_doctest_clf.mle", "x"))
    >>> out.schema["probabilities"]
    Array(Float64, shape=(2,))
    >>> p = out["probabilities"].to_numpy()
    >>> bool(np.allclose(p, clf.predict_proba(df.to_numpy()), atol=1e-6))
    True
    """
    return _call("mle_predict_proba", model_path, exprs, public_key, "probabilities")


def explain(
    model_path: str | os.PathLike,
    *exprs: IntoExpr,
    public_key: KeyLike = None,
) -> pl.Expr:
    """Per-row feature contributions of a `.mle` tree model, as a Polars expression.

    Exact path-dependent TreeSHAP of the tree ensemble's raw output (the margin, before any
    link), as XGBoost's ``pred_contribs`` and LightGBM's ``pred_contrib``; the same values,
    bit for bit, as ``load_model(path).explain(x)``, SQL ``mle_explain`` and
    ``mle score --explain``.

    Parameters
    ----------
    model_path, *exprs, public_key
        As in :func:`predict` (no expressions: the frame's columns by name).

    Returns
    -------
    polars.Expr
        A column named ``contributions``: a ``Struct`` with one ``Float64`` field per feature
        (named as the feature) and ``bias``; for a multiclass model each field is an
        ``Array(Float64, n_classes)``. Each row's fields add up to its raw output.

    Raises
    ------
    polars.exceptions.ComputeError
        As :func:`predict`, and when the model cannot be explained (not a tree model, or
        written without node covers), naming why.
    """
    return _call("mle_explain", model_path, exprs, public_key, "contributions")
