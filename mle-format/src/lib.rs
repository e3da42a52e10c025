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
//! let meta = Metadata::new("example", "Scaler", Task::Regression, vec!["a".into()], DType::F64,
//!     &[("prediction", DType::F64)]);
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
pub mod schema;
pub mod sign;
pub mod tensor;
pub mod tree;
pub mod vocab;
pub mod writer;

pub use error::{FormatError, Result, Section};
pub use header::Header;
pub use ir::{Attr, DType, Graph, Node, Quantization, TensorDesc, ValueInfo};
pub use metadata::{ClassLabels, InputSchema, Metadata, OutputSchema, Task};
pub use reader::{MleFile, ReadOptions};
pub use schema::{
    Categories, CategoriesRef, FeatureKind, FeatureSpec, InputFeature, InputKind, SchemaError,
};
pub use sign::{
    generate_key, read_public_key, read_secret_key, sign_bytes, verify_bytes, PublicKey, SecretKey,
};
pub use tensor::{AlignedBuf, Element, TensorView};
pub use vocab::{IntVocabulary, VocabError, Vocabulary};
pub use writer::{write_atomic, ModelBuilder, QuantMode, WriteOptions, DEFAULT_ZSTD_LEVEL};
