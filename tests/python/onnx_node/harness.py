"""Runs one ONNX backend node test case (``onnx.backend.test.case.node``: the cases the
``onnx`` package generates with its reference implementation, the same that fill its
``backend/test/data/node``) through the native importer and the runtime.

The runtime takes one runtime input ``[batch, features]`` and gives ``[N]`` / ``[N, T]``
outputs, so each case is adapted the way tract's harness adapts its own: inputs after the
first become initializers (constants), a first input of rank >= 3 is fed flattened and
reshaped back by a leading ``Reshape``, and one output of rank >= 3 is flattened
(``Flatten(axis=1)``) and compared flattened. Nothing else about the case changes."""

from __future__ import annotations

import os
import tempfile

import mle_runtime as mle
import numpy as np
from mle_runtime import _native


def adapt(case):
    """``(model bytes, runtime input, expected outputs)`` of a case; ``TypeError`` when there
    is no runtime input, an empty one, or one that is not a tensor (sequences, optionals,
    maps: nothing the runtime takes)."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    ins, outs = case.data_sets[0]
    as_array = lambda v: numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v  # noqa: E731
    ins = [as_array(v) for v in ins]
    outs = [np.asarray(as_array(o)) for o in outs]
    if not ins:
        raise TypeError("no runtime input")
    if not all(isinstance(v, np.ndarray) for v in ins):
        raise TypeError("a non-tensor input (sequence, optional or map)")
    if ins[0].size == 0:
        raise TypeError("an empty runtime input")
    g = m.graph
    for inp, val in list(zip(g.input, ins, strict=False))[1:]:
        g.initializer.append(numpy_helper.from_array(val, inp.name))
    del g.input[len(ins[:1]) :]
    x0 = ins[0]
    if x0.ndim >= 3 and x0.dtype.kind == "f":
        inp = g.input[0]
        elem = inp.type.tensor_type.elem_type
        flat = helper.make_tensor_value_info(inp.name + "_flat", elem,
                                             [None, int(np.prod(x0.shape[1:]))])
        shape = numpy_helper.from_array(np.array([-1, *x0.shape[1:]], dtype=np.int64),
                                        inp.name + "_shape")
        g.initializer.append(shape)
        g.node.insert(0, helper.make_node("Reshape", [flat.name, shape.name], [inp.name],
                                          name="harness_reshape"))
        del g.input[0]
        g.input.insert(0, flat)
        x0 = x0.reshape(x0.shape[0], -1)
    if len(g.output) == 1 and len(outs) == 1 and outs[0].ndim >= 3:
        o = g.output[0]
        flat = helper.make_tensor_value_info(o.name + "_flat", o.type.tensor_type.elem_type,
                                             [None, int(np.prod(outs[0].shape[1:]))])
        g.node.append(helper.make_node("Flatten", [o.name], [flat.name], axis=1,
                                       name="harness_flatten"))
        del g.output[0]
        g.output.insert(0, flat)
        outs = [outs[0].reshape(outs[0].shape[0], -1)]
    return m.SerializeToString(), x0, outs


def run(case):
    """The runtime's outputs and the expected ones; raises what the importer raises."""
    payload, x, want = adapt(case)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.mle")
        _native.import_onnx(payload, case.name, None, path)
        got = mle.load_model(path).run([x])
    return [np.asarray(g) for g in got], want


def matches(got, want, rtol, atol) -> bool:
    if len(got) == 2 and len(want) == 2 and got[0].ndim == 1 and want[0].ndim != 1:
        got = got[::-1]  # label first in the runtime, probabilities first in the case
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if w.dtype.kind in "OUS":
            if g.shape != w.shape or not np.all(g.astype(str) == w.astype(str)):
                return False
        elif g.size != w.size or not np.allclose(
                g.astype(np.float64).reshape(w.shape), w.astype(np.float64),
                rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True
