//! The input policy: which Arrow columns bind to a model's features and how. It is decided
//! here once, for every front end (SQL arguments, the SQL table function, Polars columns,
//! Parquet columns of `mle score`, tables given to the Python runtime).
//!
//! **By kind** (the model's input schema, [`Features`]; a file without `input.features` has
//! only `float` features):
//!
//! | feature kind | numeric columns¹ | string columns² |
//! |---|---|---|
//! | `float`, `integer`, `boolean` | the value | refused |
//! | `string` | refused | the strings |
//! | `category` with string categories | the code itself | the strings (looked up by the model) |
//! | `category` with integer categories | the category's value | refused |
//!
//! ¹ Integer, unsigned, float, decimal, `Boolean` (false = 0, true = 1) and dictionary-encoded
//! numeric columns. ² `Utf8`, `LargeUtf8`, `Utf8View`, and `Dictionary` of any integer key
//! over `Utf8` / `LargeUtf8` / `Utf8View` values. A `Null` column, or a dictionary of `Null`
//! values (every value missing), binds to any feature. Anything else (lists, structs, temporal types) is refused. A refused
//! column is an [`ArrowError::UnsupportedType`] naming the column, the feature, its kind and
//! the column's type ([`check_column`], the one copy of this table).
//!
//! **How** (zero copy where Arrow allows):
//! - `Float32` / `Float64` columns without nulls are borrowed in place.
//! - Other numeric columns are converted to `Float64`; a null is a missing value (NaN), so a
//!   float column with nulls is copied to say so.
//! - String and dictionary columns are borrowed in place as the executor's
//!   [`ColumnData::Str`] / [`ColumnData::Dict`] (offsets, views, keys and validity bitmaps as
//!   Arrow holds them; a NULL is a missing value); the model's `Lookup` turns them into codes.
//! - A column of one row next to longer ones (a literal) is broadcast to every row, without a
//!   copy.
//!
//! **By name** ([`BoundColumns::bind_by_name`], [`Features::columns_by_name`]): the model's
//! features are looked up among the input's columns by name, in feature order; extra columns
//! are ignored; every missing feature is named in one [`ArrowError::MissingColumns`].

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use mle_exec::{
    Batch, Column, ColumnData, DictColumn, DictKeys, Model, StrColumn, StrData, Validity,
};
use mle_format::{CategoriesRef, FeatureKind, Metadata};

use crate::{ArrowError, Result};

/// True when columns of this Arrow type are numeric features (integer, unsigned, float,
/// decimal, boolean, a dictionary of those, or `Null`): what a `float`, `integer` or
/// `boolean` feature takes. String columns are not numeric; see [`check_column`] for the
/// kind-aware policy.
pub fn is_supported_type(dt: &DataType) -> bool {
    matches!(
        column_class(dt),
        Some(ColumnClass::Numeric | ColumnClass::Null)
    )
}

/// What a column of some Arrow type holds, as far as binding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    /// Numbers (integer, unsigned, float, decimal, boolean, or a dictionary of them).
    Numeric,
    /// Strings (`Utf8`, `LargeUtf8`, `Utf8View`, or a dictionary of them).
    Strings,
    /// The `Null` type: every value missing.
    Null,
}

/// The class of an Arrow type, `None` when no feature takes it.
pub fn column_class(dt: &DataType) -> Option<ColumnClass> {
    match dt {
        DataType::Null => Some(ColumnClass::Null),
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => Some(ColumnClass::Numeric),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(ColumnClass::Strings),
        // A dictionary of `Null` values (every value missing, as an all-missing categorical
        // column may arrive) is a `Null` column: any feature takes it.
        DataType::Dictionary(k, v) if k.is_dictionary_key_type() => column_class(v),
        _ => None,
    }
}

/// One input feature of a model as binding sees it: its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name.
    pub name: String,
    /// Its kind (`float` for every feature of a file without `input.features`).
    pub kind: FeatureKind,
    /// For a `category` feature: whether its categories are integers (else strings).
    pub integer_categories: bool,
}

impl Feature {
    /// A `float` feature.
    pub fn float(name: impl Into<String>) -> Feature {
        Feature {
            name: name.into(),
            kind: FeatureKind::Float,
            integer_categories: false,
        }
    }

    /// Whether the feature takes numeric columns.
    pub fn takes_numbers(&self) -> bool {
        !matches!(self.kind, FeatureKind::String)
    }

    /// Whether the feature takes string columns.
    pub fn takes_strings(&self) -> bool {
        match self.kind {
            FeatureKind::String => true,
            FeatureKind::Category => !self.integer_categories,
            _ => false,
        }
    }

