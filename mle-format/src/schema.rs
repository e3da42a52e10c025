//! Typed input features: the metadata's `input.features` (a name and a kind per feature, the
//! categories of a categorical feature as a vocabulary in the weights section), written by
//! [`ModelBuilder`] and read by [`MleFile::input_features`] (see `FORMAT.md`, "Input
//! features").
//!
//! ```
//! use mle_format::*;
//! # fn main() -> Result<(), FormatError> {
//! let meta = Metadata::new("example", "Trees", Task::Regression,
//!     vec!["age".into(), "city".into()], DType::F64, &[("prediction", DType::F64)]);
//! let mut b = ModelBuilder::new(meta);
//! let city = b.add_vocabulary("vocab.city", &["Paris", "Zürich", ""])?;
//! b.set_input_features(vec![
//!     FeatureSpec::new("age", FeatureKind::Float),
//!     FeatureSpec::category("city", city),
//! ])?;
//! let bytes = b.to_bytes(&WriteOptions::default())?;
//! let file = MleFile::from_bytes(&bytes, "example.mle", &ReadOptions::default())?;
//! let features = file.input_features()?;
//! let InputKind::Category(Categories::Strings(vocab)) = &features[1].kind else { panic!() };
//! assert_eq!(vocab.get(1), Some("Zürich"));
//! assert_eq!(vocab.iter().collect::<Vec<_>>(), ["Paris", "Zürich", ""]);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{FormatError, Result};
use crate::ir::{DType, TensorDesc};
use crate::metadata::Metadata;
use crate::reader::MleFile;
use crate::tensor::{cast_slice, AlignedBuf, Element, TensorView};
use crate::vocab::{IntVocabulary, VocabError, Vocabulary};
use crate::writer::ModelBuilder;

/// The minor format version of a file whose metadata lists typed input features (1.1); files
/// without them are written as 1.0, byte for byte as before.
pub const SCHEMA_MINOR_VERSION: u16 = 1;

/// The kind of an input feature (`input.features[].kind`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// A real number (what every feature of a file without `features` is).
    Float,
    /// An integer-valued number.
    Integer,
    /// True or false.
    Boolean,
    /// A string without a vocabulary.
    String,
    /// One of a fixed set of categories, listed in a vocabulary (`categories`).
    Category,
    /// A kind this reader does not know (from a newer writer). Kept so that the error can name
    /// it: a file with such a feature is refused ([`SchemaError::UnknownKind`]).
    #[serde(untagged)]
    Unknown(String),
}

impl FeatureKind {
    /// The name used in JSON (`"float"`, `"category"`, ...).
    pub fn name(&self) -> &str {
        match self {
            FeatureKind::Float => "float",
            FeatureKind::Integer => "integer",
            FeatureKind::Boolean => "boolean",
            FeatureKind::String => "string",
            FeatureKind::Category => "category",
            FeatureKind::Unknown(s) => s,
        }
    }
}

impl std::fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a categorical feature's vocabulary is stored (`input.features[].categories`): the
/// names of its tensors in the weights section.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CategoriesRef {
    /// String categories: `{"type": "string", "bytes": …, "offsets": …}`.
    String {
        /// The `u8` tensor of concatenated UTF-8 bytes.
        bytes: String,
        /// The `u32` tensor of `n + 1` offsets into `bytes`.
        offsets: String,
    },
    /// Integer categories: `{"type": "integer", "values": …}`.
    Integer {
        /// The `i64` tensor of the `n` values.
        values: String,
    },
}

/// One input feature as stored in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// The feature's name; equal to the same position of `input.feature_names`.
    pub name: String,
    /// Its kind.
    pub kind: FeatureKind,
    /// Its vocabulary: present exactly when the kind is `category`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<CategoriesRef>,
}

impl FeatureSpec {
    /// A feature without categories.
    pub fn new(name: impl Into<String>, kind: FeatureKind) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            kind,
            categories: None,
        }
    }

    /// A categorical feature over the vocabulary `categories` (from
    /// [`ModelBuilder::add_vocabulary`] or [`ModelBuilder::add_integer_vocabulary`]).
    pub fn category(name: impl Into<String>, categories: CategoriesRef) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            kind: FeatureKind::Category,
            categories: Some(categories),
        }
    }
}

