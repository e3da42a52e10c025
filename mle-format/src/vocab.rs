//! Vocabularies: the categories of a categorical input feature, stored as tensors in the
//! weights section and read in place (see `FORMAT.md`, "Input features").
//!
//! A string vocabulary of `n` categories is two rank-1 tensors: `bytes` (`u8`), the UTF-8
//! encodings of the categories concatenated in code order, and `offsets` (`u32`, `n + 1`
//! entries), where category `i` is `bytes[offsets[i]..offsets[i + 1]]`. An integer vocabulary
//! is one rank-1 `i64` tensor of `n` values. In both, the code of a category is its position.
//!
//! [`Vocabulary::new`] and [`IntVocabulary::new`] check every bound of `FORMAT.md` once; the
//! views they return borrow the tensors (no copy, no per-category allocation).

use std::collections::HashSet;

use thiserror::Error;

/// Most categories a feature may have: 2²⁰ = 1 048 576. Far above what tree frameworks split on,
/// every code exact as an `f32` (exact up to 2²⁴), and it bounds the index a reader builds over a
/// vocabulary (the duplicate check, a lookup table): a few tens of MiB at most, whatever the
/// file claims.
pub const MAX_CATEGORIES: usize = 1 << 20;

/// Longest category accepted, in UTF-8 bytes (64 KiB). Category labels are short; the cap
/// bounds the work per entry when an index is built and keeps messages and listings sane.
pub const MAX_CATEGORY_BYTES: usize = 64 << 10;

/// Longest prefix of a category quoted in an error message, in bytes.
const QUOTE_BYTES: usize = 64;

/// A vocabulary whose tensors break a bound of `FORMAT.md`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VocabError {
    /// The offsets tensor is empty; it needs `n + 1 ≥ 1` entries.
    #[error("the offsets tensor is empty (it needs one entry more than there are categories)")]
    NoOffsets,
    /// More categories than [`MAX_CATEGORIES`].
    #[error("{count} categories exceed the limit of {limit}")]
    TooMany {
        /// Categories claimed.
        count: usize,
        /// [`MAX_CATEGORIES`].
        limit: usize,
    },
    /// The first offset is not 0.
    #[error("offset 0 is {offset}, it must be 0")]
    FirstOffset {
        /// The first offset found.
        offset: u32,
    },
    /// The last offset is not the byte length of the bytes tensor.
    #[error("the last offset is {last}, but the bytes tensor holds {len} bytes")]
    LastOffset {
        /// The last offset.
        last: u32,
        /// Length of the bytes tensor.
        len: usize,
    },
    /// An offset beyond the bytes tensor.
    #[error("offset {index} is {offset}, beyond the {len} bytes of the bytes tensor")]
    OffsetOutOfRange {
        /// Position in the offsets tensor.
        index: usize,
        /// The offset.
        offset: u32,
        /// Length of the bytes tensor.
        len: usize,
    },
    /// An offset smaller than the one before it.
    #[error("offset {index} is {offset}, smaller than offset {} ({previous}): offsets must not decrease", index - 1)]
    NotMonotone {
        /// Position in the offsets tensor.
        index: usize,
        /// The offset.
        offset: u32,
        /// The offset before it.
        previous: u32,
    },
    /// A category longer than [`MAX_CATEGORY_BYTES`].
    #[error("category {index} is {len} bytes long, over the limit of {limit}")]
    TooLong {
        /// Code of the category.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_CATEGORY_BYTES`].
        limit: usize,
    },
    /// A category that is not valid UTF-8.
    #[error("category {index} is not valid UTF-8 (after its first {valid_up_to} bytes)")]
    InvalidUtf8 {
        /// Code of the category.
        index: usize,
        /// Bytes of it that are valid.
        valid_up_to: usize,
    },
    /// The same category twice.
    #[error("categories {first} and {second} are both {value}")]
    Duplicate {
        /// Code of the first occurrence.
        first: usize,
        /// Code of the second.
        second: usize,
        /// The category (a string quoted and cut to 64 bytes, or an integer).
        value: String,
    },
}

/// A string vocabulary borrowed from its two tensors; validated when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary<'a> {
    bytes: &'a [u8],
    offsets: &'a [u32],
}

fn quote(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        return format!("{s:?}");
    }
    let mut end = QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