    /// The kind as shown in messages: `float`, ..., `category` or `category (integer
    /// categories)`.
    pub fn kind_label(&self) -> &'static str {
        match (&self.kind, self.integer_categories) {
            (FeatureKind::Float, _) => "float",
            (FeatureKind::Integer, _) => "integer",
            (FeatureKind::Boolean, _) => "boolean",
            (FeatureKind::String, _) => "string",
            (FeatureKind::Category, false) => "category",
            (FeatureKind::Category, true) => "category (integer categories)",
            // A file with a kind this reader does not know is refused when it is opened.
            (FeatureKind::Unknown(_), _) => "unknown",
        }
    }

    /// What is wrong with a column of `class` for this feature, for messages.
    pub fn problem(&self, class: Option<ColumnClass>) -> &'static str {
        match (class, self.takes_numbers(), self.takes_strings()) {
            (Some(ColumnClass::Strings), true, false) => "not numeric",
            (Some(ColumnClass::Numeric), false, true) => "not a string",
            (_, true, false) => "not numeric",
            (_, false, true) => "not a string",
            _ => "neither a string nor a number",
        }
    }

    /// What the feature takes, for messages.
    pub fn accepted(&self) -> &'static str {
        match (self.takes_numbers(), self.takes_strings()) {
            (true, true) => {
                "string columns (Utf8, LargeUtf8, Utf8View, string dictionaries) or numeric category codes"
            }
            (false, true) => "string columns (Utf8, LargeUtf8, Utf8View, string dictionaries)",
            _ => "numeric columns (integer, unsigned, float, decimal or boolean)",
        }
    }
}

/// The model's input features in order: what [`BoundColumns`] binds columns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    features: Vec<Feature>,
    names: Vec<String>,
}

impl Features {
    /// The features of a model's metadata: `input.features` when the file has them, else one
    /// `float` feature per `input.feature_names` entry.
    pub fn of(metadata: &Metadata) -> Features {
        let input = &metadata.input;
        if input.features.is_empty() {
            return Features::floats(&input.feature_names);
        }
        let features: Vec<Feature> = input
            .features
            .iter()
            .map(|f| Feature {
                name: f.name.clone(),
                kind: f.kind.clone(),
                integer_categories: matches!(f.categories, Some(CategoriesRef::Integer { .. })),
            })
            .collect();
        let names = features.iter().map(|f| f.name.clone()).collect();
        Features { features, names }
    }

    /// The features of a compiled model (see [`Features::of`]).
    pub fn of_model(model: &Model) -> Features {
        Features::of(model.metadata())
    }

    /// `float` features of these names (a model without a typed schema).
    pub fn floats(names: &[String]) -> Features {
        Features {
            features: names.iter().map(Feature::float).collect(),
            names: names.to_vec(),
        }
    }

    /// The features, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Feature> {
        self.features.iter()
    }

    /// Feature `j`.
    pub fn get(&self, j: usize) -> Option<&Feature> {
        self.features.get(j)
    }

    /// The feature names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// True when the model has no features.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The columns of `schema` that hold the features, by name, in feature order, each
    /// checked against its feature's kind ([`check_column`]). Extra columns are ignored;
    /// every missing feature is named in one [`ArrowError::MissingColumns`].
    pub fn columns_by_name(&self, schema: &Schema) -> Result<Vec<usize>> {
        let idx = columns_by_name(schema, &self.names)?;
        for (feature, &i) in self.features.iter().zip(&idx) {
            let field = schema.field(i);
            check_column(field.name(), feature, field.data_type())?;
        }
        Ok(idx)
    }

    /// Checks columns of these names and types, given in feature order (by position):
    /// their number and each one's type against its feature's kind.
    pub fn check_columns<'n>(
        &self,
        columns: impl ExactSizeIterator<Item = (&'n str, &'n DataType)>,
    ) -> Result<()> {
        if columns.len() != self.len() {
            return Err(self.count_error(columns.len()));
        }
        for (feature, (name, dt)) in self.features.iter().zip(columns) {
            check_column(name, feature, dt)?;
        }
        Ok(())
    }

    fn count_error(&self, actual: usize) -> ArrowError {
        ArrowError::FeatureCount {
            expected: self.len(),
            actual,
            names: self.names.join(", "),
        }
    }
}

