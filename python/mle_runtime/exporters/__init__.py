"""Framework exporters: each turns a trained model into an :class:`Export`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._graph import Graph


@dataclass
class Export:
    """What an exporter hands to :func:`mle_runtime.export_model`.

    ``kind`` is ``"graph"`` (``graph`` + ``metadata`` written by the Rust builder) or
    ``"xgboost"`` / ``"lightgbm"`` (``payload`` given to the native importer, then
    ``metadata`` patched over the importer's metadata).
    ``reference(x)`` returns the framework's own outputs by graph output name.
    ``features`` (typed models) are the input features for the native builder, and for the
    importer kinds ``prefix`` is ``(nodes_json, output)``: the ``Lookup`` chain the imported
    trees read from. ``sample(rows)`` makes the validation sample when the user gives none
    (one that respects the input schema), ``None`` for the standard-normal matrix.
    """

    kind: str
    framework: str
    model_type: str
    metadata: dict
    n_features: int
    reference: Callable[[Any], dict]
    graph: Graph | None = None
    payload: bytes | None = None
    extra: dict = field(default_factory=dict)
    features: list | None = None
    prefix: tuple[str, str] | None = None
    sample: Callable[[int], Any] | None = None
