//! Reading `.mle` files: mmap, validation cheapest-first, zero-copy tensor views.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::error::{FormatError, Result, Section};
use crate::header::{Header, ALIGNMENT, REQUIRED_QUANTIZED};
use crate::ir::{Attr, DType, Graph, Quantization};
use crate::metadata::Metadata;
use crate::tensor::{cast_slice, AlignedBuf, Element, TensorView};

/// Largest metadata or graph JSON section accepted (64 MiB).
pub const MAX_JSON_SECTION: u64 = 64 << 20;
/// Largest number of tensors in a graph.
pub const MAX_TENSORS: usize = 1 << 20;
/// Largest number of nodes in a graph.
pub const MAX_NODES: usize = 1 << 20;
/// Largest tensor rank.
pub const MAX_RANK: usize = 8;
/// A compressed weights section may expand to at most this many times its stored size
/// (plus [`DECOMPRESS_SLACK`] bytes).
pub const MAX_COMPRESSION_RATIO: u64 = 256;
/// Extra bytes allowed on top of the compression ratio bound.
pub const DECOMPRESS_SLACK: u64 = 1 << 20;

/// Options for opening a file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// When set, the file must carry a valid signature by this key.
    pub public_key: Option<VerifyingKey>,
}

enum Storage {
    Mmap(memmap2::Mmap),
    Owned(AlignedBuf),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(b) => b.as_slice(),
        }
    }
}

/// A loaded, validated `.mle` file.
///
/// Uncompressed weights are borrowed in place from the memory map (or the in-memory buffer);
/// compressed weights are decompressed once, at open, into 64-byte aligned memory.
pub struct MleFile {
    name: String,
    storage: Storage,
    decompressed: Option<AlignedBuf>,
    header: Header,
    metadata: Metadata,
    graph: Graph,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for MleFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MleFile")
            .field("name", &self.name)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

fn corrupted(file: &str, section: Section, detail: String) -> FormatError {
    FormatError::Corrupted {
        file: file.to_string(),
        section,
        detail,
    }
}

/// Checks the CRC32 of every section against the header.
pub(crate) fn verify_section_crcs(h: &Header, bytes: &[u8], file: &str) -> Result<()> {
    for (i, &(off, size)) in h.sections.iter().enumerate() {
        let section = crate::header::SECTIONS[i];
        let data = off
            .checked_add(size)
            .and_then(|end| bytes.get(off as usize..end as usize))
            .ok_or_else(|| {
                corrupted(
                    file,
                    section,
                    format!("range {off}+{size} outside the file"),
                )
            })?;
        let computed = crc32fast::hash(data);
        if computed != h.crcs[i] {
            return Err(FormatError::ChecksumMismatch {
                file: file.to_string(),
                section,
                stored: h.crcs[i],
                computed,
            });
        }
    }
    Ok(())
}

impl MleFile {
    /// Opens and validates a file by memory-mapping it. With a public key in `opts`, the file
    /// is read into memory instead, so the bytes verified are the bytes used.
    pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<MleFile> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file(file, path, opts)
    }

    /// Validates a file the caller has already opened (as [`MleFile::open`] does after
    /// opening `path`); `path` names it in errors. This lets a caller check what the handle
    /// is (a regular file, not a FIFO or a device) before anything is read from it.
    pub fn from_file(file: std::fs::File, path: &Path, opts: &ReadOptions) -> Result<MleFile> {
        let io = |source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        let name = path.display().to_string();
        let storage = if len == 0 {
            Storage::Owned(AlignedBuf::zeroed(0))
        } else if opts.public_key.is_some() {
            // A verified load reads a private copy: the signature must cover exactly the bytes
            // that are then parsed and compiled, and a shared mapping would let a writer
            // rewriting the file in place change them after verification.
            let mut buf = AlignedBuf::zeroed(usize::try_from(len).unwrap_or(usize::MAX));
            std::io::Read::read_exact(&mut &file, buf.as_mut_slice()).map_err(io)?;
            Storage::Owned(buf)
        } else {
            // SAFETY: the map is read-only. Another process truncating or rewriting the file in
            // place while it is mapped is outside our contract: writers replace models by
            // rename (see `write_atomic`), which leaves this mapping on the old inode.
            Storage::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::from_storage(name, storage, opts)
    }

    /// Validates a file held in memory (copied into aligned memory). `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str, opts: &ReadOptions) -> Result<MleFile> {
        Self::from_storage(
            name.to_string(),
            Storage::Owned(AlignedBuf::from_slice(bytes)),
            opts,
        )
    }

