"""PyTorch exporter: traces an ``nn.Module`` with ``torch.fx`` and maps its nodes onto the
dense ops of docs/OPS.md (f32). Shapes come from ``ShapeProp`` on an input of
``input_shape``; every intermediate value must be 2-D ``[batch, features]``."""

from __future__ import annotations

import operator

import numpy as np

from .._graph import Graph, make_metadata
from ..errors import UnsupportedModelError
from . import Export

SUPPORTED_MODULES = ["Linear", "ReLU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Tanh",
                     "Softmax", "LogSoftmax", "LayerNorm", "BatchNorm1d (eval)", "Dropout",
                     "Flatten", "Identity"]
SUPPORTED_FUNCTIONS = ["+ / torch.add (residual)", "- / torch.sub", "* / torch.mul",
                       "/ / torch.div", "torch.cat", "torch.flatten", "torch.relu",
                       "torch.sigmoid", "torch.tanh", "F.relu", "F.leaky_relu", "F.gelu",
                       "F.silu", "F.sigmoid", "F.tanh", "F.softmax", "F.log_softmax",
                       "F.dropout", "Tensor.relu/sigmoid/tanh/flatten/softmax/log_softmax"]


def _unsupported(what: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"PyTorch: {what} is not supported. Supported layers: {', '.join(SUPPORTED_MODULES)}; "
        f"functions: {', '.join(SUPPORTED_FUNCTIONS)}")


def _last_dim(dim, ndim=2) -> int:
    d = -1 if dim is None else int(dim)
    if d not in (-1, ndim - 1):
        raise _unsupported(f"softmax/cat over dim {dim} (only the feature dimension)")
    return -1


