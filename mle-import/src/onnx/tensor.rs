//! Constant tensors: `TensorProto` decoding (typed fields, `raw_data`, external data), every
//! element count checked against the bytes present.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use super::proto::{data_type as dt, TensorProto};

/// Most elements a constant the importer builds itself (folding, broadcasting) may hold.
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 24;

/// Most dimensions of a tensor.
pub const MAX_RANK: usize = 16;

/// Element data of a constant, widened: every float type as f32 or f64, every integer type
/// (and bool) as i64.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `float`.
    F32(Vec<f32>),
    /// `double`.
    F64(Vec<f64>),
    /// Integer and bool types.
    I64(Vec<i64>),
    /// `string` (UTF-8; other bytes are refused).
    Str(Vec<String>),
}

/// A constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Const {
    /// The ONNX element type (`TensorProto.DataType`).
    pub elem: i32,
    /// Shape (`[]` for a scalar).
    pub dims: Vec<usize>,
    /// Row-major elements, as many as the shape says.
    pub data: Data,
}

impl Const {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Numbers widened to f64 (exactly for f32; integers beyond 2^53 rounded), or `None` for
    /// strings.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match &self.data {
            Data::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            Data::F64(v) => Some(v.clone()),
            Data::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Data::Str(_) => None,
        }
    }

    /// Integers, or `None` for other types.
    pub fn to_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A float constant from f64 values in the element type `elem` (`float` or `double`).
    pub fn float(elem: i32, dims: Vec<usize>, v: Vec<f64>) -> Const {
        let data = if elem == dt::DOUBLE {
            Data::F64(v)
        } else {
            Data::F32(v.iter().map(|&x| x as f32).collect())
        };
        Const {
            elem: if elem == dt::DOUBLE {
                dt::DOUBLE
            } else {
                dt::FLOAT
            },
            dims,
            data,
        }
    }

    /// An int64 constant.
    pub fn ints(dims: Vec<usize>, v: Vec<i64>) -> Const {
        Const {
            elem: dt::INT64,
            dims,
            data: Data::I64(v),
        }
    }
}

/// Product of `dims`, overflow-checked.
pub fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn elem_size(t: i32) -> Option<usize> {
    Some(match t {
        dt::FLOAT | dt::INT32 | dt::UINT32 => 4,
        dt::DOUBLE | dt::INT64 | dt::UINT64 => 8,
        dt::INT8 | dt::UINT8 | dt::BOOL => 1,
        dt::INT16 | dt::UINT16 => 2,
        _ => return None,
    })
}

/// Decodes a tensor. `model_dir` is the directory external data may be read from (`None`
/// refuses external data). Errors are a detail for the caller to place.
pub fn decode(t: &TensorProto, model_dir: Option<&Path>) -> Result<Const, String> {
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    if t.dims.len() > MAX_RANK {
        return Err(format!("{} dimensions (at most {MAX_RANK})", t.dims.len()));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d =
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in {:?}", t.dims))?;
        dims.push(d);
    }
    let n = element_count(&dims).ok_or_else(|| format!("dims {:?} overflow", t.dims))?;
    let elem = t.data_type;
    let external;
    let raw: Option<&[u8]> = match t.data_location {
        0 if !t.raw_data.is_empty() => Some(&t.raw_data),
        0 => None,
        1 => {
            external = read_external(t, model_dir)?;
            Some(&external)
        }
        l => {
            return Err(format!(
                "data_location {l} (expected 0 DEFAULT or 1 EXTERNAL)"
            ))
        }
    };
    let data = match raw {
        Some(raw) => {
            if elem == dt::STRING {
                return Err("string tensors cannot use raw_data".into());
            }
            let size = elem_size(elem)
                .ok_or_else(|| format!("tensors of type {} are not supported", dt::name(elem)))?;
            let want = n
                .checked_mul(size)
                .ok_or_else(|| format!("dims {:?} overflow", t.dims))?;
            if raw.len() != want {
                return Err(format!(
                    "dims {:?} of {} need {want} bytes of raw data, found {}",
                    t.dims,
                    dt::name(elem),
                    raw.len()
                ));
            }
            from_raw(elem, raw)?
        }
        None => from_fields(t, n)?,
    };
    Ok(Const { elem, dims, data })
}

