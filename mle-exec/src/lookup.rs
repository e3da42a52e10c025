//! The `Lookup` op's index and kernels: category → code.
//!
//! A string vocabulary is indexed at compile time by a `hashbrown::HashTable` of codes keyed by
//! the vocabulary's own bytes (copied once into the index, so nothing borrows the file); an
//! integer vocabulary by a `hashbrown::HashMap<i64, u32>`. Both are bounded by the file:
//! `mle_format` caps a vocabulary at [`mle_format::vocab::MAX_CATEGORIES`] entries of at most
//! [`mle_format::vocab::MAX_CATEGORY_BYTES`] bytes, checked before the index is built.
//!
//! The kernels write codes as f32 (every code is below 2²⁰, exact in f32 and f64), NaN for
//! missing. A string column is looked up row by row (one hash and one compare per row, no
//! allocation); a dictionary column has its dictionary mapped once per batch into a reused
//! buffer, then gathers one code per row by its key.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use mle_format::{IntVocabulary, Vocabulary};

use crate::batch::{Column, ColumnData, DictColumn, DictKeys, StrColumn, StrData, StrValue};

/// Longest prefix of an unknown category quoted in an error, in bytes.
const QUOTE_BYTES: usize = 64;
/// Dictionary map entry of a NULL dictionary value.
const NULL_CODE: u32 = u32::MAX;
/// Dictionary map entry of a value not in the vocabulary.
const UNKNOWN_CODE: u32 = u32::MAX - 1;

/// A string vocabulary's index.
pub(crate) struct StrIndex {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl StrIndex {
    /// Indexes a validated vocabulary (its categories are distinct).
    pub(crate) fn new(v: &Vocabulary<'_>) -> StrIndex {
        let mut ix = StrIndex {
            bytes: v.bytes().to_vec(),
            offsets: v.offsets().to_vec(),
            table: HashTable::with_capacity(v.len()),
            hasher: DefaultHashBuilder::default(),
        };
        for code in 0..v.len() as u32 {
            let key = ix.entry(code);
            let h = ix.hasher.hash_one(key);
            let StrIndex {
                table,
                hasher,
                bytes,
                offsets,
            } = &mut ix;
            table.insert_unique(h, code, |&c| hasher.hash_one(entry(bytes, offsets, c)));
        }
        ix
    }

    fn entry(&self, code: u32) -> &[u8] {
        entry(&self.bytes, &self.offsets, code)
    }

    /// The code of `key`, if it is a category.
    #[inline(always)]
    pub(crate) fn find(&self, key: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        self.table.find(h, |&c| self.entry(c) == key).copied()
    }

    /// Number of categories.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Bytes held (for the plan budget).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.len() + self.offsets.len() * 4 + self.table.capacity() * 5
    }
}

/// Category `code`'s bytes (empty if out of range: never for a validated vocabulary).
#[inline(always)]
fn entry<'a>(bytes: &'a [u8], offsets: &[u32], code: u32) -> &'a [u8] {
    let c = code as usize;
    match (offsets.get(c), offsets.get(c + 1)) {
        (Some(&s), Some(&e)) => bytes.get(s as usize..e as usize).unwrap_or_default(),
        _ => &[],
    }
}

/// An integer vocabulary's index.
pub(crate) struct IntIndex {
    map: HashMap<i64, u32, DefaultHashBuilder>,
}

impl IntIndex {
    /// Indexes a validated vocabulary (its values are distinct).
    pub(crate) fn new(v: &IntVocabulary<'_>) -> IntIndex {
        let mut map = HashMap::with_capacity_and_hasher(v.len(), DefaultHashBuilder::default());
        for (code, &x) in v.values().iter().enumerate() {
            map.insert(x, code as u32);
        }
        IntIndex { map }
    }

    /// The code of the number `x`: the position of the category equal to `x` (NaN never
    /// equals one; -0.0 equals 0), as scikit-learn's `OrdinalEncoder` matches numeric
    /// categories.
    #[inline(always)]
    pub(crate) fn find(&self, x: f64) -> Option<u32> {
        // i64 range: [-2^63, 2^63); only integral values can equal an integer category.
        if x.fract() != 0.0 || !(i64::MIN as f64..-(i64::MIN as f64)).contains(&x) {
            return None;
        }
        self.map.get(&(x as i64)).copied()
    }

    /// Number of categories.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held (for the plan budget).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.map.capacity() * 13
    }
}

