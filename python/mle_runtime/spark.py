"""Score `.mle` models in PySpark, over Arrow batches.

>>> import mle_runtime.spark as mles                                    # doctest: +SKIP
>>> scored = mles.score(spark.read.parquet("customers.parquet"), "churn.mle")  # doctest: +SKIP
>>> churn = mles.udf("churn.mle")                                       # doctest: +SKIP
>>> df.select("id", churn("city", "age", "income"))                     # doctest: +SKIP

:func:`score` returns the DataFrame with the model's outputs appended — ``prediction`` (the
number for regressors, the class label for classifiers) and, for classifiers,
``probabilities`` (``array<double>``, one entry per class in the order of the model's classes)
— binding the model's features to the DataFrame's columns **by name** (other columns pass
through untouched). It runs with ``mapInArrow``: each partition's Arrow record batches go to
the runtime as they are (the same input policy as ``load_model(...).predict`` on a pyarrow
Table: string and category columns, nulls as missing values), with no Python per row. The
columns are checked when ``score`` is called, before any job runs: a missing feature column
or a column of the wrong kind is an :class:`~mle_runtime.InputError` naming it.

:func:`udf` gives a column function for ``df.select(udf(*cols))``: a scalar Arrow UDF
(``pyspark.sql.functions.arrow_udf``) whose arguments bind by position to the model's features
(a wrong number of columns is an :class:`~mle_runtime.InputError` when the column expression
is built; a column of the wrong kind fails the job with the runtime's message).

How the model travels: the driver reads the file once, verifies it (format, checksums and,
with ``public_key``, the signature) and broadcasts its **bytes** (never a pickled model
object; one broadcast per model content and SparkContext), so each executor fetches them once.
On an executor, the bytes are checked against the driver's SHA-256 digest, verified again
under the same signature policy (the public key travels with the job) and compiled once per
Python worker process: a module-level cache keyed by the content digest and the key. The
numbers are those of ``load_model(path).predict`` / ``predict_proba`` bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict

import numpy as np
import pyarrow as pa

from . import _native
from .errors import InputError, MLEError, ModelFileError, SecurityError
from .runtime import MLERuntime

__all__ = ["score", "udf"]

_OUTPUTS = ("prediction", "proba")
_MAX_KEY_FILE = 4096

# --------------------------------------------------------------------------------------------
# Executor side: one compiled model per content (and key) per Python worker process.

_RUNTIMES: OrderedDict[tuple[str, bytes | None], MLERuntime] = OrderedDict()
_RUNTIMES_MAX = 8
_LOCK = threading.Lock()
#: How many times this process compiled each model content (by digest), for diagnostics.
_LOADS: Counter[str] = Counter()


def _runtime_from_bytes(data: bytes, path: str, digest: str, key: bytes | None) -> MLERuntime:
    """The model of ``data`` (the bytes of ``path``), checked against the driver's
    ``digest`` and verified under ``key``; compiled once per process and content."""
    cache_key = (digest, key)
    with _LOCK:
        rt = _RUNTIMES.get(cache_key)
        if rt is not None:
            _RUNTIMES.move_to_end(cache_key)
            return rt
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            from .errors import CorruptedFileError

            raise CorruptedFileError(
                f"{path}: the model bytes received by this executor have SHA-256 {got}, "
                f"not the driver's {digest}")
        rt = MLERuntime(_native.Runtime.from_bytes(data, path, key), path)
        _LOADS[digest] += 1
        _RUNTIMES[cache_key] = rt
        while len(_RUNTIMES) > _RUNTIMES_MAX:
            _RUNTIMES.popitem(last=False)
        return rt


class _Shipped:
    """What a Spark task carries of a model: its name, digest, key and the broadcast of its
    bytes (all plain data; the compiled model never leaves a process)."""

    def __init__(self, path: str, digest: str, key: bytes | None, broadcast):
        self.path = path
        self.digest = digest
        self.key = key
        self.broadcast = broadcast

    def runtime(self) -> MLERuntime:
        with _LOCK:
            rt = _RUNTIMES.get((self.digest, self.key))
        if rt is not None:
            return rt
        return _runtime_from_bytes(self.broadcast.value, self.path, self.digest, self.key)


# --------------------------------------------------------------------------------------------
# Driver side.

_BROADCASTS: dict[tuple[str, str], object] = {}


def _key_bytes(public_key) -> bytes | None:
    """The public key as the bytes that travel to executors: raw key bytes as given, or the
    contents of a key file (read here, on the driver)."""
    if public_key is None:
        return None
    if isinstance(public_key, (bytes, bytearray, memoryview)):
        return bytes(public_key)
    kp = os.fspath(public_key)
    try:
        with open(kp, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as e:
        raise SecurityError(f"{kp}: cannot read the public key file: {e.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise SecurityError(f"{kp}: too large for a key file")
    return data


def _spark_context():
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        raise MLEError("mle_runtime.spark needs an active SparkSession (SparkContext)")
    return sc


def _ship(model_path, public_key) -> tuple[MLERuntime, _Shipped]:
    """Reads and verifies the model on the driver and broadcasts its bytes."""
    path = os.fspath(model_path)
    if os.path.isdir(path):
        raise ModelFileError(f"model path {path!r} is a directory, not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelFileError(f"cannot read model file {path!r}: {e.strerror}") from None
    key = _key_bytes(public_key)
    rt = MLERuntime(_native.Runtime.from_bytes(data, path, key), path)
    digest = hashlib.sha256(data).hexdigest()
    sc = _spark_context()
    bkey = (sc.applicationId, digest)
    bc = _BROADCASTS.get(bkey)
    if bc is None:
        bc = sc.broadcast(data)
        _BROADCASTS[bkey] = bc
    return rt, _Shipped(path, digest, key, bc)


def _feature_names(rt: MLERuntime) -> list[str]:
    return [f["name"] for f in rt.input_schema]


def _probe_outputs(rt: MLERuntime, table) -> dict:
    """Runs the model on a zero-row table: the runtime checks the columns (by name and
    kind, its one input policy) and gives the outputs' dtypes and widths."""
    return _outputs(rt, table)


