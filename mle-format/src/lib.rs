//! # mle-format
//!
//! The `.mle` model file: a 128-byte header, a JSON metadata section, a JSON graph section
//! (the [`ir`]), a 64-byte aligned weights section usable in place from an mmap, and an
//! optional ED25519 signature. The byte-level specification is `FORMAT.md` in this crate; the
//! operators are specified in `docs/OPS.md` at the workspace root.
//!
//! ```
//! use mle_format::*;
//! # fn main() -> Result<(), FormatError> {
//! let meta = Metadata {
//!     framework: "example".into(), framework_version: String::new(), model_type: "Scaler".into(),
//!     task: Task::Regression,
//!     input: InputSchema { feature_names: vec!["a".into()], dtype: DType::F64, shape: vec![-1, 1] },
//!     output: OutputSchema { names: vec!["prediction".into()], dtypes: vec![DType::F64], class_labels: None },
//!     export_time: String::new(), exporter_version: String::new(), user: Default::default(),
//! };
//! let mut b = ModelBuilder::new(meta);
//! b.add_tensor("offset", &[1], &[1.0f64])?;
//! let bytes = b.to_bytes(&WriteOptions::default())?;
//! let file = MleFile::from_bytes(&bytes, "example.mle", &ReadOptions::default())?;
//! assert_eq!(file.tensor_as::<f64>("offset")?, &[1.0]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod header;
pub mod ir;
pub mod metadata;
pub mod quant;
pub mod reader;
pub mod sign;
pub mod tensor;
pub mod writer;

pub use error::{FormatError, Result, Section};
pub use header::Header;
pub use ir::{Attr, DType, Graph, Node, Quantization, TensorDesc, ValueInfo};
pub use metadata::{ClassLabels, InputSchema, Metadata, OutputSchema, Task};
pub use reader::{MleFile, ReadOptions};
pub use sign::{
    generate_key, read_public_key, read_secret_key, sign_bytes, verify_bytes, PublicKey, SecretKey,
};
pub use tensor::{AlignedBuf, Element, TensorView};
pub use writer::{write_atomic, ModelBuilder, QuantMode, WriteOptions};