fn from_raw(elem: i32, raw: &[u8]) -> Result<Data, String> {
    fn chunks<const K: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; K]> + '_ {
        raw.chunks_exact(K).map(|c| {
            let mut a = [0u8; K];
            a.copy_from_slice(c);
            a
        })
    }
    Ok(match elem {
        dt::FLOAT => Data::F32(chunks::<4>(raw).map(f32::from_le_bytes).collect()),
        dt::DOUBLE => Data::F64(chunks::<8>(raw).map(f64::from_le_bytes).collect()),
        dt::INT64 => Data::I64(chunks::<8>(raw).map(i64::from_le_bytes).collect()),
        dt::INT32 => Data::I64(
            chunks::<4>(raw)
                .map(|c| i64::from(i32::from_le_bytes(c)))
                .collect(),
        ),
        dt::UINT32 => Data::I64(
            chunks::<4>(raw)
                .map(|c| i64::from(u32::from_le_bytes(c)))
                .collect(),
        ),
        dt::INT16 => Data::I64(
            chunks::<2>(raw)
                .map(|c| i64::from(i16::from_le_bytes(c)))
                .collect(),
        ),
        dt::UINT16 => Data::I64(
            chunks::<2>(raw)
                .map(|c| i64::from(u16::from_le_bytes(c)))
                .collect(),
        ),
        dt::INT8 => Data::I64(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        dt::UINT8 => Data::I64(raw.iter().map(|&b| i64::from(b)).collect()),
        dt::BOOL => Data::I64(raw.iter().map(|&b| i64::from(b != 0)).collect()),
        dt::UINT64 => {
            let mut v = Vec::with_capacity(raw.len() / 8);
            for c in chunks::<8>(raw) {
                let x = u64::from_le_bytes(c);
                v.push(i64::try_from(x).map_err(|_| format!("uint64 value {x} exceeds int64"))?);
            }
            Data::I64(v)
        }
        _ => {
            return Err(format!(
                "tensors of type {} are not supported",
                dt::name(elem)
            ))
        }
    })
}

fn from_fields(t: &TensorProto, n: usize) -> Result<Data, String> {
    let elem = t.data_type;
    let check = |len: usize, field: &str| {
        if len == n {
            Ok(())
        } else {
            Err(format!(
                "dims {:?} hold {n} elements but {field} has {len}",
                t.dims
            ))
        }
    };
    Ok(match elem {
        dt::FLOAT => {
            check(t.float_data.len(), "float_data")?;
            Data::F32(t.float_data.clone())
        }
        dt::DOUBLE => {
            check(t.double_data.len(), "double_data")?;
            Data::F64(t.double_data.clone())
        }
        dt::INT64 => {
            check(t.int64_data.len(), "int64_data")?;
            Data::I64(t.int64_data.clone())
        }
        dt::INT32 | dt::INT16 | dt::INT8 | dt::UINT16 | dt::UINT8 | dt::BOOL => {
            check(t.int32_data.len(), "int32_data")?;
            Data::I64(t.int32_data.iter().map(|&x| i64::from(x)).collect())
        }
        dt::UINT32 | dt::UINT64 => {
            check(t.uint64_data.len(), "uint64_data")?;
            let mut v = Vec::with_capacity(n);
            for &x in &t.uint64_data {
                v.push(i64::try_from(x).map_err(|_| format!("uint64 value {x} exceeds int64"))?);
            }
            Data::I64(v)
        }
        dt::STRING => {
            check(t.string_data.len(), "string_data")?;
            let mut v = Vec::with_capacity(n);
            for (i, s) in t.string_data.iter().enumerate() {
                v.push(
                    String::from_utf8(s.clone())
                        .map_err(|_| format!("string_data[{i}] is not UTF-8"))?,
                );
            }
            Data::Str(v)
        }
        _ => {
            return Err(format!(
                "tensors of type {} are not supported",
                dt::name(elem)
            ))
        }
    })
}

/// Reads the bytes of an external tensor: `location` relative to `model_dir`, with no `..`,
/// root or prefix component, resolved (symlinks included) inside `model_dir`; `offset` and
/// `length` inside the file.
fn read_external(t: &TensorProto, model_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let Some(dir) = model_dir else {
        return Err(
            "external data (data_location = EXTERNAL) needs the model's directory: import the \
             model from its file path"
                .into(),
        );
    };
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for e in &t.external_data {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("external_data {}: {v:?} is not a byte count", e.key))
        };
        match e.key.as_str() {
            "location" => location = Some(e.value.as_str()),
            "offset" => offset = num(&e.value)?,
            "length" => length = Some(num(&e.value)?),
            _ => {}
        }
    }
    let location = location.ok_or("external data without a location")?;
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location {location:?} must be a relative path inside the model's \
             directory (no '..', no absolute path)"
        ));
    }
    let root = dir
        .canonicalize()
        .map_err(|e| format!("model directory {}: {e}", dir.display()))?;
    let path = root
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("external data {location:?}: {e}"))?;
    if !path.starts_with(&root) {
        return Err(format!(
            "external data {location:?} resolves outside the model's directory"
        ));
    }
    let mut f =
        std::fs::File::open(&path).map_err(|e| format!("external data {location:?}: {e}"))?;
    let size = f
        .metadata()
        .map_err(|e| format!("external data {location:?}: {e}"))?
        .len();
    let length = length.unwrap_or(size.saturating_sub(offset));
    let end = offset
        .checked_add(length)
        .filter(|&e| e <= size)
        .ok_or_else(|| {
            format!(
                "external data {location:?}: offset {offset} + length {length} is beyond its {size} bytes"
            )
        })?;
    let len = usize::try_from(end - offset).map_err(|_| "external data too large".to_string())?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("external data {location:?}: {e}"))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf)
        .map_err(|e| format!("external data {location:?}: {e}"))?;
    Ok(buf)
}
