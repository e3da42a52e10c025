//! Columnar input batches, borrowed without copying.
//!
//! A column is numbers (`f32`, `f64`) or strings in an Arrow layout (`Utf8`, `LargeUtf8`,
//! `Utf8View`, or a dictionary of them), borrowed in place. [`Batch::from_strided`] checks
//! every bound a host could get wrong (lengths, offsets, views, dictionary keys, UTF-8), so
//! the executor reads columns without further checks and never panics on a host's data.
//! Strings reach a model only through its `Lookup` op (docs/OPS.md), which turns them into
//! category codes.

use crate::error::ExecError;

/// The data of one feature column.
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f64 values.
    F64(&'a [f64]),
    /// Strings (string or category features), Arrow layouts borrowed in place.
    Str(StrColumn<'a>),
    /// Dictionary-encoded strings: `keys` index `values`; the dictionary is mapped to codes
    /// once per batch.
    Dict(DictColumn<'a>),
}

/// Arrow validity bitmap (LSB order, bit set = valid), starting at bit `offset`.
#[derive(Clone, Copy, Debug)]
pub struct Validity<'a> {
    /// The bitmap bytes.
    pub bits: &'a [u8],
    /// Bit of slot 0.
    pub offset: usize,
}

impl Validity<'_> {
    /// Whether slot `i` is valid (a bit beyond the bitmap reads as not valid).
    #[inline(always)]
    pub fn is_valid(&self, i: usize) -> bool {
        let b = self.offset.wrapping_add(i);
        self.bits
            .get(b / 8)
            .is_some_and(|&w| (w >> (b % 8)) & 1 == 1)
    }
}

/// The string data of a column, in one of Arrow's layouts.
#[derive(Clone, Copy, Debug)]
pub enum StrData<'a> {
    /// Arrow `Utf8`: string `i` is `bytes[offsets[i]..offsets[i + 1]]`; `offsets` has
    /// `len + 1` entries (already sliced, as arrow-rs `StringArray::offsets()`).
    Utf8 {
        /// `len + 1` offsets.
        offsets: &'a [i32],
        /// The values buffer.
        bytes: &'a [u8],
    },
    /// Arrow `LargeUtf8`: as `Utf8` with 64-bit offsets.
    LargeUtf8 {
        /// `len + 1` offsets.
        offsets: &'a [i64],
        /// The values buffer.
        bytes: &'a [u8],
    },
    /// Arrow `Utf8View`: one 16-byte view per string (little-endian): bits 0..32 the length;
    /// a string of at most 12 bytes is inline in bytes 4..16; a longer one has its first four
    /// bytes in bytes 4..8, the index of its buffer in bytes 8..12 and its offset in that
    /// buffer in bytes 12..16.
    View {
        /// One view per slot.
        views: &'a [u128],
        /// The data buffers.
        buffers: &'a [&'a [u8]],
    },
}

/// A column of strings: `len` slots, NULL where `validity` says so.
#[derive(Clone, Copy, Debug)]
pub struct StrColumn<'a> {
    /// The strings.
    pub data: StrData<'a>,
    /// Which slots hold a value (`None`: all).
    pub validity: Option<Validity<'a>>,
    /// Number of slots.
    pub len: usize,
}