def _outputs(rt: MLERuntime, x) -> dict[str, np.ndarray]:
    """``prediction`` (as ``rt.predict``) and, for classifiers, ``probabilities`` (as
    ``rt.predict_proba``) from one run of the model."""
    names = [o["name"] for o in rt.outputs]
    if "label" in names and rt.task in ("binary", "multiclass"):
        got = dict(zip(names, rt.run([x]), strict=True))
        out = {"prediction": got["label"]}
        if "probabilities" in got:
            out["probabilities"] = got["probabilities"]
        return out
    return {"prediction": rt.predict(x)}


def _spark_type(values: np.ndarray, path: str, what: str):
    from pyspark.sql import types as T

    dt = values.dtype
    if dt.kind in "OUS":
        elem = T.StringType()
    elif dt == np.float64:
        elem = T.DoubleType()
    elif dt == np.float32:
        elem = T.FloatType()
    elif dt == np.int64 or dt == np.uint32:
        elem = T.LongType()
    elif dt in (np.int32, np.uint16):
        elem = T.IntegerType()
    elif dt in (np.int16, np.uint8):
        elem = T.ShortType()
    elif dt == np.int8:
        elem = T.ByteType()
    elif dt == np.bool_:
        elem = T.BooleanType()
    else:
        raise MLEError(f"{path}: output {what!r} has dtype {dt}, which has no Spark type")
    if values.ndim == 1:
        return elem
    return T.ArrayType(elem, containsNull=False)


def _arrow(values: np.ndarray):
    """A numpy output as an Arrow array: 1-D as is (strings as Utf8), 2-D as a list per
    row."""

    if values.ndim == 1:
        if values.dtype.kind in "OUS":
            return pa.array(values, type=pa.string())
        return pa.array(values)
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).ravel()))


def _arrow_schema_of(df_schema, names: list[str], path: str):
    """The Arrow schema of the feature columns of a Spark schema (present ones only: the
    runtime names a missing one)."""
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_type

    fields = []
    by_name = {f.name: f for f in df_schema.fields}
    for n in names:
        f = by_name.get(n)
        if f is None:
            continue
        try:
            at = to_arrow_type(f.dataType)
        except Exception:  # a Spark type with no Arrow equivalent
            raise InputError(
                f"{path}: column {n!r} has Spark type {f.dataType.simpleString()}, which "
                f"cannot be passed to the model") from None
        if isinstance(f.dataType, T.StringType):
            at = pa.string()
        fields.append(pa.field(n, at))
    return pa.schema(fields)