/// What is wrong with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name contains a control character (names appear in one-line messages).
    ControlCharacter,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "empty",
            NameProblem::ControlCharacter => "contains a control character",
        })
    }
}

/// A typed input schema that breaks a rule of `FORMAT.md`. Inside [`FormatError::Schema`]
/// (reading, with the file and the feature) or [`FormatError::BuildSchema`] (writing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// `features` and `feature_names` differ in length.
    #[error("{features} features, but feature_names has {feature_names} names")]
    FeatureCount {
        /// Length of `input.features`.
        features: usize,
        /// Length of `input.feature_names`.
        feature_names: usize,
    },
    /// A feature's name differs from `feature_names` at the same position.
    #[error(
        "feature {index} is named {feature:?}, but feature_names[{index}] is {feature_name:?}"
    )]
    NameMismatch {
        /// Position.
        index: usize,
        /// The name in `features`.
        feature: String,
        /// The name in `feature_names`.
        feature_name: String,
    },
    /// A feature name that is empty or contains a control character.
    #[error("feature {index}: the name {name:?} is {problem}")]
    InvalidName {
        /// Position.
        index: usize,
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// Two features with one name.
    #[error("features {first} and {second} are both named {name:?}")]
    DuplicateName {
        /// The name.
        name: String,
        /// Position of the first.
        first: usize,
        /// Position of the second.
        second: usize,
    },
    /// A kind this reader does not know.
    #[error("unknown kind {kind:?} (known: float, integer, boolean, string, category)")]
    UnknownKind {
        /// The kind found.
        kind: String,
    },
    /// A `category` feature without `categories`.
    #[error("kind category needs `categories`")]
    MissingCategories,
    /// `categories` on a feature whose kind is not `category`.
    #[error("kind {kind} takes no `categories`")]
    UnexpectedCategories {
        /// The feature's kind.
        kind: FeatureKind,
    },
    /// A vocabulary tensor that is not in the weights section.
    #[error("tensor {tensor:?} is not in the weights section")]
    MissingTensor {
        /// Its name.
        tensor: String,
    },
    /// A vocabulary tensor of the wrong dtype.
    #[error("tensor {tensor:?} has dtype {found}, expected {expected}")]
    TensorDtype {
        /// Its name.
        tensor: String,
        /// Its dtype.
        found: DType,
        /// The dtype required.
        expected: DType,
    },
    /// A vocabulary tensor that is not rank 1 (or is quantized).
    #[error("tensor {tensor:?} has shape {shape:?}, expected rank 1 and no quantization")]
    TensorShape {
        /// Its name.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// A vocabulary tensor whose bytes are not aligned for its dtype.
    #[error("tensor {tensor:?} is not aligned for its dtype")]
    TensorMisaligned {
        /// Its name.
        tensor: String,
    },
    /// A vocabulary name given to the builder that is empty or has a control character.
    #[error("vocabulary name {name:?} is {problem}")]
    InvalidVocabularyName {
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A vocabulary's content breaks a bound.
    #[error("tensor {tensor:?}: {error}")]
    Vocabulary {
        /// The tensor the bound is about (offsets, bytes or values).
        tensor: String,
        /// Which bound.
        #[source]
        error: VocabError,
    },
}

/// `feature "x": ` or nothing (error messages).
pub(crate) fn feature_prefix(feature: &Option<String>) -> String {
    match feature {
        Some(f) => format!("feature {f:?}: "),
        None => String::new(),
    }
}

/// A feature's categories, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Categories<'a> {
    /// String categories.
    Strings(Vocabulary<'a>),
    /// Integer categories.
    Integers(IntVocabulary<'a>),
}

impl Categories<'_> {
    /// Number of categories.
    pub fn len(&self) -> usize {
        match self {
            Categories::Strings(v) => v.len(),
            Categories::Integers(v) => v.len(),
        }
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The kind of a feature read from a file, with its categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind<'a> {
    /// A real number.
    Float,
    /// An integer-valued number.
    Integer,
    /// True or false.
    Boolean,
    /// A string without a vocabulary.
    String,
    /// One of the categories; its code is the category's position.
    Category(Categories<'a>),
}

impl InputKind<'_> {
    /// The kind without its categories.
    pub fn kind(&self) -> FeatureKind {
        match self {
            InputKind::Float => FeatureKind::Float,
            InputKind::Integer => FeatureKind::Integer,
            InputKind::Boolean => FeatureKind::Boolean,
            InputKind::String => FeatureKind::String,
            InputKind::Category(_) => FeatureKind::Category,
        }
    }
}

/// An input feature read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputFeature<'a> {
    /// The feature's name.
    pub name: &'a str,
    /// Its kind and categories.
    pub kind: InputKind<'a>,
}

/// An error about `feature` (or the schema as a whole when `None`).
type Located = (Option<String>, SchemaError);

fn name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        Some(NameProblem::Empty)
    } else if name.chars().any(char::is_control) {
        Some(NameProblem::ControlCharacter)
    } else {
        None
    }
}