/// The vocabulary of a `Lookup`.
pub(crate) enum Index {
    Str(StrIndex),
    Int(IntIndex),
}

/// One `Lookup` of the input stage.
pub(crate) struct LookupStage {
    /// The node (diagnostics).
    pub node: String,
    /// The input column it replaces by codes.
    pub feature: usize,
    pub index: Index,
    /// What a value not in the vocabulary becomes.
    pub unknown: Unknown,
    /// What a missing value (NULL, NaN) becomes.
    pub missing: Missing,
}

/// The `Lookup` op's `missing` rule: what a missing value (NULL, NaN) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// NaN: the tree's missing side, or the encoder's missing slot.
    Missing,
    /// An input error naming the feature (scikit-learn's encoders under
    /// `handle_unknown="error"` refuse a missing value that was not a category in fit).
    Error,
}

/// The `Lookup` op's `unknown` rule: what a value outside the vocabulary becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Missing (NaN): the tree's missing side.
    Missing,
    /// An input error naming the feature and the value.
    Error,
    /// The code `n`, one past the last category (an encoder then tells it from missing).
    Code,
}

impl LookupStage {
    /// The code of a value outside the vocabulary (`quote` describes it for the error).
    #[inline(always)]
    fn unknown_code(&self, quote: impl FnOnce() -> String) -> Result<f32, Miss> {
        match self.unknown {
            Unknown::Missing => Ok(f32::NAN),
            Unknown::Error => Err(Miss::Unknown(quote())),
            Unknown::Code => Ok(self.len() as f32),
        }
    }

    /// The code of a missing value: NaN, or the error of `missing = error`.
    #[inline(always)]
    fn missing_code(&self) -> Result<f32, Miss> {
        match self.missing {
            Missing::Missing => Ok(f32::NAN),
            Missing::Error => Err(Miss::Missing),
        }
    }

    /// Whether numbers go through this stage: an integer vocabulary maps them to codes, and
    /// `missing = error` checks them for NaN (a string vocabulary otherwise takes numbers as
    /// codes, unchanged).
    pub(crate) fn reads_numbers(&self) -> bool {
        matches!(self.index, Index::Int(_)) || self.missing == Missing::Error
    }

    /// Number of categories of the vocabulary.
    fn len(&self) -> usize {
        match &self.index {
            Index::Str(ix) => ix.len(),
            Index::Int(ix) => ix.len(),
        }
    }
}

/// Why a lookup failed (the session adds the model and the feature).
#[derive(Debug)]
pub(crate) enum Miss {
    /// A value not in the vocabulary under `unknown = error` (quoted, cut to a sane length).
    Unknown(String),
    /// Strings given to an integer vocabulary.
    StringForInteger,
    /// A missing value under `missing = error`.
    Missing,
}

impl Miss {
    /// The message, for `feature` of `model` at Lookup `node`.
    pub(crate) fn message(&self, model: &str, feature: &str, st: &LookupStage) -> String {
        match self {
            Miss::Unknown(v) => {
                let n = st.len();
                format!(
                    "{model}: {feature}: {v} is not one of its {n} categories (Lookup {:?} has unknown = \"error\")",
                    st.node
                )
            }
            Miss::Missing => format!(
                "{model}: {feature}: a missing value (NULL or NaN), which is not one of its categories (Lookup {:?} has missing = \"error\")",
                st.node
            ),
            Miss::StringForInteger => format!(
                "{model}: {feature} has integer categories (Lookup {:?}), but it was given strings",
                st.node
            ),
        }
    }
}

/// `s` cut to [`QUOTE_BYTES`] at a character boundary (for messages).
pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= QUOTE_BYTES {
        return s;
    }
    let mut end = QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A string quoted for a message, cut to [`QUOTE_BYTES`] at a character boundary.
fn quote(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= QUOTE_BYTES {
        return format!("category {s:?}");
    }
    let mut end = QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("category {:?}… ({} bytes)", &s[..end], bytes.len())
}

impl LookupStage {
    /// The code of a string (NaN when not a category and `unknown = missing`).
    #[inline(always)]
    pub(crate) fn code_of_str(&self, s: &[u8]) -> Result<f32, Miss> {
        match &self.index {
            Index::Str(ix) => match ix.find(s) {
                Some(c) => Ok(c as f32),
                None => self.unknown_code(|| quote(s)),
            },
            Index::Int(_) => Err(Miss::StringForInteger),
        }
    }