/// Checks that a column named `column` of type `dt` can be bound to `feature` (the table in
/// the module docs) and returns its class; a refusal names the column, the feature, its kind
/// and the type.
pub fn check_column(column: &str, feature: &Feature, dt: &DataType) -> Result<ColumnClass> {
    let class = column_class(dt);
    let ok = match class {
        Some(ColumnClass::Null) => true,
        Some(ColumnClass::Numeric) => feature.takes_numbers(),
        Some(ColumnClass::Strings) => feature.takes_strings(),
        None => false,
    };
    match class {
        Some(c) if ok => Ok(c),
        _ => Err(unsupported(column, feature, dt)),
    }
}

fn unsupported(column: &str, feature: &Feature, dt: &DataType) -> ArrowError {
    ArrowError::UnsupportedType {
        column: column.to_string(),
        feature: feature.name.clone(),
        kind: feature.kind_label(),
        data_type: dt.clone(),
        problem: feature.problem(column_class(dt)),
        accepted: feature.accepted(),
    }
}

/// Finds the columns of `schema` named like `feature_names`, in that order. Returns the
/// column indices, or an error listing every missing name. (No kind check: see
/// [`Features::columns_by_name`].)
pub fn columns_by_name(schema: &Schema, feature_names: &[String]) -> Result<Vec<usize>> {
    let mut idx = Vec::with_capacity(feature_names.len());
    let mut missing = Vec::new();
    for f in feature_names {
        match schema.index_of(f) {
            Ok(i) => idx.push(i),
            Err(_) => missing.push(f.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ArrowError::MissingColumns {
            missing,
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(idx)
}

/// The strings of one bound column, borrowed from Arrow.
#[derive(Debug)]
enum StrParts<'a> {
    Utf8(&'a [i32], &'a [u8]),
    Large(&'a [i64], &'a [u8]),
    /// Views and the data buffers they point into (the list of buffers is the one thing
    /// allocated, once per column and batch).
    View(&'a [u128], Vec<&'a [u8]>),
}

/// A string column: its strings, validity and length.
#[derive(Debug)]
struct Strs<'a> {
    parts: StrParts<'a>,
    validity: Option<Validity<'a>>,
    len: usize,
}

impl<'a> Strs<'a> {
    fn column(&self) -> StrColumn<'_> {
        let data = match &self.parts {
            StrParts::Utf8(offsets, bytes) => StrData::Utf8 { offsets, bytes },
            StrParts::Large(offsets, bytes) => StrData::LargeUtf8 { offsets, bytes },
            StrParts::View(views, buffers) => StrData::View {
                views,
                buffers: &buffers[..],
            },
        };
        StrColumn {
            data,
            validity: self.validity,
            len: self.len,
        }
    }
}

/// Storage of one bound column: borrowed from Arrow, or converted.
#[derive(Debug)]
enum Bound<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    /// A column converted by Arrow's cast (no nulls).
    CastF64(ArrayRef),
    OwnedF32(Vec<f32>),
    OwnedF64(Vec<f64>),
    Str(Strs<'a>),
    Dict {
        keys: DictKeys<'a>,
        validity: Option<Validity<'a>>,
        values: Strs<'a>,
    },
}

impl Bound<'_> {
    fn len(&self) -> usize {
        match self {
            Bound::F32(a) => a.len(),
            Bound::F64(a) => a.len(),
            Bound::CastF64(a) => a.len(),
            Bound::OwnedF32(v) => v.len(),
            Bound::OwnedF64(v) => v.len(),
            Bound::Str(s) => s.len,
            Bound::Dict { keys, .. } => keys.len(),
        }
    }

    fn is_borrowed(&self) -> bool {
        matches!(
            self,
            Bound::F32(_) | Bound::F64(_) | Bound::Str(_) | Bound::Dict { .. }
        )
    }
}

/// Arrow columns bound to a model's features, ready to view as an executor [`Batch`].
///
/// Borrows the input arrays (`'a`): float, string and dictionary columns are viewed in
/// place; converted columns are held here.
pub struct BoundColumns<'a> {
    cols: Vec<Bound<'a>>,
    n_rows: usize,
}

impl std::fmt::Debug for BoundColumns<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundColumns")
            .field("n_columns", &self.cols.len())
            .field("n_rows", &self.n_rows)
            .field("borrowed", &self.borrowed_count())
            .finish()
    }
}