/// Checks the names of `features` against `feature_names` and each other.
fn check_names(features: &[FeatureSpec], feature_names: &[String]) -> Result<(), SchemaError> {
    if features.len() != feature_names.len() {
        return Err(SchemaError::FeatureCount {
            features: features.len(),
            feature_names: feature_names.len(),
        });
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(features.len());
    for (index, (f, expected)) in features.iter().zip(feature_names).enumerate() {
        if let Some(problem) = name_problem(&f.name) {
            return Err(SchemaError::InvalidName {
                index,
                name: f.name.clone(),
                problem,
            });
        }
        if f.name != *expected {
            return Err(SchemaError::NameMismatch {
                index,
                feature: f.name.clone(),
                feature_name: expected.clone(),
            });
        }
        if let Some(first) = seen.insert(&f.name, index) {
            return Err(SchemaError::DuplicateName {
                name: f.name.clone(),
                first,
                second: index,
            });
        }
    }
    Ok(())
}

/// Checks each feature's kind against its `categories` (no tensors needed).
fn check_kind(f: &FeatureSpec) -> Result<(), SchemaError> {
    match (&f.kind, &f.categories) {
        (FeatureKind::Unknown(kind), _) => Err(SchemaError::UnknownKind { kind: kind.clone() }),
        (FeatureKind::Category, None) => Err(SchemaError::MissingCategories),
        (FeatureKind::Category, Some(_)) | (_, None) => Ok(()),
        (kind, Some(_)) => Err(SchemaError::UnexpectedCategories { kind: kind.clone() }),
    }
}

/// A vocabulary tensor as `&[T]`: present, of dtype `T`, rank 1, not quantized, aligned.
fn typed<'a, T: Element>(
    lookup: &dyn Fn(&str) -> Option<TensorView<'a>>,
    tensor: &str,
) -> Result<&'a [T], SchemaError> {
    let v = lookup(tensor).ok_or_else(|| SchemaError::MissingTensor {
        tensor: tensor.to_string(),
    })?;
    if v.desc.dtype != T::DTYPE {
        return Err(SchemaError::TensorDtype {
            tensor: tensor.to_string(),
            found: v.desc.dtype,
            expected: T::DTYPE,
        });
    }
    if v.desc.shape.len() != 1 || v.desc.quantization.is_some() {
        return Err(SchemaError::TensorShape {
            tensor: tensor.to_string(),
            shape: v.desc.shape.clone(),
        });
    }
    cast_slice(v.bytes).ok_or_else(|| SchemaError::TensorMisaligned {
        tensor: tensor.to_string(),
    })
}

/// The vocabulary tensor a bound is about.
fn vocab_error(bytes: &str, offsets: &str, error: VocabError) -> SchemaError {
    let tensor = match error {
        VocabError::TooLong { .. }
        | VocabError::InvalidUtf8 { .. }
        | VocabError::Duplicate { .. } => bytes,
        _ => offsets,
    };
    SchemaError::Vocabulary {
        tensor: tensor.to_string(),
        error,
    }
}