    /// The code of a number: NaN stays NaN; a string vocabulary takes the number as a code
    /// already (unchanged); an integer vocabulary maps an equal category to its position.
    #[inline(always)]
    pub(crate) fn code_of_f64(&self, x: f64) -> Result<f64, Miss> {
        if x.is_nan() {
            return self.missing_code().map(f64::from);
        }
        match &self.index {
            Index::Str(_) => Ok(x),
            Index::Int(ix) => match ix.find(x) {
                Some(c) => Ok(c as f64),
                None => self.unknown_code(|| format!("value {x}")).map(f64::from),
            },
        }
    }

    /// Whether a column of this feature is read through codes (a string column, or numbers
    /// for an integer vocabulary); numbers for a string vocabulary are codes already.
    pub(crate) fn needs_codes(&self, c: &Column<'_>) -> bool {
        c.is_string() || matches!(self.index, Index::Int(_))
    }

    /// Under `missing = error`, an error if a column that is not read through codes
    /// (numbers for a string vocabulary: codes already, passed on unchanged) holds a NaN.
    pub(crate) fn check_missing(&self, c: &Column<'_>, rows: usize) -> Result<(), Miss> {
        if self.missing == Missing::Missing {
            return Ok(());
        }
        let (off, st) = (c.offset, c.stride);
        let nan = match &c.data {
            ColumnData::F32(d) => (0..rows).any(|r| d.get(off + r * st).is_none_or(|v| v.is_nan())),
            ColumnData::F64(d) => (0..rows).any(|r| d.get(off + r * st).is_none_or(|v| v.is_nan())),
            ColumnData::Str(_) | ColumnData::Dict(_) => false,
        };
        if nan {
            return Err(Miss::Missing);
        }
        Ok(())
    }

    /// Codes of the slots `c.offset + r * c.stride` for `r in 0..dst.len()` of column `c` into
    /// `dst`. `dict` is the reused buffer a dictionary is mapped into. The column was
    /// validated by its batch.
    pub(crate) fn codes(
        &self,
        c: &Column<'_>,
        dst: &mut [f32],
        dict: &mut Vec<u32>,
    ) -> Result<(), Miss> {
        let (off, st) = (c.offset, c.stride);
        match (&c.data, &self.index) {
            (ColumnData::F32(d), _) => {
                self.numbers(dst, |r| d.get(off + r * st).map(|&v| v as f64))
            }
            (ColumnData::F64(d), _) => self.numbers(dst, |r| d.get(off + r * st).copied()),
            (ColumnData::Str(_) | ColumnData::Dict(_), Index::Int(_)) => {
                Err(Miss::StringForInteger)
            }
            (ColumnData::Str(s), Index::Str(ix)) => self.strings(s, ix, dst, |r| off + r * st),
            (ColumnData::Dict(d), Index::Str(ix)) => self.dictionary(d, ix, dst, dict, off, st),
        }
    }

    fn numbers(&self, dst: &mut [f32], get: impl Fn(usize) -> Option<f64>) -> Result<(), Miss> {
        for (r, o) in dst.iter_mut().enumerate() {
            let x = get(r).unwrap_or(f64::NAN);
            *o = self.code_of_f64(x)? as f32;
        }
        Ok(())
    }