impl<'a> BoundColumns<'a> {
    /// Binds `columns` (in the model's feature order) to features named `feature_names`, all
    /// of kind `float` (a model without a typed schema; see [`BoundColumns::bind_typed`]).
    /// `names` name the columns in errors.
    ///
    /// The batch has as many rows as the longest column; a column of one row is broadcast to
    /// all of them, any other length is an error naming the column.
    pub fn bind(
        columns: &'a [ArrayRef],
        names: &[String],
        feature_names: &[String],
    ) -> Result<BoundColumns<'a>> {
        Self::bind_typed(columns, names, &Features::floats(feature_names))
    }

    /// Binds `columns` by position to `features` (the model's input schema, see
    /// [`Features::of`]), checking each column's type against its feature's kind. `names`
    /// name the columns in errors (`#1`, `#2`, ... where missing).
    pub fn bind_typed(
        columns: &'a [ArrayRef],
        names: &[String],
        features: &Features,
    ) -> Result<BoundColumns<'a>> {
        if columns.len() != features.len() {
            return Err(features.count_error(columns.len()));
        }
        let named = columns.iter().enumerate().map(|(j, a)| {
            let name = names
                .get(j)
                .cloned()
                .unwrap_or_else(|| format!("#{}", j + 1));
            (a, name)
        });
        Self::bind_named(named, features)
    }

    /// Binds the columns of `batch` to `features` by name, in feature order (extra columns
    /// ignored; every missing feature named in one error; each column checked against its
    /// feature's kind).
    pub fn bind_by_name(batch: &'a RecordBatch, features: &Features) -> Result<BoundColumns<'a>> {
        let idx = features.columns_by_name(&batch.schema())?;
        Self::bind_at(batch, &idx, features)
    }

    /// Binds columns `idx` of `batch` (one per feature, in feature order: what
    /// [`Features::columns_by_name`] returned for its schema) to `features`.
    pub fn bind_at(
        batch: &'a RecordBatch,
        idx: &[usize],
        features: &Features,
    ) -> Result<BoundColumns<'a>> {
        if idx.len() != features.len() {
            return Err(features.count_error(idx.len()));
        }
        let schema = batch.schema_ref();
        let columns = batch.columns();
        let mut named = Vec::with_capacity(idx.len());
        for &i in idx {
            let (Some(array), Some(field)) = (columns.get(i), schema.fields().get(i)) else {
                return Err(ArrowError::MissingColumns {
                    missing: vec![format!("#{}", i + 1)],
                    available: schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            named.push((array, field.name().clone()));
        }
        Self::bind_named(named.into_iter(), features)
    }

    fn bind_named(
        columns: impl ExactSizeIterator<Item = (&'a ArrayRef, String)> + Clone,
        features: &Features,
    ) -> Result<BoundColumns<'a>> {
        let n_rows = columns.clone().map(|(c, _)| c.len()).max().unwrap_or(0);
        let mut cols = Vec::with_capacity(columns.len());
        for ((arr, name), feature) in columns.zip(features.iter()) {
            let class = check_column(&name, feature, arr.data_type())?;
            if arr.len() != n_rows && arr.len() != 1 {
                return Err(ArrowError::Length {
                    column: name,
                    expected: n_rows,
                    actual: arr.len(),
                });
            }
            cols.push(bind_one(arr, class, &name, feature)?);
        }
        Ok(BoundColumns { cols, n_rows })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// How many columns are viewed in place (no copy).
    pub fn borrowed_count(&self) -> usize {
        self.cols.iter().filter(|c| c.is_borrowed()).count()
    }

    /// The executor batch viewing these columns (one-row columns with a stride of 0). The
    /// executor checks string columns (offsets, views, keys, UTF-8) as it builds the batch.
    pub fn batch(&self) -> Result<Batch<'_>> {
        let n_rows = self.n_rows;
        let data = self
            .cols
            .iter()
            .map(|c| {
                let stride = usize::from(c.len() == n_rows);
                let data = match c {
                    Bound::F32(v) => ColumnData::F32(v),
                    Bound::F64(v) => ColumnData::F64(v),
                    // `bind_one` stores only Float64 arrays here.
                    Bound::CastF64(a) => ColumnData::F64(
                        a.as_primitive_opt::<Float64Type>()
                            .map_or(&[][..], |p| &p.values()[..]),
                    ),
                    Bound::OwnedF32(v) => ColumnData::F32(v),
                    Bound::OwnedF64(v) => ColumnData::F64(v),
                    Bound::Str(s) => ColumnData::Str(s.column()),
                    Bound::Dict {
                        keys,
                        validity,
                        values,
                    } => ColumnData::Dict(DictColumn {
                        keys: *keys,
                        validity: *validity,
                        values: values.column(),
                    }),
                };
                Column {
                    data,
                    offset: 0,
                    stride,
                }
            })
            .collect();
        Ok(Batch::from_strided(data, n_rows)?)
    }
}

/// Binds the columns of `batch` to the features of `model` by name (see
/// [`BoundColumns::bind_by_name`]).
pub fn bind_record_batch<'a>(batch: &'a RecordBatch, model: &Model) -> Result<BoundColumns<'a>> {
    BoundColumns::bind_by_name(batch, &Features::of_model(model))
}