fn resolve_categories<'a>(
    c: &CategoriesRef,
    lookup: &dyn Fn(&str) -> Option<TensorView<'a>>,
    full: bool,
) -> Result<Categories<'a>, SchemaError> {
    Ok(match c {
        CategoriesRef::String { bytes, offsets } => {
            let b = typed::<u8>(lookup, bytes)?;
            let o = typed::<u32>(lookup, offsets)?;
            Categories::Strings(if full {
                Vocabulary::new(b, o).map_err(|e| vocab_error(bytes, offsets, e))?
            } else {
                Vocabulary::validated(b, o)
            })
        }
        CategoriesRef::Integer { values } => {
            let v = typed::<i64>(lookup, values)?;
            Categories::Integers(if full {
                IntVocabulary::new(v).map_err(|error| SchemaError::Vocabulary {
                    tensor: values.clone(),
                    error,
                })?
            } else {
                IntVocabulary::validated(v)
            })
        }
    })
}

/// The typed features of `meta`, every rule checked when `full` (else only what building the
/// views needs: the file was checked at open).
fn resolve<'a>(
    meta: &'a Metadata,
    lookup: &dyn Fn(&str) -> Option<TensorView<'a>>,
    full: bool,
) -> Result<Vec<InputFeature<'a>>, Located> {
    let input = &meta.input;
    if input.features.is_empty() {
        return Ok(input
            .feature_names
            .iter()
            .map(|name| InputFeature {
                name,
                kind: InputKind::Float,
            })
            .collect());
    }
    if full {
        check_names(&input.features, &input.feature_names).map_err(|e| (None, e))?;
    }
    let mut out = Vec::with_capacity(input.features.len());
    for f in &input.features {
        let at = |e| (Some(f.name.clone()), e);
        check_kind(f).map_err(at)?;
        let kind = match (&f.kind, &f.categories) {
            (FeatureKind::Integer, _) => InputKind::Integer,
            (FeatureKind::Boolean, _) => InputKind::Boolean,
            (FeatureKind::String, _) => InputKind::String,
            (FeatureKind::Category, Some(c)) => {
                InputKind::Category(resolve_categories(c, lookup, full).map_err(at)?)
            }
            _ => InputKind::Float,
        };
        out.push(InputFeature {
            name: &f.name,
            kind,
        });
    }
    Ok(out)
}

impl MleFile {
    /// The model's input features in column order, with their categories borrowed from the
    /// file (zero-copy). A file without `input.features` (every file before version 1.1) has
    /// one `float` feature per `input.feature_names` entry. The schema was validated when the
    /// file was opened, so this fails only where opening would have.
    pub fn input_features(&self) -> Result<Vec<InputFeature<'_>>> {
        self.resolve_input_features(false)
    }

    /// Every rule of the input schema (called once, at open).
    pub(crate) fn validate_input_features(&self) -> Result<()> {
        self.resolve_input_features(true).map(drop)
    }

    fn resolve_input_features(&self, full: bool) -> Result<Vec<InputFeature<'_>>> {
        let lookup = |name: &str| self.tensor(name).ok();
        resolve(self.metadata(), &lookup, full).map_err(|(feature, error)| FormatError::Schema {
            file: self.name().to_string(),
            feature,
            error,
        })
    }
}

fn build_error((feature, error): Located) -> FormatError {
    FormatError::BuildSchema { feature, error }
}

impl ModelBuilder {
    /// Adds a string vocabulary as the tensors `<name>.bytes` (`u8`) and `<name>.offsets`
    /// (`u32`) and returns the reference for [`FeatureSpec::category`]. Refuses an empty name
    /// or one with a control character, duplicate categories, a category over
    /// [`crate::vocab::MAX_CATEGORY_BYTES`] and more than [`crate::vocab::MAX_CATEGORIES`]
    /// categories ([`FormatError::BuildSchema`]), and tensor names already in use
    /// ([`FormatError::Build`]; the `.bytes` tensor may then have been added).
    pub fn add_vocabulary<S: AsRef<str>>(
        &mut self,
        name: &str,
        categories: &[S],
    ) -> Result<CategoriesRef> {
        check_vocabulary_name(name)?;
        let (bytes, offsets) = (format!("{name}.bytes"), format!("{name}.offsets"));
        let (data, offs) = crate::vocab::encode(categories)
            .map_err(|e| build_error((None, vocab_error(&bytes, &offsets, e))))?;
        self.add_tensor(&bytes, &[data.len() as u64], &data)?;
        self.add_tensor(&offsets, &[offs.len() as u64], &offs)?;
        Ok(CategoriesRef::String { bytes, offsets })
    }