    /// Codes of a string column, monomorphized per layout.
    fn strings(
        &self,
        s: &StrColumn<'_>,
        ix: &StrIndex,
        dst: &mut [f32],
        slot: impl Fn(usize) -> usize,
    ) -> Result<(), Miss> {
        #[inline(always)]
        fn run<'a>(
            stage: &LookupStage,
            ix: &StrIndex,
            s: &StrColumn<'a>,
            dst: &mut [f32],
            slot: impl Fn(usize) -> usize,
            get: impl Fn(usize) -> Option<StrValue<'a>>,
        ) -> Result<(), Miss> {
            for (r, o) in dst.iter_mut().enumerate() {
                let i = slot(r);
                *o = if !s.is_valid(i) {
                    stage.missing_code()?
                } else {
                    match get(i) {
                        None => stage.missing_code()?,
                        Some(v) => {
                            let b = v.as_bytes();
                            match ix.find(b) {
                                Some(c) => c as f32,
                                None => stage.unknown_code(|| quote(b))?,
                            }
                        }
                    }
                };
            }
            Ok(())
        }
        let data = s.data;
        match data {
            StrData::Utf8 { .. } => run(self, ix, s, dst, slot, |i| data.get(i)),
            StrData::LargeUtf8 { .. } => run(self, ix, s, dst, slot, |i| data.get(i)),
            StrData::View { .. } => run(self, ix, s, dst, slot, |i| data.get(i)),
        }
    }

    /// Codes of a dictionary column: the dictionary mapped once into `map`, then one code
    /// per row by its key.
    fn dictionary(
        &self,
        d: &DictColumn<'_>,
        ix: &StrIndex,
        dst: &mut [f32],
        map: &mut Vec<u32>,
        off: usize,
        st: usize,
    ) -> Result<(), Miss> {
        map.clear();
        map.extend((0..d.values.len).map(|i| match d.values.get(i) {
            None => NULL_CODE,
            Some(v) => ix.find(v.as_bytes()).unwrap_or(UNKNOWN_CODE),
        }));
        let map: &[u32] = map;
        let unknown = |key: usize| -> Result<f32, Miss> {
            self.unknown_code(|| {
                d.values
                    .get(key)
                    .map(|v| quote(v.as_bytes()))
                    .unwrap_or_default()
            })
        };
        let missing = || self.missing_code();
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        fn run<K: Copy>(
            keys: &[K],
            d: &DictColumn<'_>,
            map: &[u32],
            dst: &mut [f32],
            off: usize,
            st: usize,
            as_index: impl Fn(K) -> Option<usize>,
            unknown: impl Fn(usize) -> Result<f32, Miss>,
            missing: impl Fn() -> Result<f32, Miss>,
        ) -> Result<(), Miss> {
            for (r, o) in dst.iter_mut().enumerate() {
                let i = off + r * st;
                if !d.is_valid(i) {
                    *o = missing()?;
                    continue;
                }
                let key = keys.get(i).copied().and_then(&as_index);
                *o = match key.and_then(|k| map.get(k).map(|&c| (k, c))) {
                    Some((_, c)) if c < UNKNOWN_CODE => c as f32,
                    Some((k, UNKNOWN_CODE)) => unknown(k)?,
                    _ => missing()?,
                };
            }
            Ok(())
        }
        match d.keys {
            DictKeys::I8(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
            DictKeys::I16(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
            DictKeys::I32(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
            DictKeys::I64(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
            DictKeys::U8(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| Some(v as usize),
                unknown,
                missing,
            ),
            DictKeys::U16(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| Some(v as usize),
                unknown,
                missing,
            ),
            DictKeys::U32(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
            DictKeys::U64(k) => run(
                k,
                d,
                map,
                dst,
                off,
                st,
                |v| usize::try_from(v).ok(),
                unknown,
                missing,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_index_finds_every_category_and_nothing_else() {
        let cats = ["Paris", "Zürich", "", "paris", "a\u{0}b"];
        let (bytes, offsets) = mle_format::vocab::encode(&cats).unwrap();
        let v = Vocabulary::new(&bytes, &offsets).unwrap();
        let ix = StrIndex::new(&v);
        for (code, c) in cats.iter().enumerate() {
            assert_eq!(ix.find(c.as_bytes()), Some(code as u32), "{c:?}");
        }
        for other in ["PARIS", "Zurich", " ", "a", "Paris "] {
            assert_eq!(ix.find(other.as_bytes()), None, "{other:?}");
        }
        assert_eq!(ix.len(), 5);
    }

    #[test]
    fn integer_index_matches_equal_numbers_only() {
        let values = [-3i64, 0, 1, 2, 5, 300, 1000, i64::MIN];
        let v = IntVocabulary::new(&values).unwrap();
        let ix = IntIndex::new(&v);
        assert_eq!(ix.find(-3.0), Some(0));
        assert_eq!(ix.find(0.0), Some(1));
        assert_eq!(ix.find(-0.0), Some(1));
        assert_eq!(ix.find(300.0), Some(5));
        assert_eq!(ix.find(i64::MIN as f64), Some(7));
        for x in [
            2.5,
            -2.9,
            0.5,
            3.0,
            256.0,
            1e20,
            -1e20,
            f64::INFINITY,
            f64::NAN,
            9.3e18,
        ] {
            assert_eq!(ix.find(x), None, "{x}");
        }
    }

    #[test]
    fn quotes_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let q = quote(long.as_bytes());
        assert!(q.contains("… (200 bytes)"), "{q}");
        assert!(q.len() < 100, "{q}");
    }
}