    fn from_storage(name: String, storage: Storage, opts: &ReadOptions) -> Result<MleFile> {
        let bytes = storage.bytes();
        let file = name.as_str();
        let header = Header::parse(bytes, file)?;
        for (i, section) in [Section::Metadata, Section::Graph].into_iter().enumerate() {
            if header.sections[i].1 > MAX_JSON_SECTION {
                return Err(corrupted(
                    file,
                    section,
                    format!(
                        "{} bytes exceeds the limit of {MAX_JSON_SECTION}",
                        header.sections[i].1
                    ),
                ));
            }
        }
        verify_section_crcs(&header, bytes, file)?;
        if let Some(key) = &opts.public_key {
            crate::sign::verify_parsed(&header, bytes, key, file)?;
        }
        let slice = |i: usize| {
            let (off, size) = header.sections[i];
            // In range: checked by Header::parse (sections tile the file).
            bytes
                .get(off as usize..(off + size) as usize)
                .unwrap_or(&[])
        };
        let metadata: Metadata = serde_json::from_slice(slice(0))
            .map_err(|e| corrupted(file, Section::Metadata, format!("invalid JSON: {e}")))?;
        let graph: Graph = serde_json::from_slice(slice(1))
            .map_err(|e| corrupted(file, Section::Graph, format!("invalid JSON: {e}")))?;
        let decompressed = if header.compressed() {
            let stored = slice(2);
            let raw = header.weights_raw_size;
            let cap = (stored.len() as u64)
                .saturating_mul(MAX_COMPRESSION_RATIO)
                .saturating_add(DECOMPRESS_SLACK);
            if raw > cap {
                return Err(corrupted(
                    file,
                    Section::Weights,
                    format!("decompressed size {raw} exceeds {MAX_COMPRESSION_RATIO}x the stored size {} (limit {cap})", stored.len()),
                ));
            }
            let mut buf = AlignedBuf::zeroed(raw as usize);
            let n = zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(stored, buf.as_mut_slice()))
                .map_err(|e| corrupted(file, Section::Weights, format!("zstd: {e}")))?;
            if n as u64 != raw {
                return Err(corrupted(
                    file,
                    Section::Weights,
                    format!("decompressed to {n} bytes, header says {raw}"),
                ));
            }
            Some(buf)
        } else {
            None
        };
        let index = validate_graph(&graph, &header, file)?;
        let loaded = MleFile {
            name,
            storage,
            decompressed,
            header,
            metadata,
            graph,
            index,
        };
        loaded.validate_input_features()?;
        Ok(loaded)
    }

    /// The name used in errors (the path, or the name given to [`MleFile::from_bytes`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The metadata section.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The graph section.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The whole file's bytes as stored.
    pub fn file_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The (decompressed) weights blob; starts 64-byte aligned.
    pub fn weights(&self) -> &[u8] {
        match &self.decompressed {
            Some(b) => b.as_slice(),
            None => {
                let (off, size) = self.header.sections[2];
                self.storage
                    .bytes()
                    .get(off as usize..(off + size) as usize)
                    .unwrap_or(&[])
            }
        }
    }

    /// True when tensors are borrowed from the file mapping (not decompressed copies).
    pub fn is_zero_copy(&self) -> bool {
        self.decompressed.is_none() && matches!(self.storage, Storage::Mmap(_))
    }

    /// Verifies the file's signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<()> {
        crate::sign::verify_parsed(&self.header, self.storage.bytes(), key, &self.name)
    }

    fn tensor_error(&self, name: &str, detail: String) -> FormatError {
        FormatError::Tensor {
            file: self.name.clone(),
            name: name.to_string(),
            detail,
        }
    }

    /// A tensor's descriptor and stored bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let &i = self
            .index
            .get(name)
            .ok_or_else(|| self.tensor_error(name, "no such tensor".into()))?;
        let desc = self
            .graph
            .tensors
            .get(i)
            .ok_or_else(|| self.tensor_error(name, "index out of range".into()))?;
        let bytes = self
            .weights()
            .get(desc.offset as usize..(desc.offset + desc.length) as usize)
            .ok_or_else(|| self.tensor_error(name, "outside the weights section".into()))?;
        Ok(TensorView { desc, bytes })
    }

    /// A tensor's elements as `T`, borrowed; its stored dtype must be `T`.
    pub fn tensor_as<T: Element>(&self, name: &str) -> Result<&[T]> {
        let v = self.tensor(name)?;
        if v.desc.quantization.is_some() {
            return Err(self.tensor_error(name, "is quantized; read it with tensor_f32".into()));
        }
        if v.desc.dtype != T::DTYPE {
            return Err(self.tensor_error(
                name,
                format!("has dtype {}, expected {}", v.desc.dtype, T::DTYPE.name()),
            ));
        }
        cast_slice(v.bytes).ok_or_else(|| self.tensor_error(name, "misaligned".into()))
    }

    /// A float tensor as f32: borrowed when stored as f32, dequantized from f16/int8 otherwise.
    pub fn tensor_f32(&self, name: &str) -> Result<Cow<'_, [f32]>> {
        let v = self.tensor(name)?;
        match (&v.desc.quantization, v.desc.dtype) {
            (None, DType::F32) => Ok(Cow::Borrowed(self.tensor_as::<f32>(name)?)),
            (None, DType::F64) => Ok(Cow::Owned(
                self.tensor_as::<f64>(name)?
                    .iter()
                    .map(|&x| x as f32)
                    .collect(),
            )),
            (None | Some(Quantization::Fp16), DType::F16) => {
                let h: &[half::f16] = cast_slice(v.bytes)
                    .ok_or_else(|| self.tensor_error(name, "misaligned".into()))?;
                Ok(Cow::Owned(h.iter().map(|x| x.to_f32()).collect()))
            }
            (Some(Quantization::Int8 { scales, .. }), DType::I8) => {
                let q: &[i8] = cast_slice(v.bytes)
                    .ok_or_else(|| self.tensor_error(name, "misaligned".into()))?;
                let s = self.tensor_as::<f32>(scales)?;
                Ok(Cow::Owned(crate::quant::dequantize_int8(q, s)))
            }
            (_, dt) => Err(self.tensor_error(name, format!("dtype {dt} is not a float tensor"))),
        }
    }
}