impl<'a> Vocabulary<'a> {
    /// Checks `bytes` and `offsets` against every bound of `FORMAT.md`, in this order:
    /// at least one offset; at most [`MAX_CATEGORIES`] categories; the first offset 0 and the
    /// last the length of `bytes`; every offset within `bytes` and not below the one before;
    /// each category at most [`MAX_CATEGORY_BYTES`] long, valid UTF-8, and unlike every other.
    /// Nothing is allocated before the count is checked; the duplicate check's index of
    /// borrowed strings grows with the categories seen (not with the count claimed).
    pub fn new(bytes: &'a [u8], offsets: &'a [u32]) -> Result<Vocabulary<'a>, VocabError> {
        let (&first, rest) = offsets.split_first().ok_or(VocabError::NoOffsets)?;
        let count = rest.len();
        if count > MAX_CATEGORIES {
            return Err(VocabError::TooMany {
                count,
                limit: MAX_CATEGORIES,
            });
        }
        if first != 0 {
            return Err(VocabError::FirstOffset { offset: first });
        }
        let last = rest.last().copied().unwrap_or(first);
        if usize::try_from(last).ok() != Some(bytes.len()) {
            return Err(VocabError::LastOffset {
                last,
                len: bytes.len(),
            });
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut previous = first;
        for (i, &offset) in rest.iter().enumerate() {
            let index = i + 1;
            let (start, end) = (previous as usize, offset as usize);
            if end > bytes.len() {
                return Err(VocabError::OffsetOutOfRange {
                    index,
                    offset,
                    len: bytes.len(),
                });
            }
            if offset < previous {
                return Err(VocabError::NotMonotone {
                    index,
                    offset,
                    previous,
                });
            }
            let code = i;
            let len = end - start;
            if len > MAX_CATEGORY_BYTES {
                return Err(VocabError::TooLong {
                    index: code,
                    len,
                    limit: MAX_CATEGORY_BYTES,
                });
            }
            // In range: start ≤ end ≤ bytes.len() was checked just above.
            let entry = bytes.get(start..end).unwrap_or_default();
            let s = std::str::from_utf8(entry).map_err(|e| VocabError::InvalidUtf8 {
                index: code,
                valid_up_to: e.valid_up_to(),
            })?;
            if !seen.insert(s) {
                let first = Vocabulary { bytes, offsets }
                    .iter()
                    .position(|c| c == s)
                    .unwrap_or(code);
                return Err(VocabError::Duplicate {
                    first,
                    second: code,
                    value: quote(s),
                });
            }
            previous = offset;
        }
        Ok(Vocabulary { bytes, offsets })
    }

    /// A view of tensors already checked by [`Vocabulary::new`] (when the file was opened).
    /// Accessors stay checked, so a view of unchecked tensors is wrong but never unsound.
    pub(crate) fn validated(bytes: &'a [u8], offsets: &'a [u32]) -> Vocabulary<'a> {
        Vocabulary { bytes, offsets }
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The category of code `code`, borrowed from the file; `None` past the end.
    pub fn get(&self, code: usize) -> Option<&'a str> {
        let start = *self.offsets.get(code)? as usize;
        let end = *self.offsets.get(code.checked_add(1)?)? as usize;
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }

    /// The categories in code order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + DoubleEndedIterator + 'a {
        let v = *self;
        (0..v.len()).map(move |i| v.get(i).unwrap_or_default())
    }

    /// The concatenated UTF-8 bytes (the `bytes` tensor).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The `n + 1` offsets (the `offsets` tensor).
    pub fn offsets(&self) -> &'a [u32] {
        self.offsets
    }
}

/// An integer vocabulary (integer-coded categories) borrowed from its `i64` tensor; validated
/// when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntVocabulary<'a> {
    values: &'a [i64],
}

impl<'a> IntVocabulary<'a> {
    /// Checks at most [`MAX_CATEGORIES`] values (before allocating) and no value twice.
    pub fn new(values: &'a [i64]) -> Result<IntVocabulary<'a>, VocabError> {
        if values.len() > MAX_CATEGORIES {
            return Err(VocabError::TooMany {
                count: values.len(),
                limit: MAX_CATEGORIES,
            });
        }
        let mut seen = HashSet::new();
        for (code, &v) in values.iter().enumerate() {
            if !seen.insert(v) {
                let first = values.iter().position(|&x| x == v).unwrap_or(code);
                return Err(VocabError::Duplicate {
                    first,
                    second: code,
                    value: v.to_string(),
                });
            }
        }
        Ok(IntVocabulary { values })
    }

    /// A view of a tensor already checked by [`IntVocabulary::new`] (when the file was opened).
    pub(crate) fn validated(values: &'a [i64]) -> IntVocabulary<'a> {
        IntVocabulary { values }
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The category of code `code`; `None` past the end.
    pub fn get(&self, code: usize) -> Option<i64> {
        self.values.get(code).copied()
    }

    /// The categories in code order, borrowed from the file.
    pub fn values(&self) -> &'a [i64] {
        self.values
    }
}

/// Encodes `categories` as the two tensors of a string vocabulary: (bytes, offsets).
/// Checks the same bounds as [`Vocabulary::new`]; an offset beyond `u32` is refused as
/// [`VocabError::OffsetOutOfRange`].
pub fn encode<S: AsRef<str>>(categories: &[S]) -> Result<(Vec<u8>, Vec<u32>), VocabError> {
    if categories.len() > MAX_CATEGORIES {
        return Err(VocabError::TooMany {
            count: categories.len(),
            limit: MAX_CATEGORIES,
        });
    }
    let total: usize = categories.iter().map(|c| c.as_ref().len()).sum();
    let mut bytes = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(categories.len() + 1);
    offsets.push(0u32);
    for (i, c) in categories.iter().enumerate() {
        bytes.extend_from_slice(c.as_ref().as_bytes());
        let offset = u32::try_from(bytes.len()).map_err(|_| VocabError::OffsetOutOfRange {
            index: i + 1,
            offset: u32::MAX,
            len: bytes.len(),
        })?;
        offsets.push(offset);
    }
    Vocabulary::new(&bytes, &offsets)?;
    Ok((bytes, offsets))
}
