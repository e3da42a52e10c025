//! Typed errors of the format crate. Every message names the file (when there is one),
//! the section or field, and the bound that failed.

use std::path::PathBuf;

use thiserror::Error;

/// Which part of a `.mle` file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The fixed 128-byte header.
    Header,
    /// The JSON metadata section.
    Metadata,
    /// The JSON graph section.
    Graph,
    /// The weights section.
    Weights,
    /// The signature section.
    Signature,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata section",
            Section::Graph => "graph section",
            Section::Weights => "weights section",
            Section::Signature => "signature section",
        })
    }
}

/// An error reading, writing, signing or verifying a `.mle` file.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The file is shorter than a structure it must contain.
    #[error("{file}: truncated in the {section}: the file needs {needed} bytes but has {actual}")]
    Truncated {
        /// File name (or `<memory>`).
        file: String,
        /// What was being read.
        section: Section,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        actual: u64,
    },
    /// The first four bytes are not `MLE\0`.
    #[error("{file}: not an MLE model: bad magic {found:02x?} (expected 4d 4c 45 00)")]
    BadMagic {
        /// File name.
        file: String,
        /// The first bytes found.
        found: [u8; 4],
    },
    /// The file's major version is newer than this reader.
    #[error("{file}: format version {file_major}.{file_minor} is not supported (this reader supports {supported_major}.x up to {supported_major}.{supported_minor})")]
    VersionMismatch {
        /// File name.
        file: String,
        /// The file's major version.
        file_major: u16,
        /// The file's minor version.
        file_minor: u16,
        /// The major version this reader supports.
        supported_major: u16,
        /// The newest minor version this reader knows.
        supported_minor: u16,
    },
    /// A section's CRC32 does not match its bytes.
    #[error("{file}: checksum mismatch in the {section}: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// File name.
        file: String,
        /// Which section.
        section: Section,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The bytes are well framed but their content is inconsistent.
    #[error("{file}: corrupted {section}: {detail}")]
    Corrupted {
        /// File name.
        file: String,
        /// Which section.
        section: Section,
        /// What is wrong, naming the field and the bound.
        detail: String,
    },
    /// A required feature flag this reader does not know.
    #[error("{file}: unsupported required feature flags {flags:#010x} (known: {known:#010x})")]
    UnsupportedFeature {
        /// File name.
        file: String,
        /// Unknown required bits.
        flags: u32,
        /// Bits this reader knows.
        known: u32,
    },
    /// A signature was required and the file has none.
    #[error("{file}: the model is not signed, and a signature is required")]
    SignatureMissing {
        /// File name.
        file: String,
    },
    /// The signature does not verify with the given key.
    #[error("{file}: invalid signature: {detail}")]
    SignatureInvalid {
        /// File name.
        file: String,
        /// Why.
        detail: String,
    },
    /// A key file could not be read or has the wrong form.
    #[error("{path}: bad key file: {detail}")]
    BadKey {
        /// Key file path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A tensor lookup failed (missing name, wrong dtype).
    #[error("{file}: tensor {name:?}: {detail}")]
    Tensor {
        /// File name.
        file: String,
        /// Tensor name.
        name: String,
        /// Why.
        detail: String,
    },
    /// The builder was given inconsistent data.
    #[error("cannot build model: {0}")]
    Build(String),
    /// The input schema (`input.features` and its vocabulary tensors) breaks a rule.
    #[error("{file}: input schema: {}{error}", crate::schema::feature_prefix(.feature))]
    Schema {
        /// File name.
        file: String,
        /// The feature the error is about (`None`: the schema as a whole).
        feature: Option<String>,
        /// Which rule, naming the tensor and the bound.
        #[source]
        error: crate::schema::SchemaError,
    },
    /// The builder was given an input schema or a vocabulary that breaks a rule.
    #[error("cannot build model: input schema: {}{error}", crate::schema::feature_prefix(.feature))]
    BuildSchema {
        /// The feature the error is about (`None`: the schema or a vocabulary).
        feature: Option<String>,
        /// Which rule.
        #[source]
        error: crate::schema::SchemaError,
    },
    /// An operating-system I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