def score(df, model_path, public_key=None):
    """The DataFrame ``df`` with the outputs of the model at ``model_path`` appended.

    Parameters
    ----------
    df
        A ``pyspark.sql.DataFrame`` holding a column named like each of the model's features
        (other columns are kept and passed through).
    model_path
        Path of the ``.mle`` model file, read on the driver (executors receive its bytes).
    public_key
        An ED25519 public key (a key file's path or its raw bytes): when given, a model that
        is unsigned or signed by another key is refused, on the driver and on every executor.

    Returns
    -------
    pyspark.sql.DataFrame
        ``df``'s columns, then ``prediction`` (``double``/``float`` for regressors, an array
        for multi-target ones; the class label, ``bigint`` or ``string``, for classifiers)
        and, for classifiers with probabilities, ``probabilities`` (``array<double>``).

    Raises
    ------
    ModelFileError, CorruptedFileError, SecurityError, ...
        When the model cannot be read or verified on the driver, naming the file.
    InputError
        When a feature column is missing or of the wrong kind, or ``df`` already has a
        column named like an output; before any job runs.
    """
    from pyspark.sql import types as T

    rt, shipped = _ship(model_path, public_key)
    path = shipped.path
    names = _feature_names(rt)
    arrow_schema = _arrow_schema_of(df.schema, names, path)
    probe = _probe_outputs(rt, arrow_schema.empty_table())
    clash = [c for c in probe if c in df.columns]
    if clash:
        raise InputError(
            f"{path}: the DataFrame already has a column named {clash[0]!r}, which score() "
            f"appends; rename or drop it first")
    out_fields = [T.StructField(c, _spark_type(v, path, c), nullable=False)
                  for c, v in probe.items()]
    out_schema = T.StructType(list(df.schema.fields) + out_fields)
    out_names = list(probe)

    def score_batches(batches):
        rt = shipped.runtime()
        for batch in batches:
            features = batch.select(names)
            outs = _outputs(rt, features)
            arrays = list(batch.columns) + [_arrow(outs[c]) for c in out_names]
            yield pa.RecordBatch.from_arrays(
                arrays, names=list(batch.schema.names) + out_names)

    return df.mapInArrow(score_batches, out_schema)


def udf(model_path, output: str = "prediction", public_key=None):
    """A column function scoring the model at ``model_path``: ``f(*cols)`` returns a Column
    (named ``prediction`` or ``probabilities``) for ``df.select(f(*cols))``.

    Parameters
    ----------
    model_path
        Path of the ``.mle`` model file, read on the driver (executors receive its bytes).
    output
        ``"prediction"`` (as ``rt.predict``) or ``"proba"`` (the class probabilities as
        ``array<double>``, classifiers only).
    public_key
        As in :func:`score`.

    The columns given to ``f`` bind by position to the model's features (one column per
    feature, names or Columns); a wrong number is an :class:`~mle_runtime.InputError` when
    ``f`` is called. Needs an active SparkSession.
    """
    from pyspark.sql.functions import arrow_udf

    if output not in _OUTPUTS:
        raise MLEError(f"output must be one of {', '.join(map(repr, _OUTPUTS))}, "
                       f"got {output!r}")
    rt, shipped = _ship(model_path, public_key)
    path = shipped.path
    names = _feature_names(rt)
    probe = _probe_outputs(rt, pa.table({n: pa.nulls(0) for n in names}))
    if output == "proba":
        if "probabilities" not in probe:
            raise MLEError(
                f"{path}: {rt.metadata['model_type']} has no probabilities output "
                f"(outputs: {', '.join(o['name'] for o in rt.outputs)}); use "
                f"output=\"prediction\"")
        column = "probabilities"
    else:
        column = "prediction"
    return_type = _spark_type(probe[column], path, column)
    only_proba = output == "proba"

    def score_arrays(*arrays: pa.Array) -> pa.Array:
        rt = shipped.runtime()
        table = pa.Table.from_arrays(list(arrays), names=names)
        values = rt.predict_proba(table) if only_proba else rt.predict(table)
        return _arrow(values)

    spark_fn = arrow_udf(score_arrays, return_type)

    def apply(*cols):
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        if len(cols) != len(names):
            raise InputError(
                f"{path}: the model takes {len(names)} feature column"
                f"{'' if len(names) == 1 else 's'} ({', '.join(names)}), got {len(cols)}")
        return spark_fn(*cols).alias(column)

    apply.__name__ = os.path.splitext(os.path.basename(path))[0] or "mle_predict"
    apply.__doc__ = f"Scores {path} ({output}); columns bind by position to: " \
                    f"{', '.join(names)}."
    return apply