/// The keys of a dictionary column.
#[derive(Clone, Copy, Debug)]
pub enum DictKeys<'a> {
    /// i8 keys.
    I8(&'a [i8]),
    /// i16 keys.
    I16(&'a [i16]),
    /// i32 keys.
    I32(&'a [i32]),
    /// i64 keys.
    I64(&'a [i64]),
    /// u8 keys.
    U8(&'a [u8]),
    /// u16 keys.
    U16(&'a [u16]),
    /// u32 keys.
    U32(&'a [u32]),
    /// u64 keys.
    U64(&'a [u64]),
}

impl DictKeys<'_> {
    /// Number of keys.
    pub fn len(&self) -> usize {
        match self {
            DictKeys::I8(k) => k.len(),
            DictKeys::I16(k) => k.len(),
            DictKeys::I32(k) => k.len(),
            DictKeys::I64(k) => k.len(),
            DictKeys::U8(k) => k.len(),
            DictKeys::U16(k) => k.len(),
            DictKeys::U32(k) => k.len(),
            DictKeys::U64(k) => k.len(),
        }
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Key `i` as a dictionary index: `None` past the end, for a negative key, or for one
    /// beyond `usize`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<usize> {
        match self {
            DictKeys::I8(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
            DictKeys::I16(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
            DictKeys::I32(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
            DictKeys::I64(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
            DictKeys::U8(k) => k.get(i).map(|&v| v as usize),
            DictKeys::U16(k) => k.get(i).map(|&v| v as usize),
            DictKeys::U32(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
            DictKeys::U64(k) => k.get(i).and_then(|&v| usize::try_from(v).ok()),
        }
    }

    /// Key `i` for an error message (signed keys keep their sign).
    fn display(&self, i: usize) -> String {
        match self {
            DictKeys::I8(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::I16(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::I32(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::I64(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::U8(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::U16(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::U32(k) => k.get(i).map(|v| v.to_string()),
            DictKeys::U64(k) => k.get(i).map(|v| v.to_string()),
        }
        .unwrap_or_default()
    }
}

/// A dictionary-encoded string column: slot `i` is `values[keys[i]]`, NULL where `validity`
/// says so (or where the dictionary value is NULL). Its length is the number of keys.
#[derive(Clone, Copy, Debug)]
pub struct DictColumn<'a> {
    /// One key per slot.
    pub keys: DictKeys<'a>,
    /// Which slots hold a key (`None`: all).
    pub validity: Option<Validity<'a>>,
    /// The dictionary.
    pub values: StrColumn<'a>,
}

/// One string of a column, borrowed (or, for an inline `Utf8View` string, copied out of its
/// 16-byte view): no allocation.
#[derive(Clone, Copy, Debug)]
pub enum StrValue<'a> {
    /// Borrowed from the column's buffers.
    Borrowed(&'a [u8]),
    /// A `Utf8View` string of at most 12 bytes: `bytes[..len]`.
    Inline {
        /// The view's inline bytes.
        bytes: [u8; 12],
        /// Its length (at most 12).
        len: u8,
    },
}

impl StrValue<'_> {
    /// The string's bytes (valid UTF-8 when the column was validated by a [`Batch`]).
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            StrValue::Borrowed(b) => b,
            StrValue::Inline { bytes, len } => bytes.get(..*len as usize).unwrap_or(bytes),
        }
    }

    /// The string, or `None` if it is not valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }
}

/// The fields of a `Utf8View` view: (length, inline bytes, buffer index, offset).
#[inline(always)]
fn view_parts(v: u128) -> (usize, [u8; 16], usize, usize) {
    let b = v.to_le_bytes();
    let len = (v as u32) as usize;
    let buf = ((v >> 64) as u32) as usize;
    let off = ((v >> 96) as u32) as usize;
    (len, b, buf, off)
}

impl<'a> StrData<'a> {
    /// String `i`; `None` when `i` or its offsets are out of range (never after validation).
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<StrValue<'a>> {
        match *self {
            StrData::Utf8 { offsets, bytes } => {
                let s = usize::try_from(*offsets.get(i)?).ok()?;
                let e = usize::try_from(*offsets.get(i.checked_add(1)?)?).ok()?;
                bytes.get(s..e).map(StrValue::Borrowed)
            }
            StrData::LargeUtf8 { offsets, bytes } => {
                let s = usize::try_from(*offsets.get(i)?).ok()?;
                let e = usize::try_from(*offsets.get(i.checked_add(1)?)?).ok()?;
                bytes.get(s..e).map(StrValue::Borrowed)
            }
            StrData::View { views, buffers } => {
                let (len, b, buf, off) = view_parts(*views.get(i)?);
                if len <= 12 {
                    let mut bytes = [0u8; 12];
                    bytes.copy_from_slice(b.get(4..16)?);
                    Some(StrValue::Inline {
                        bytes,
                        len: len as u8,
                    })
                } else {
                    let data = buffers.get(buf)?;
                    data.get(off..off.checked_add(len)?).map(StrValue::Borrowed)
                }
            }
        }
    }
}

impl<'a> StrColumn<'a> {
    /// Whether slot `i` holds a value.
    #[inline(always)]
    pub fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.is_valid(i))
    }

    /// The string in slot `i`, `None` for a NULL slot (or an index out of range).
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<StrValue<'a>> {
        if i >= self.len || !self.is_valid(i) {
            return None;
        }
        self.data.get(i)
    }
}

impl DictColumn<'_> {
    /// Number of slots (keys).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no slots.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether slot `i` holds a key.
    #[inline(always)]
    pub fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.is_valid(i))
    }
}

/// One feature column: element `row` is `data[offset + row * stride]`. A plain column has
/// `offset = 0, stride = 1`; column `j` of a row-major `[n, k]` matrix has `offset = j,
/// stride = k`; `stride = 0` repeats element `offset` for every row (a broadcast literal).
/// Missing numbers are NaN. String and dictionary columns take stride 1 or 0 only.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The backing data.
    pub data: ColumnData<'a>,
    /// Index of row 0's element.
    pub offset: usize,
    /// Distance between consecutive rows' elements.
    pub stride: usize,
}

impl Column<'_> {
    /// Value of `row` as f64 (f32 widened exactly); NaN for a string or dictionary column,
    /// which has no numeric value. The caller guarantees `row < n_rows` of the batch this
    /// column was validated in.
    #[inline(always)]
    pub fn get_f64(&self, row: usize) -> f64 {
        let i = self.offset + row * self.stride;
        match self.data {
            ColumnData::F32(d) => d[i] as f64,
            ColumnData::F64(d) => d[i],
            ColumnData::Str(_) | ColumnData::Dict(_) => f64::NAN,
        }
    }

    /// Whether the column holds strings (a string or dictionary column).
    pub fn is_string(&self) -> bool {
        matches!(self.data, ColumnData::Str(_) | ColumnData::Dict(_))
    }
}

impl ColumnData<'_> {
    /// Number of elements (slots) of the backing data.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F32(d) => d.len(),
            ColumnData::F64(d) => d.len(),
            ColumnData::Str(s) => s.len,
            ColumnData::Dict(d) => d.len(),
        }
    }

    /// True when the backing data is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch of `n_rows` rows as feature columns, in the model's feature order.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    columns: Vec<Column<'a>>,
    n_rows: usize,
}

/// An error about column `j`.
fn col_err(j: usize, detail: impl std::fmt::Display) -> ExecError {
    ExecError::Input(format!("column {j}: {detail}"))
}

/// The slots of a column a batch of `n_rows` reads: `offset..offset + n_rows` (stride 1) or
/// `offset..offset + 1` (stride 0); empty for an empty batch.
fn read_range(
    j: usize,
    c: &Column<'_>,
    n_rows: usize,
) -> Result<std::ops::Range<usize>, ExecError> {
    if n_rows == 0 {
        return Ok(0..0);
    }
    let end = match c.stride {
        0 => c.offset.checked_add(1),
        1 => c.offset.checked_add(n_rows),
        s => {
            return Err(col_err(
                j,
                format!(
                "a string or dictionary column takes stride 1 or 0 (a broadcast literal), not {s}"
            ),
            ))
        }
    };
    let len = c.data.len();
    match end {
        Some(e) if e <= len => Ok(c.offset..e),
        _ => Err(col_err(
            j,
            format!(
                "holds {len} values, too few for {n_rows} rows (offset {}, stride {})",
                c.offset, c.stride
            ),
        )),
    }
}

fn check_validity(
    j: usize,
    what: &str,
    v: &Option<Validity<'_>>,
    len: usize,
) -> Result<(), ExecError> {
    if let Some(v) = v {
        let need = v.offset.checked_add(len);
        let have = v.bits.len().checked_mul(8);
        if !matches!((need, have), (Some(n), Some(h)) if n <= h) {
            return Err(col_err(
                j,
                format!(
                    "the {what} validity bitmap holds {} bytes, too few for {len} slots from bit {}",
                    v.bits.len(),
                    v.offset
                ),
            ));
        }
    }
    Ok(())
}

/// Whether byte position `p` of `bytes` starts a UTF-8 character (or is the end).
fn char_boundary(bytes: &[u8], p: usize) -> bool {
    bytes.get(p).is_none_or(|&b| (b as i8) >= -0x40)
}

/// Checks offsets (`len + 1` of them, non-negative, monotone, within `bytes`) and that every
/// valid slot is UTF-8. `what` names the column ("" or "dictionary ").
fn check_offsets<O: Copy + TryInto<i64> + std::fmt::Display>(
    j: usize,
    what: &str,
    offsets: &[O],
    bytes: &[u8],
    len: usize,
    validity: &Option<Validity<'_>>,
) -> Result<(), ExecError> {
    let need = len.saturating_add(1);
    let Some(offsets) = offsets.get(..need) else {
        return Err(col_err(
            j,
            format!(
                "the {what}offsets hold {} entries, {need} needed for {len} strings",
                offsets.len()
            ),
        ));
    };
    let mut prev = 0usize;
    for (i, &o) in offsets.iter().enumerate() {
        let v = o.try_into().ok().and_then(|v| usize::try_from(v).ok());
        let Some(v) = v.filter(|&v| v <= bytes.len()) else {
            return Err(col_err(
                j,
                format!(
                    "{what}offset {i} is {o}, outside the {} bytes of the values buffer",
                    bytes.len()
                ),
            ));
        };
        if i > 0 && v < prev {
            return Err(col_err(
                j,
                format!(
                    "{what}offset {i} is {o}, below offset {} ({prev}): offsets must not decrease",
                    i - 1
                ),
            ));
        }
        prev = v;
    }
    let at = |i: usize| -> usize {
        offsets
            .get(i)
            .and_then(|&o| o.try_into().ok())
            .and_then(|v: i64| usize::try_from(v).ok())
            .unwrap_or(0)
    };
    // Fast path: the whole range is UTF-8 and every offset starts a character, so every
    // string between two offsets is UTF-8.
    let whole = bytes.get(at(0)..at(len)).unwrap_or_default();
    if std::str::from_utf8(whole).is_ok() && (0..=len).all(|i| char_boundary(bytes, at(i))) {
        return Ok(());
    }
    // Slow path: only valid slots must be UTF-8 (NULL slots may hold anything).
    for i in 0..len {
        if validity.is_some_and(|v| !v.is_valid(i)) {
            continue;
        }
        let s = bytes.get(at(i)..at(i + 1)).unwrap_or_default();
        if let Err(e) = std::str::from_utf8(s) {
            return Err(col_err(
                j,
                format!(
                    "{what}string {i} is not valid UTF-8 (after its first {} bytes)",
                    e.valid_up_to()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a string column of `len` slots: offsets or views in range, UTF-8.
fn check_str(j: usize, what: &str, s: &StrColumn<'_>) -> Result<(), ExecError> {
    check_validity(j, what, &s.validity, s.len)?;
    match s.data {
        StrData::Utf8 { offsets, bytes } => {
            check_offsets(j, what, offsets, bytes, s.len, &s.validity)
        }
        StrData::LargeUtf8 { offsets, bytes } => {
            check_offsets(j, what, offsets, bytes, s.len, &s.validity)
        }
        StrData::View { views, buffers } => {
            if views.len() < s.len {
                return Err(col_err(
                    j,
                    format!(
                        "the {what}views hold {} entries, {} needed",
                        views.len(),
                        s.len
                    ),
                ));
            }
            for (i, &v) in views.iter().take(s.len).enumerate() {
                if !s.is_valid(i) {
                    continue;
                }
                let (len, b, buf, off) = view_parts(v);
                let data = if len <= 12 {
                    b.get(4..4 + len).unwrap_or_default()
                } else {
                    let Some(data) = buffers.get(buf) else {
                        return Err(col_err(
                            j,
                            format!(
                                "{what}view {i} names buffer {buf}, but there are {} buffers",
                                buffers.len()
                            ),
                        ));
                    };
                    match off.checked_add(len).and_then(|e| data.get(off..e)) {
                        Some(d) => d,
                        None => {
                            return Err(col_err(
                                j,
                                format!(
                                    "{what}view {i} spans bytes {off}..{off}+{len} of buffer {buf}, which holds {} bytes",
                                    data.len()
                                ),
                            ))
                        }
                    }
                };
                if let Err(e) = std::str::from_utf8(data) {
                    return Err(col_err(
                        j,
                        format!(
                            "{what}string {i} is not valid UTF-8 (after its first {} bytes)",
                            e.valid_up_to()
                        ),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Checks a dictionary column: its dictionary as a string column, and the keys of the valid
/// slots in `range` within the dictionary.
fn check_dict(
    j: usize,
    d: &DictColumn<'_>,
    range: std::ops::Range<usize>,
) -> Result<(), ExecError> {
    check_validity(j, "", &d.validity, d.len())?;
    check_str(j, "dictionary ", &d.values)?;
    let n = d.values.len;
    for i in range {
        if !d.is_valid(i) {
            continue;
        }
        if d.keys.get(i).is_none_or(|k| k >= n) {
            return Err(col_err(
                j,
                format!(
                    "key {i} is {}, outside the dictionary of {n} values",
                    d.keys.display(i)
                ),
            ));
        }
    }
    Ok(())
}

impl<'a> Batch<'a> {
    /// A batch from whole columns (all must have the same length).
    pub fn from_columns(columns: Vec<ColumnData<'a>>) -> Result<Self, ExecError> {
        let n_rows = columns.first().map_or(0, ColumnData::len);
        let cols = columns
            .into_iter()
            .map(|data| Column {
                data,
                offset: 0,
                stride: 1,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch viewing a row-major (C-order) `[n_rows, n_cols]` f32 matrix without copying.
    pub fn from_row_major_f32(
        data: &'a [f32],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<Self, ExecError> {
        let cols = (0..n_cols)
            .map(|j| Column {
                data: ColumnData::F32(data),
                offset: j,
                stride: n_cols,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch viewing a row-major (C-order) `[n_rows, n_cols]` f64 matrix without copying.
    pub fn from_row_major_f64(
        data: &'a [f64],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<Self, ExecError> {
        let cols = (0..n_cols)
            .map(|j| Column {
                data: ColumnData::F64(data),
                offset: j,
                stride: n_cols,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch from strided columns. Checks that every column holds `n_rows` rows, and for
    /// string and dictionary columns everything a host could get wrong: stride 1 or 0,
    /// validity bitmaps long enough, offsets `len + 1`, non-negative, monotone and within the
    /// values buffer, views naming an existing buffer and a range inside it, every valid
    /// string UTF-8, and the key of every valid slot read within the dictionary (NULL slots'
    /// keys are not checked). Any failure is an [`ExecError::Input`] naming the column.
    pub fn from_strided(columns: Vec<Column<'a>>, n_rows: usize) -> Result<Self, ExecError> {
        for (j, c) in columns.iter().enumerate() {
            match &c.data {
                ColumnData::F32(_) | ColumnData::F64(_) => {
                    let len = c.data.len();
                    let last = if n_rows == 0 {
                        Some(0)
                    } else {
                        (n_rows - 1)
                            .checked_mul(c.stride)
                            .and_then(|x| x.checked_add(c.offset))
                            .and_then(|x| x.checked_add(1))
                    };
                    match last {
                        Some(need) if n_rows == 0 || need <= len => {}
                        _ => {
                            return Err(ExecError::Input(format!(
                                "column {j} holds {len} values, too few for {n_rows} rows (offset {}, stride {})",
                                c.offset, c.stride
                            )))
                        }
                    }
                }
                ColumnData::Str(s) => {
                    read_range(j, c, n_rows)?;
                    check_str(j, "", s)?;
                }
                ColumnData::Dict(d) => {
                    let range = read_range(j, c, n_rows)?;
                    check_dict(j, d, range)?;
                }
            }
        }
        Ok(Batch { columns, n_rows })
    }

    /// A batch the executor built itself from a validated batch's columns and numeric
    /// columns of its own (nothing to check).
    pub(crate) fn trusted(columns: Vec<Column<'a>>, n_rows: usize) -> Self {
        Batch { columns, n_rows }
    }

    /// The columns, giving the vector back (to reuse its allocation).
    pub(crate) fn into_columns(self) -> Vec<Column<'a>> {
        self.columns
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// The columns.
    pub fn columns(&self) -> &[Column<'a>] {
        &self.columns
    }
}