/// The validity bitmap of an array with nulls, as the executor reads it.
fn validity(arr: &dyn Array) -> Option<Validity<'_>> {
    arr.nulls()
        .filter(|n| n.null_count() > 0)
        .map(|n| Validity {
            bits: n.validity(),
            offset: n.offset(),
        })
}

/// The strings of a `Utf8`, `LargeUtf8` or `Utf8View` array, borrowed.
fn strings(arr: &dyn Array) -> Option<Strs<'_>> {
    let parts = match arr.data_type() {
        DataType::Utf8 => {
            let a = arr.as_string_opt::<i32>()?;
            StrParts::Utf8(&a.offsets()[..], a.values().as_slice())
        }
        DataType::LargeUtf8 => {
            let a = arr.as_string_opt::<i64>()?;
            StrParts::Large(&a.offsets()[..], a.values().as_slice())
        }
        DataType::Utf8View => {
            let a = arr.as_string_view_opt()?;
            let buffers = a.data_buffers().iter().map(|b| b.as_slice()).collect();
            StrParts::View(&a.views()[..], buffers)
        }
        _ => return None,
    };
    Some(Strs {
        parts,
        validity: validity(arr),
        len: arr.len(),
    })
}

/// The keys of a dictionary array and its string values, borrowed.
fn dictionary(arr: &dyn Array) -> Option<Bound<'_>> {
    macro_rules! keys {
        ($t:ty, $v:ident) => {{
            let d = arr.as_dictionary_opt::<$t>()?;
            (DictKeys::$v(&d.keys().values()[..]), d.values())
        }};
    }
    let DataType::Dictionary(k, _) = arr.data_type() else {
        return None;
    };
    let (keys, values) = match k.as_ref() {
        DataType::Int8 => keys!(Int8Type, I8),
        DataType::Int16 => keys!(Int16Type, I16),
        DataType::Int32 => keys!(Int32Type, I32),
        DataType::Int64 => keys!(Int64Type, I64),
        DataType::UInt8 => keys!(UInt8Type, U8),
        DataType::UInt16 => keys!(UInt16Type, U16),
        DataType::UInt32 => keys!(UInt32Type, U32),
        DataType::UInt64 => keys!(UInt64Type, U64),
        _ => return None,
    };
    Some(Bound::Dict {
        keys,
        validity: validity(arr),
        values: strings(values.as_ref())?,
    })
}

fn bind_one<'a>(
    arr: &'a ArrayRef,
    class: ColumnClass,
    column: &str,
    feature: &Feature,
) -> Result<Bound<'a>> {
    let unsupported = || unsupported(column, feature, arr.data_type());
    if class == ColumnClass::Strings {
        let bound = match arr.data_type() {
            DataType::Dictionary(..) => dictionary(arr.as_ref()),
            _ => strings(arr.as_ref()).map(Bound::Str),
        };
        return bound.ok_or_else(unsupported);
    }
    if class == ColumnClass::Null {
        // `Null`, or a dictionary of `Null` values: every row missing.
        return Ok(Bound::OwnedF64(vec![f64::NAN; arr.len()]));
    }
    match arr.data_type() {
        DataType::Float32 => {
            let a = arr
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(unsupported)?;
            if arr.null_count() == 0 {
                return Ok(Bound::F32(&a.values()[..]));
            }
            Ok(Bound::OwnedF32(
                a.iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
            ))
        }
        DataType::Float64 => {
            let a = arr
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(unsupported)?;
            if arr.null_count() == 0 {
                return Ok(Bound::F64(&a.values()[..]));
            }
            Ok(Bound::OwnedF64(with_nan(a)))
        }
        _ => {
            let cast = arrow::compute::cast(arr, &DataType::Float64).map_err(|source| {
                ArrowError::Cast {
                    column: column.to_string(),
                    source,
                }
            })?;
            let Some(p) = cast.as_primitive_opt::<Float64Type>() else {
                return Err(unsupported());
            };
            if cast.null_count() == 0 {
                Ok(Bound::CastF64(cast))
            } else {
                Ok(Bound::OwnedF64(with_nan(p)))
            }
        }
    }
}

fn with_nan(a: &Float64Array) -> Vec<f64> {
    a.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}
