//! Typed tensor elements, 64-byte aligned buffers and borrowed tensor views.

use crate::ir::{DType, TensorDesc};

// Tensors are stored little-endian and viewed in place; a big-endian host would need a
// byte-swapping reader, which this crate does not have.
#[cfg(target_endian = "big")]
compile_error!("mle-format reads tensors in place and supports little-endian targets only");

/// A plain element type that can be stored in a tensor.
///
/// # Safety
/// Implementors must be plain-old-data: every bit pattern is a valid value, no padding, and
/// `size_of::<Self>() == DTYPE.size()`.
pub unsafe trait Element: Copy + Send + Sync + 'static {
    /// The stored dtype.
    const DTYPE: DType;
}

// SAFETY: all are primitive POD types whose size matches the dtype.
unsafe impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
unsafe impl Element for f64 {
    const DTYPE: DType = DType::F64;
}
unsafe impl Element for half::f16 {
    const DTYPE: DType = DType::F16;
}
unsafe impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
unsafe impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
unsafe impl Element for i64 {
    const DTYPE: DType = DType::I64;
}
unsafe impl Element for u8 {
    const DTYPE: DType = DType::U8;
}
unsafe impl Element for u32 {
    const DTYPE: DType = DType::U32;
}

/// Views a slice of elements as bytes (little-endian hosts only; see `FORMAT.md`).
pub fn as_bytes<T: Element>(data: &[T]) -> &[u8] {
    // SAFETY: T is POD (Element contract); the byte length is exact.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

/// Reinterprets bytes as elements when the pointer is aligned for `T` and the length is a
/// multiple of its size.
pub fn cast_slice<T: Element>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if bytes.len() % size != 0 || (bytes.as_ptr() as usize) % std::mem::align_of::<T>() != 0 {
        return None;
    }
    // SAFETY: alignment and length checked above; T is POD.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A heap buffer whose start is 64-byte aligned (decompressed weights, in-memory files).
#[derive(Clone)]
pub struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        AlignedBuf {
            blocks: vec![Block([0; 64]); len.div_ceil(64)],
            len,
        }
    }

    /// A copy of `bytes` in aligned memory.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.as_mut_slice().copy_from_slice(bytes);
        b
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: blocks hold at least len initialized bytes, contiguous.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, with unique access.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

/// A borrowed tensor: its descriptor and its stored bytes (64-byte aligned).
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The descriptor from the graph.
    pub desc: &'a TensorDesc,
    /// The stored bytes, exactly `desc.length` long.
    pub bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Number of elements (product of the shape).
    pub fn len(&self) -> usize {
        self.bytes.len() / self.desc.dtype.size()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The elements as `T`, when `T` is the stored dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&'a [T]> {
        if T::DTYPE != self.desc.dtype {
            return None;
        }
        cast_slice(self.bytes)
    }
}