def export(model, *, input_shape=None, feature_names=None, quantization=None,
           user_metadata=None, **_) -> Export:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.fx.passes.shape_prop import ShapeProp

    was_training = model.training
    model.eval()
    try:
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as e:
            raise UnsupportedModelError(
                f"PyTorch: {type(model).__name__} cannot be traced by torch.fx: {e}") from None
        modules = dict(gm.named_modules())
        if input_shape is None:
            first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
            if first is None:
                raise UnsupportedModelError(
                    "PyTorch: input_shape is required (no Linear layer to infer it from)")
            input_shape = (1, first.in_features)
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) < 2:
            raise UnsupportedModelError(
                f"PyTorch: input_shape {input_shape} must be (batch, features)")
        n_features = int(np.prod(input_shape[1:]))
        sample = torch.zeros((max(input_shape[0], 1),) + input_shape[1:], dtype=torch.float32)
        with torch.no_grad():
            ShapeProp(gm).propagate(sample)

        g = Graph(n_features=n_features, input_dtype="f32")
        env: dict = {}
        output_value = None

        def width(node) -> int:
            meta = node.meta.get("tensor_meta")
            if meta is None or not hasattr(meta, "shape"):
                raise _unsupported(f"node {node.name} ({node.op} {node.target}) without a "
                                   "single tensor output")
            shape = tuple(meta.shape)
            if len(shape) != 2 and not (node.op == "placeholder"):
                raise _unsupported(
                    f"node {node.name} produces shape {shape}: only 2-D [batch, features] "
                    "values can be exported")
            return int(np.prod(shape[1:]))

        def val(a):
            if isinstance(a, torch.fx.Node):
                return env[a.name]
            raise _unsupported(f"argument {a!r}")

        def const(x) -> str:
            # a scalar constant broadcast against a tensor
            return g.weight("const", np.asarray([float(x)], dtype=np.float32))

        def binary(op, node):
            a, b = node.args[0], node.args[1]
            if len(node.args) > 2 or node.kwargs.get("alpha", 1) != 1:
                raise _unsupported(f"{node.target} with alpha")
            w = width(node)
            if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node):
                return g.node(op, [val(a), val(b)], "f32", w)
            if isinstance(a, torch.fx.Node) and isinstance(b, (int, float)):
                return g.node(op, [val(a)], "f32", w, b=const(b))
            raise _unsupported(f"{op} of {a!r} and {b!r}")

        def act(name, node, x, **attrs):
            return g.node(name, [x], "f32", width(node), **attrs)

        for node in gm.graph.nodes:
            if node.op == "placeholder":
                if "X" in env.values():
                    raise _unsupported("a model with more than one input")
                env[node.name] = "X"
                continue
            if node.op == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node):
                    raise _unsupported("a model returning several tensors")
                output_value = env[out.name]
                continue
            if node.op == "get_attr":
                raise _unsupported(f"direct parameter access {node.target!r} in forward")
            if node.op == "call_module":
                m = modules[node.target]
                x = val(node.args[0])
                t = type(m)
                if isinstance(m, nn.Linear):
                    wt = m.weight.detach().cpu().numpy()
                    attrs = {"weight": g.weight("weight", wt), "trans_b": 1}
                    if m.bias is not None:
                        attrs["bias"] = g.weight("bias", m.bias.detach().cpu().numpy())
                    r = g.node("Gemm", [x], "f32", width(node), **attrs)
                elif isinstance(m, nn.ReLU):
                    r = act("Relu", node, x)
                elif isinstance(m, nn.LeakyReLU):
                    r = act("LeakyRelu", node, x, alpha=float(m.negative_slope))
                elif isinstance(m, nn.GELU):
                    r = act("Gelu", node, x, approximate=m.approximate)
                elif isinstance(m, nn.SiLU):
                    r = act("Silu", node, x)
                elif isinstance(m, nn.Sigmoid):
                    r = act("Sigmoid", node, x)
                elif isinstance(m, nn.Tanh):
                    r = act("Tanh", node, x)
                elif isinstance(m, nn.Softmax):
                    r = act("Softmax", node, x, axis=_last_dim(m.dim))
                elif isinstance(m, nn.LogSoftmax):
                    r = act("LogSoftmax", node, x, axis=_last_dim(m.dim))
                elif isinstance(m, nn.LayerNorm):
                    if len(m.normalized_shape) != 1:
                        raise _unsupported("LayerNorm over more than the last dimension")
                    n = m.normalized_shape[0]
                    wt = (m.weight.detach().cpu().numpy() if m.weight is not None
                          else np.ones(n, np.float32))
                    b = (m.bias.detach().cpu().numpy() if m.bias is not None
                         else np.zeros(n, np.float32))
                    r = act("LayerNorm", node, x, weight=g.weight("ln_weight", wt),
                            bias=g.weight("ln_bias", b), epsilon=float(m.eps))
                elif isinstance(m, nn.BatchNorm1d):
                    if m.running_mean is None or m.running_var is None:
                        raise _unsupported("BatchNorm1d without running statistics")
                    c = m.num_features
                    wt = (m.weight.detach().cpu().numpy() if m.weight is not None
                          else np.ones(c, np.float32))
                    b = (m.bias.detach().cpu().numpy() if m.bias is not None
                         else np.zeros(c, np.float32))
                    r = act("BatchNorm", node, x,
                            mean=g.tensor("bn_mean", m.running_mean.detach().cpu().numpy()
                                          .astype(np.float32)),
                            var=g.tensor("bn_var", m.running_var.detach().cpu().numpy()
                                         .astype(np.float32)),
                            weight=g.tensor("bn_weight", wt.astype(np.float32)),
                            bias=g.tensor("bn_bias", b.astype(np.float32)),
                            epsilon=float(m.eps))
                elif isinstance(m, (nn.Dropout, nn.Identity)):
                    r = x
                elif isinstance(m, nn.Flatten):
                    r = x if x == "X" else act("Flatten", node, x)
                else:
                    raise _unsupported(f"layer {t.__name__} ({node.target})")
                env[node.name] = r
                continue
            if node.op in ("call_function", "call_method"):
                f = node.target
                args = node.args
                if f in (operator.add, torch.add, "add"):
                    r = binary("Add", node)
                elif f in (operator.sub, torch.sub, "sub"):
                    r = binary("Sub", node)
                elif f in (operator.mul, torch.mul, "mul"):
                    r = binary("Mul", node)
                elif f in (operator.truediv, torch.div, "div"):
                    r = binary("Div", node)
                elif f in (torch.relu, F.relu, "relu"):
                    r = act("Relu", node, val(args[0]))
                elif f in (torch.sigmoid, F.sigmoid, "sigmoid"):
                    r = act("Sigmoid", node, val(args[0]))
                elif f in (torch.tanh, F.tanh, "tanh"):
                    r = act("Tanh", node, val(args[0]))
                elif f is F.silu:
                    r = act("Silu", node, val(args[0]))
                elif f is F.gelu:
                    r = act("Gelu", node, val(args[0]),
                            approximate=node.kwargs.get("approximate", "none"))
                elif f is F.leaky_relu:
                    slope = args[1] if len(args) > 1 else node.kwargs.get("negative_slope", 0.01)
                    r = act("LeakyRelu", node, val(args[0]), alpha=float(slope))
                elif f in (F.softmax, torch.softmax, "softmax", F.log_softmax,
                           torch.log_softmax, "log_softmax"):
                    dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
                    op = "LogSoftmax" if "log" in getattr(f, "__name__", str(f)) else "Softmax"
                    r = act(op, node, val(args[0]), axis=_last_dim(dim))
                elif f in (F.dropout,):
                    r = val(args[0])
                elif f in (torch.flatten, "flatten"):
                    start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)
                    x = val(args[0])
                    if int(start) != 1:
                        raise _unsupported(f"flatten from dim {start} (only start_dim=1)")
                    r = x if x == "X" else act("Flatten", node, x)
                elif f is torch.cat:
                    tensors = args[0]
                    dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
                    if int(dim) not in (1, -1):
                        raise _unsupported(f"torch.cat over dim {dim} (only dim=1)")
                    r = g.node("Concat", [val(t) for t in tensors], "f32", width(node), axis=1)
                else:
                    fname = getattr(f, "__name__", None) or str(f)
                    kind = "method" if node.op == "call_method" else "function"
                    raise _unsupported(f"{kind} {fname}")
                env[node.name] = r
                continue
            raise _unsupported(f"fx node kind {node.op}")

        if output_value is None:
            raise _unsupported("a model without an output")
        if output_value == "X":
            output_value = g.node("Identity", ["X"], "f32", n_features)
        g.output(output_value, "prediction")
        if feature_names is None:
            feature_names = [f"f{i}" for i in range(n_features)]
        feature_names = list(feature_names)
        if len(feature_names) != n_features:
            raise UnsupportedModelError(
                f"feature_names has {len(feature_names)} names but the model takes "
                f"{n_features} features")
        meta = make_metadata(
            framework="pytorch",
            framework_version=torch.__version__,
            model_type=type(model).__name__,
            task="regression",
            feature_names=feature_names,
            input_dtype="f32",
            outputs=g.outputs,
            user=user_metadata,
        )
        meta["user"]["mle.input_shape"] = list(input_shape)
    finally:
        model.train(was_training)

    def reference(x):
        t = torch.as_tensor(np.asarray(x, dtype=np.float32))
        if len(input_shape) > 2:
            t = t.reshape((t.shape[0],) + input_shape[1:])
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                return {"prediction": model(t).detach().cpu().numpy()}
        finally:
            model.train(was)

    return Export(kind="graph", framework="pytorch", model_type=type(model).__name__,
                  metadata=meta, n_features=n_features, reference=reference, graph=g)