    /// Adds an integer vocabulary (integer-coded categories) as the `i64` tensor `name` and
    /// returns the reference for [`FeatureSpec::category`]. Refuses what
    /// [`ModelBuilder::add_vocabulary`] refuses (duplicates, too many, bad name).
    pub fn add_integer_vocabulary(
        &mut self,
        name: &str,
        categories: &[i64],
    ) -> Result<CategoriesRef> {
        check_vocabulary_name(name)?;
        IntVocabulary::new(categories).map_err(|error| {
            build_error((
                None,
                SchemaError::Vocabulary {
                    tensor: name.to_string(),
                    error,
                },
            ))
        })?;
        self.add_tensor(name, &[categories.len() as u64], categories)?;
        Ok(CategoriesRef::Integer {
            values: name.to_string(),
        })
    }

    /// Sets the typed input features (`input.features`): one per `input.feature_names` entry,
    /// same names in the same order, unique, non-empty, known kinds, `categories` exactly on
    /// `category` features. The vocabulary tensors are checked when the model is written.
    pub fn set_input_features(&mut self, features: Vec<FeatureSpec>) -> Result<()> {
        check_names(&features, &self.metadata_mut().input.feature_names)
            .map_err(|e| build_error((None, e)))?;
        for f in &features {
            check_kind(f).map_err(|e| build_error((Some(f.name.clone()), e)))?;
        }
        self.metadata_mut().input.features = features;
        Ok(())
    }
}

impl Metadata {
    /// The same metadata with typed input features (checked when the model is written; see
    /// [`ModelBuilder::set_input_features`]).
    pub fn with_input_features(mut self, features: Vec<FeatureSpec>) -> Metadata {
        self.input.features = features;
        self
    }
}

fn check_vocabulary_name(name: &str) -> Result<()> {
    match name_problem(name) {
        Some(problem) => Err(build_error((
            None,
            SchemaError::InvalidVocabularyName {
                name: name.to_string(),
                problem,
            },
        ))),
        None => Ok(()),
    }
}

/// The minor version the writer puts in the header: 1 when the metadata has typed features.
pub(crate) fn format_minor(meta: &Metadata) -> u16 {
    if meta.input.features.is_empty() {
        0
    } else {
        SCHEMA_MINOR_VERSION
    }
}

/// The writer's check: the input schema of `meta` against the tensors about to be written
/// (`descs` into the uncompressed `blob`), with the reader's rules.
pub(crate) fn check_for_write(meta: &Metadata, descs: &[TensorDesc], blob: &[u8]) -> Result<()> {
    if meta.input.features.is_empty() {
        return Ok(());
    }
    // The vocabulary tensors, copied into aligned memory (the blob is a plain Vec<u8>).
    let wanted: HashSet<&str> = meta
        .input
        .features
        .iter()
        .filter_map(|f| f.categories.as_ref())
        .flat_map(|c| match c {
            CategoriesRef::String { bytes, offsets } => vec![bytes.as_str(), offsets.as_str()],
            CategoriesRef::Integer { values } => vec![values.as_str()],
        })
        .collect();
    let copies: HashMap<&str, (&TensorDesc, AlignedBuf)> = descs
        .iter()
        .filter(|d| wanted.contains(d.name.as_str()))
        .filter_map(|d| {
            let start = usize::try_from(d.offset).ok()?;
            let end = start.checked_add(usize::try_from(d.length).ok()?)?;
            Some((
                d.name.as_str(),
                (d, AlignedBuf::from_slice(blob.get(start..end)?)),
            ))
        })
        .collect();
    let lookup = |name: &str| {
        copies.get(name).map(|(desc, buf)| TensorView {
            desc,
            bytes: buf.as_slice(),
        })
    };
    resolve(meta, &lookup, true).map(drop).map_err(build_error)
}
