"""Score `.mle` models inside datafusion-python queries.

``register(ctx)`` adds to a ``datafusion.SessionContext`` the same SQL functions as ``mle sql``::

    SELECT mle_predict('model.mle', a, b) AS p FROM t          -- the prediction
    SELECT mle_predict_proba('model.mle', a, b) FROM t         -- class probabilities (list)
    SELECT mle_explain('model.mle', a, b) FROM t               -- struct: a, b, bias
    SELECT mle_predict_leaf('model.mle', a, b) FROM t          -- leaf per tree

The scalar functions are the native UDFs of the ``mle-sql`` crate handed to datafusion-python
through ``datafusion-ffi`` (the ``__datafusion_scalar_udf__`` PyCapsule protocol): no Python
runs per batch, batches cross by the Arrow C Data Interface, and the input policy, output
contract and model cache are those of ``mle sql`` and ``load_model``. The model is opened and
the arguments are checked while the query is planned: a missing or corrupt file, a model not
signed by ``public_key``, a wrong number of arguments or a column of the wrong kind fails
``ctx.sql(...)`` with an error naming the file (datafusion-python raises it as ``Exception``).
NULL is a missing value.

Not here yet: the table function ``mle_score`` of ``mle sql``. datafusion-python 55 cannot
give a Python table function the table (``session.table`` inside the call panics on a nested
Tokio runtime), and exported through datafusion-ffi it plans but crashed datafusion-python
while the result was collected; bind by name with ``rt.input_schema`` meanwhile.

The datafusion-ffi ABI is tied to DataFusion's major version: this build needs
``datafusion`` 55.x (the package pinned in the test environment).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datafusion

__all__ = ["register"]

KeyLike = str | os.PathLike | bytes | None


def _native():
    from mle_runtime import _native

    if not hasattr(_native, "datafusion_udfs"):
        raise ImportError(
            "mle_runtime was built without its datafusion-python support "
            "(the `datafusion` feature of the mle-python crate)"
        )
    return _native


def _check_version() -> None:
    import datafusion

    major = int(datafusion.__version__.split(".")[0])
    want = _native().DATAFUSION_MAJOR
    if major != want:
        raise ImportError(
            f"mle_runtime.datafusion needs datafusion {want}.x (the datafusion-ffi ABI it "
            f"was built with); datafusion {datafusion.__version__} is installed"
        )


def _key(public_key: KeyLike) -> Any:
    if public_key is None or isinstance(public_key, bytes):
        return public_key
    return os.fspath(public_key)


def register(ctx: datafusion.SessionContext, public_key: KeyLike = None) -> None:
    """Registers ``mle_predict``, ``mle_predict_proba``, ``mle_explain`` and
    ``mle_predict_leaf`` on ``ctx``.

    With ``public_key`` (a key file's path or the key's bytes), every model these functions
    open must carry a valid signature by that key; an unsigned or wrongly signed file fails
    the query at planning time."""
    from datafusion import ScalarUDF

    _check_version()
    native = _native()
    for udf in native.datafusion_udfs(_key(public_key)):
        ctx.register_udf(ScalarUDF.from_pycapsule(udf))
