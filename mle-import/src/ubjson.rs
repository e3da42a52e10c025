//! A small UBJSON (Universal Binary JSON, draft 12) decoder into [`serde_json::Value`], for
//! XGBoost's `save_model("model.ubj")` / `save_raw("ubj")`.
//!
//! The crates on crates.io for UBJSON are serializer-only or early-stage and do not bound
//! container sizes, so this decoder is written here. It is defensive: every count is
//! checked against the bytes that remain (each element takes at least one byte), nesting is
//! limited to [`MAX_DEPTH`], and every error names the byte offset.
//!
//! Supported: `Z N T F i U I l L d D H C S`, untyped `[ ]` / `{ }` containers and optimized
//! containers with `$` (element type) and `#` (count). Numbers are big-endian. Non-finite
//! floats (which JSON cannot hold) become `null`, which the importer then reports as a
//! non-number in the field that holds it.

use serde_json::{Map, Number, Value};

/// Deepest container nesting accepted (XGBoost models nest about 8 levels).
pub const MAX_DEPTH: usize = 128;

/// A decoding error: what is wrong and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbjsonError {
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for UbjsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.detail)
    }
}

/// Decodes one UBJSON value that must span all of `bytes` (trailing `N` no-ops allowed).
pub fn decode(bytes: &[u8]) -> Result<Value, UbjsonError> {
    let mut d = Decoder { bytes, pos: 0 };
    let v = d.value(0)?;
    while d.pos < bytes.len() && bytes.get(d.pos) == Some(&b'N') {
        d.pos += 1;
    }
    if d.pos != bytes.len() {
        return Err(d.err(format!(
            "{} trailing bytes after the top-level value",
            bytes.len() - d.pos
        )));
    }
    Ok(v)
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn err(&self, detail: String) -> UbjsonError {
        UbjsonError {
            offset: self.pos,
            detail,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], UbjsonError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated: {n} bytes needed, {} left",
                    self.remaining()
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, UbjsonError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UbjsonError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads an integer of the type given by `marker` (for lengths and counts).
    fn int_of(&mut self, marker: u8) -> Result<i64, UbjsonError> {
        Ok(match marker {
            b'i' => i8::from_be_bytes(self.array()?) as i64,
            b'U' => u8::from_be_bytes(self.array()?) as i64,
            b'I' => i16::from_be_bytes(self.array()?) as i64,
            b'l' => i32::from_be_bytes(self.array()?) as i64,
            b'L' => i64::from_be_bytes(self.array()?),
            m => {
                return Err(self.err(format!(
                    "expected an integer type marker, found {:?}",
                    m as char
                )))
            }
        })
    }

    /// Reads a length or count and checks it against the bytes left, given that each of
    /// the `n` items takes at least `min_size` bytes.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize, UbjsonError> {
        let at = self.pos;
        let m = self.byte()?;
        let n = self.int_of(m)?;
        let n = usize::try_from(n).map_err(|_| UbjsonError {
            offset: at,
            detail: format!("negative {what} {n}"),
        })?;
        let need = n.checked_mul(min_size.max(1));
        match need {
            Some(need) if need <= self.remaining() => Ok(n),
            _ => Err(UbjsonError {
                offset: at,
                detail: format!(
                    "{what} {n} exceeds the {} bytes left in the input",
                    self.remaining()
                ),
            }),
        }
    }

    fn string(&mut self) -> Result<String, UbjsonError> {
        let n = self.count(1, "string length")?;
        let at = self.pos;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|e| UbjsonError {
            offset: at,
            detail: format!("string is not UTF-8: {e}"),
        })
    }

    fn float(&self, x: f64) -> Value {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }

    /// Decodes the payload of a value whose type marker is `m`.
    fn payload(&mut self, m: u8, depth: usize) -> Result<Value, UbjsonError> {
        Ok(match m {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Number(self.int_of(m)?.into()),
            b'd' => {
                let x = f32::from_be_bytes(self.array()?);
                self.float(x as f64)
            }
            b'D' => {
                let x = f64::from_be_bytes(self.array()?);
                self.float(x)
            }
            b'H' => {
                let at = self.pos;
                let s = self.string()?;
                let v: Value = serde_json::from_str(&s).map_err(|_| UbjsonError {
                    offset: at,
                    detail: format!("high-precision number {s:?} is not a number"),
                })?;
                if !v.is_number() {
                    return Err(UbjsonError {
                        offset: at,
                        detail: format!("high-precision number {s:?} is not a number"),
                    });
                }
                v
            }
            b'C' => Value::String(char::from(self.byte()?).to_string()),
            b'S' => Value::String(self.string()?),
            b'[' => self.container(false, depth + 1)?,
            b'{' => self.container(true, depth + 1)?,
            m => {
                return Err(UbjsonError {
                    offset: self.pos.saturating_sub(1),
                    detail: format!("unknown type marker 0x{m:02x}"),
                })
            }
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, UbjsonError> {
        loop {
            let m = self.byte()?;
            if m != b'N' {
                return self.payload(m, depth);
            }
        }
    }

    fn container(&mut self, object: bool, depth: usize) -> Result<Value, UbjsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")));
        }
        let mut elem_type = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            elem_type = Some(self.byte()?);
            if self.peek() != Some(b'#') {
                return Err(self.err("a typed container ('$') must give a count ('#')".into()));
            }
        }
        let count = if self.peek() == Some(b'#') {
            self.pos += 1;
            // Smallest encoding of one element: payload size for typed containers; for
            // objects at least a 2-byte key; otherwise a 1-byte marker.
            let min = match elem_type {
                Some(b'i' | b'U' | b'C') => 1,
                Some(b'I') => 2,
                Some(b'l' | b'd') => 4,
                Some(b'L' | b'D') => 8,
                _ => 1,
            } + usize::from(object) * 2;
            Some(self.count(min, "container count")?)
        } else {
            None
        };
        let mut items = Vec::new();
        let mut map = Map::new();
        let mut i = 0usize;
        loop {
            match count {
                Some(n) if i == n => break,
                None => {
                    if self.peek() == Some(if object { b'}' } else { b']' }) {
                        self.pos += 1;
                        break;
                    }
                    // Skip no-ops between elements.
                    if !object && self.peek() == Some(b'N') {
                        self.pos += 1;
                        continue;
                    }
                }
                _ => {}
            }
            let key = if object { Some(self.string()?) } else { None };
            let v = match elem_type {
                Some(t) => self.payload(t, depth)?,
                None => self.value(depth)?,
            };
            match key {
                Some(k) => {
                    map.insert(k, v);
                }
                None => items.push(v),
            }
            i += 1;
        }
        Ok(if object {
            Value::Object(map)
        } else {
            Value::Array(items)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars_and_containers() {
        // {"a": [1, 2.5f32], "b": "xy", "c": T}
        let mut b = vec![b'{', b'i', 1, b'a', b'[', b'i', 1, b'd'];
        b.extend_from_slice(&2.5f32.to_be_bytes());
        b.extend_from_slice(&[b']', b'i', 1, b'b', b'S', b'i', 2, b'x', b'y']);
        b.extend_from_slice(&[b'i', 1, b'c', b'T', b'}']);
        let v = decode(&b).unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2.5], "b": "xy", "c": true}));
    }

    #[test]
    fn decodes_typed_arrays() {
        let mut b = vec![b'[', b'$', b'l', b'#', b'i', 3];
        for x in [-1i32, 7, 1 << 20] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(decode(&b).unwrap(), serde_json::json!([-1, 7, 1 << 20]));
    }

    #[test]
    fn rejects_counts_beyond_the_input() {
        let b = [b'[', b'$', b'd', b'#', b'L', 0x7f, 0, 0, 0, 0, 0, 0, 0];
        let e = decode(&b).unwrap_err();
        assert!(e.detail.contains("exceeds the 0 bytes left"), "{e}");
        // A typed array of nulls still costs a byte per element in the bound.
        let b = [b'[', b'$', b'Z', b'#', b'l', 0x7f, 0xff, 0xff, 0xff];
        assert!(decode(&b).is_err());
        let b = [b'S', b'L', 0xff, 0, 0, 0, 0, 0, 0, 0];
        assert!(decode(&b)
            .unwrap_err()
            .detail
            .contains("negative string length"));
    }

    #[test]
    fn rejects_deep_nesting_truncation_and_trailing_bytes() {
        let b = vec![b'['; 10_000];
        assert!(decode(&b).unwrap_err().detail.contains("nested deeper"));
        let e = decode(&[b'{', b'i', 5, b'a']).unwrap_err();
        assert!(
            e.detail
                .contains("string length 5 exceeds the 1 bytes left"),
            "{e}"
        );
        let e = decode(b"TT").unwrap_err();
        assert!(e.detail.contains("trailing"), "{e}");
        let e = decode(b"Q").unwrap_err();
        assert!(e.detail.contains("unknown type marker 0x51"), "{e}");
    }

    #[test]
    fn every_prefix_of_a_value_is_an_error_not_a_panic() {
        let mut b = vec![b'{', b'i', 1, b'k', b'[', b'$', b'D', b'#', b'U', 2];
        b.extend_from_slice(&1.5f64.to_be_bytes());
        b.extend_from_slice(&(-3.0f64).to_be_bytes());
        b.push(b'}');
        assert!(decode(&b).is_ok());
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "prefix {n}");
        }
    }
}
