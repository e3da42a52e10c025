//! # mle-import
//!
//! Native importers that turn other frameworks' model files into `.mle` graphs
//! ([`mle_format::ModelBuilder`]) using the operators of `docs/OPS.md`: one `TreeEnsemble`
//! followed by the objective's transform (`Sigmoid`, `Softmax`, `Exp`, `BinaryToProba`,
//! `Threshold`, `ArgMax`).
//!
//! - XGBoost JSON and UBJSON (`Booster.save_model("m.json" | "m.ubj")`, `save_raw`):
//!   [`import_xgboost`]; see [`xgboost`] for the fields that decide a prediction.
//! - LightGBM text models (`Booster.save_model`, `model_to_string`): [`import_lightgbm`];
//!   see [`lightgbm`].
//! - ONNX (`.onnx`, a serialized `ModelProto`): [`onnx::import`] and [`onnx::import_file`]
//!   (an explicit entry point: ONNX has no magic number, so [`detect_format`] never guesses it).
//! - CatBoost JSON (`save_model("m.json", format="json", pool=...)`): [`import_catboost`]
//!   (explicit too: its JSON is not told apart from XGBoost's by the first bytes); see
//!   [`catboost`].
//!
//! Inputs are untrusted: every count and index is checked, nothing panics, and every error
//! ([`ImportError`]) names the source, the field (a JSON path, or a LightGBM line) and the
//! bound that failed. Models this importer cannot reproduce exactly (unknown objectives,
//! linear boosters or linear trees, vector leaves) are [`ImportError::UnsupportedModel`].
//!
//! Outputs follow the conventions of `docs/OPS.md`: regressors and rankers produce
//! `prediction`; classifiers `label` (class index, classes `0..C`) and `probabilities`
//! (binary as `[1 - p, p]`).
//!
//! Categorical features are given as their integer category codes (XGBoost: the codes of
//! the training data's categories; LightGBM: the integer values it was trained on).
//!
//! ```no_run
//! # fn main() -> Result<(), mle_import::ImportError> {
//! let builder = mle_import::import_file("model.json".as_ref(), None)?;
//! builder.write("model.mle", &mle_format::WriteOptions::default())?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod catboost;
pub mod ensemble;
pub mod error;
pub mod lightgbm;
pub mod onnx;
pub mod ubjson;
pub mod xgboost;

use std::path::Path;

pub use error::ImportError;
use mle_format::ModelBuilder;

/// The source formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// XGBoost JSON (`save_model("model.json")`).
    XgboostJson,
    /// XGBoost Universal Binary JSON (`save_model("model.ubj")`, the default since 2.1).
    XgboostUbjson,
    /// LightGBM text model (`save_model`, `model_to_string`).
    LightgbmText,
}

/// Guesses the format from the first bytes: `{` then `"` is JSON, `{` then a UBJSON
/// length/count marker is UBJSON, and a first line `tree` is a LightGBM text model.
pub fn detect_format(bytes: &[u8]) -> Option<SourceFormat> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    if bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n") || bytes == b"tree" {
        return Some(SourceFormat::LightgbmText);
    }
    let start = bytes.iter().position(|b| !is_ws(b))?;
    let rest = bytes.get(start..)?;
    if rest.first() != Some(&b'{') {
        return None;
    }
    if start == 0 {
        // UBJSON: `{` followed by a key length marker, or an optimized-container marker.
        if let Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#') = rest.get(1) {
            return Some(SourceFormat::XgboostUbjson);
        }
    }
    let next = rest.get(1..)?.iter().find(|b| !is_ws(b));
    match next {
        Some(b'"') | Some(b'}') => Some(SourceFormat::XgboostJson),
        _ => None,
    }
}

/// Imports an XGBoost model from JSON or UBJSON bytes (detected). `name` names the source
/// in error messages (usually the file name).
pub fn import_xgboost(bytes: &[u8], name: &str) -> Result<ModelBuilder, ImportError> {
    match detect_format(bytes) {
        Some(SourceFormat::XgboostUbjson) => import_xgboost_as(bytes, name, false),
        Some(SourceFormat::XgboostJson) => import_xgboost_as(bytes, name, true),
        _ => {
            if bytes.first() == Some(&b'{') {
                // Let the JSON parser say what is wrong.
                import_xgboost_as(bytes, name, true)
            } else {
                Err(ImportError::Malformed {
                    name: name.to_string(),
                    format: "XGBoost model",
                    detail: "neither JSON nor UBJSON: the first byte is not '{'".into(),
                })
            }
        }
    }
}

fn import_xgboost_as(bytes: &[u8], name: &str, json: bool) -> Result<ModelBuilder, ImportError> {
    let doc = if json {
        serde_json::from_slice(bytes).map_err(|e| ImportError::Malformed {
            name: name.to_string(),
            format: "XGBoost JSON",
            detail: e.to_string(),
        })?
    } else {
        ubjson::decode(bytes).map_err(|e| ImportError::Malformed {
            name: name.to_string(),
            format: "XGBoost UBJSON",
            detail: e.to_string(),
        })?
    };
    xgboost::import_value(&doc, name)
}

/// Imports a CatBoost JSON model (`save_model(path, format="json", pool=...)`; see
/// [`catboost`]). `name` names the source in error messages.
pub fn import_catboost(bytes: &[u8], name: &str) -> Result<ModelBuilder, ImportError> {
    catboost::import_json(bytes, name)
}

/// Imports a LightGBM text model. `name` names the source in error messages.
pub fn import_lightgbm(text: &str, name: &str) -> Result<ModelBuilder, ImportError> {
    lightgbm::import_text(text, name)
}

/// Reads and imports a model file; `format` `None` detects it from the content.
pub fn import_file(path: &Path, format: Option<SourceFormat>) -> Result<ModelBuilder, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let format = match format.or_else(|| detect_format(&bytes)) {
        Some(f) => f,
        None => return Err(ImportError::UnknownFormat { name }),
    };
    match format {
        SourceFormat::XgboostJson => import_xgboost_as(&bytes, &name, true),
        SourceFormat::XgboostUbjson => import_xgboost_as(&bytes, &name, false),
        SourceFormat::LightgbmText => {
            let text = std::str::from_utf8(&bytes).map_err(|e| ImportError::Malformed {
                name: name.clone(),
                format: "LightGBM text model",
                detail: format!("not UTF-8: {e}"),
            })?;
            import_lightgbm(text, &name)
        }
    }
}
