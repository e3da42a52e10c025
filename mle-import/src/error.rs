//! Typed import errors. Every message names the source (file name), the field (with its
//! JSON path or LightGBM line number) and the bound that failed.

use std::path::PathBuf;

use thiserror::Error;

/// An error importing a model from another framework's file.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The bytes are not well-formed JSON, UBJSON or LightGBM text.
    #[error("{name}: malformed {format}: {detail}")]
    Malformed {
        /// Source name (file name or `<memory>`).
        name: String,
        /// `XGBoost JSON`, `XGBoost UBJSON` or `LightGBM text model`.
        format: &'static str,
        /// What is wrong and where (byte offset or line).
        detail: String,
    },
    /// A field is missing, has the wrong type, or holds a value out of its bounds.
    #[error("{name}: {field}: {detail}")]
    InvalidField {
        /// Source name.
        name: String,
        /// The field: a JSON path such as `learner.gradient_booster.model.trees[3].left_children[5]`,
        /// or for LightGBM `line 42: Tree=3 left_child[1]`.
        field: String,
        /// What is wrong, with the bound that failed.
        detail: String,
    },
    /// The model is well formed but uses something this importer cannot express exactly.
    #[error("{name}: unsupported model: {detail}")]
    UnsupportedModel {
        /// Source name.
        name: String,
        /// What is unsupported (names the objective, booster or feature).
        detail: String,
    },
    /// An ONNX node whose operator (or attribute value) has no exact translation onto the
    /// operators of `docs/OPS.md`.
    #[error("{name}: unsupported ONNX operator {op} (opset {opset}) at node {node:?}: {detail}")]
    UnsupportedOp {
        /// Source name.
        name: String,
        /// `domain:op_type` (`ai.onnx.ml:SVMClassifier`, or `Conv` for the default domain).
        op: String,
        /// The node's name, or `#index` when it has none.
        node: String,
        /// The opset version of the operator's domain the model imports.
        opset: i64,
        /// Why (the attribute value refused, or what is missing).
        detail: String,
    },
    /// The bytes are none of the supported formats.
    #[error("{name}: not an XGBoost JSON/UBJSON model or a LightGBM text model")]
    UnknownFormat {
        /// Source name.
        name: String,
    },
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The `.mle` builder refused the graph (an internal inconsistency).
    #[error(transparent)]
    Build(#[from] mle_format::FormatError),
}