/// Checks every tensor descriptor against the weights blob and builds the name index.
fn validate_graph(graph: &Graph, header: &Header, file: &str) -> Result<HashMap<String, usize>> {
    let weights_len = header.weights_raw_size;
    let quantized_flag = header.required_flags & REQUIRED_QUANTIZED != 0;
    let bad = |detail: String| corrupted(file, Section::Graph, detail);
    if graph.tensors.len() > MAX_TENSORS {
        return Err(bad(format!(
            "{} tensors exceeds the limit of {MAX_TENSORS}",
            graph.tensors.len()
        )));
    }
    if graph.nodes.len() > MAX_NODES {
        return Err(bad(format!(
            "{} nodes exceeds the limit of {MAX_NODES}",
            graph.nodes.len()
        )));
    }
    let mut index = HashMap::with_capacity(graph.tensors.len());
    for (i, t) in graph.tensors.iter().enumerate() {
        if t.shape.len() > MAX_RANK {
            return Err(bad(format!(
                "tensor {:?}: rank {} exceeds {MAX_RANK}",
                t.name,
                t.shape.len()
            )));
        }
        let count = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                bad(format!(
                    "tensor {:?}: shape {:?} overflows",
                    t.name, t.shape
                ))
            })?;
        let expected = count
            .checked_mul(t.dtype.size() as u64)
            .ok_or_else(|| bad(format!("tensor {:?}: byte length overflows", t.name)))?;
        if t.length != expected {
            return Err(bad(format!(
                "tensor {:?}: length {} bytes, but shape {:?} of {} needs {expected}",
                t.name, t.length, t.shape, t.dtype
            )));
        }
        if t.offset % ALIGNMENT != 0 {
            return Err(bad(format!(
                "tensor {:?}: offset {} is not a multiple of {ALIGNMENT}",
                t.name, t.offset
            )));
        }
        match t.offset.checked_add(t.length) {
            Some(end) if end <= weights_len => {}
            _ => {
                return Err(bad(format!(
                    "tensor {:?}: bytes {}+{} exceed the weights section ({weights_len} bytes)",
                    t.name, t.offset, t.length
                )))
            }
        }
        if index.insert(t.name.clone(), i).is_some() {
            return Err(bad(format!("tensor {:?} is described twice", t.name)));
        }
    }
    for t in &graph.tensors {
        if t.quantization.is_some() && !quantized_flag {
            return Err(bad(format!(
                "tensor {:?} is quantized but the header's required flag `quantized` is not set",
                t.name
            )));
        }
        match (&t.quantization, t.dtype) {
            (None, _) | (Some(Quantization::Fp16), DType::F16) => {}
            (Some(Quantization::Int8 { axis, scales }), DType::I8) => {
                let s = index
                    .get(scales)
                    .and_then(|&i| graph.tensors.get(i))
                    .ok_or_else(|| {
                        bad(format!(
                            "tensor {:?}: scales tensor {scales:?} is missing",
                            t.name
                        ))
                    })?;
                let channels = t.shape.first().copied().unwrap_or(1).max(1);
                if *axis != 0 || s.dtype != DType::F32 || s.shape != [channels] {
                    return Err(bad(format!(
                        "tensor {:?}: int8 scales {scales:?} must be f32 of shape [{channels}] on axis 0",
                        t.name
                    )));
                }
                let count: u64 = t.shape.iter().product();
                if count % channels != 0 {
                    return Err(bad(format!(
                        "tensor {:?}: {count} elements do not split into {channels} channels",
                        t.name
                    )));
                }
            }
            (Some(q), dt) => {
                return Err(bad(format!(
                    "tensor {:?}: quantization {q:?} does not fit dtype {dt}",
                    t.name
                )))
            }
        }
    }
    for node in &graph.nodes {
        for (key, attr) in &node.attrs {
            if let Attr::Tensor(name) = attr {
                if !index.contains_key(name) {
                    return Err(bad(format!(
                        "node {:?} ({}): attribute {key:?} names tensor {name:?}, which is not in the weights section",
                        node.name, node.op
                    )));
                }
            }
        }
    }
    Ok(index)
}
