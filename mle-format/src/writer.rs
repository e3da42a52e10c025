//! Building and writing `.mle` files.

use std::io::Write;
use std::path::Path;

use crate::error::{FormatError, Result};
use crate::header::{
    Header, ALIGNMENT, HEADER_SIZE, REQUIRED_COMPRESSED, REQUIRED_QUANTIZED, VERSION_MAJOR,
};
use crate::ir::{DType, Graph, Node, Quantization, TensorDesc, ValueInfo};
use crate::metadata::Metadata;
use crate::reader::{DECOMPRESS_SLACK, MAX_COMPRESSION_RATIO};
use crate::tensor::{as_bytes, Element};

/// Quantization applied to float weight tensors added with [`ModelBuilder::add_weight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// Store as IEEE binary16.
    Fp16,
    /// Store as symmetric int8 with one f32 scale per output channel (axis 0).
    Int8,
}

/// The zstd level every front end uses when the user asks for compression without a level
/// (`mle convert --compress`, `export_model(compression=True)`). Float weights gain little from
/// higher levels, which cost seconds per 100 MB at export; decompression speed is the same.
pub const DEFAULT_ZSTD_LEVEL: i32 = 9;

/// Options for writing a file.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// zstd level for the weights section; `None` stores them uncompressed.
    pub compression: Option<i32>,
    /// Quantization of float weights added with [`ModelBuilder::add_weight`].
    pub quantization: Option<QuantMode>,
    /// Sign the file with this key.
    pub signing_key: Option<ed25519_dalek::SigningKey>,
}

struct PendingTensor {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    bytes: Vec<u8>,
    /// f32 weights that may be quantized.
    weight: Option<Vec<f32>>,
}

/// Builds a model: metadata, graph nodes, and tensors.
pub struct ModelBuilder {
    metadata: Metadata,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    nodes: Vec<Node>,
    tensors: Vec<PendingTensor>,
}

fn element_count(shape: &[u64]) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| FormatError::Build(format!("shape {shape:?} overflows")))
}

impl ModelBuilder {
    /// A builder with the given metadata and no graph.
    pub fn new(metadata: Metadata) -> Self {
        ModelBuilder {
            metadata,
            inputs: Vec::new(),
            outputs: Vec::new(),
            nodes: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// The metadata, for adjustment before writing.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    fn check_new(&self, name: &str, shape: &[u64], len: usize) -> Result<()> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(FormatError::Build(format!("tensor {name:?} added twice")));
        }
        let n = element_count(shape)?;
        if n != len as u64 {
            return Err(FormatError::Build(format!(
                "tensor {name:?}: shape {shape:?} holds {n} elements but {len} were given"
            )));
        }
        Ok(())
    }

    /// Adds a tensor stored exactly as given (tree arrays, indices, thresholds).
    pub fn add_tensor<T: Element>(&mut self, name: &str, shape: &[u64], data: &[T]) -> Result<()> {
        self.check_new(name, shape, data.len())?;
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dtype: T::DTYPE,
            shape: shape.to_vec(),
            bytes: as_bytes(data).to_vec(),
            weight: None,
        });
        Ok(())
    }

    /// Adds a float weight tensor; [`WriteOptions::quantization`] may store it as f16 or int8.
    pub fn add_weight(&mut self, name: &str, shape: &[u64], data: &[f32]) -> Result<()> {
        self.check_new(name, shape, data.len())?;
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            bytes: as_bytes(data).to_vec(),
            weight: Some(data.to_vec()),
        });
        Ok(())
    }

    /// Appends a node (nodes run in the order added).
    pub fn push_node(&mut self, node: Node) {
        self.nodes.push(node);
    }

    /// Sets the graph inputs.
    pub fn set_inputs(&mut self, inputs: Vec<ValueInfo>) {
        self.inputs = inputs;
    }

    /// Sets the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<ValueInfo>) {
        self.outputs = outputs;
    }

    /// Serializes the model to bytes.
    pub fn to_bytes(&self, opts: &WriteOptions) -> Result<Vec<u8>> {
        let mut descs = Vec::with_capacity(self.tensors.len());
        let mut blob: Vec<u8> = Vec::new();
        let mut quantized = false;
        let push = |blob: &mut Vec<u8>, name: &str, dtype, shape: &[u64], bytes: &[u8], q| {
            let pad = (ALIGNMENT as usize - blob.len() % ALIGNMENT as usize) % ALIGNMENT as usize;
            blob.resize(blob.len() + pad, 0);
            let desc = TensorDesc {
                name: name.to_string(),
                dtype,
                shape: shape.to_vec(),
                offset: blob.len() as u64,
                length: bytes.len() as u64,
                quantization: q,
            };
            blob.extend_from_slice(bytes);
            desc
        };
        for t in &self.tensors {
            match (&t.weight, opts.quantization) {
                (Some(w), Some(QuantMode::Fp16)) => {
                    quantized = true;
                    if let Some((i, x)) = w
                        .iter()
                        .enumerate()
                        .find(|(_, x)| x.is_finite() && x.abs() > f32::from(half::f16::MAX))
                    {
                        return Err(FormatError::Build(format!(
                            "fp16 quantization of tensor {:?}: element {i} = {x} is outside the f16 range (±65504)",
                            t.name
                        )));
                    }
                    let h: Vec<half::f16> = w.iter().map(|&x| half::f16::from_f32(x)).collect();
                    descs.push(push(
                        &mut blob,
                        &t.name,
                        DType::F16,
                        &t.shape,
                        as_bytes(&h),
                        Some(Quantization::Fp16),
                    ));
                }
                (Some(w), Some(QuantMode::Int8)) => {
                    quantized = true;
                    let (q, scales) = crate::quant::quantize_int8(w, &t.shape);
                    let scale_name = format!("{}.__scales", t.name);
                    let channels = scales.len() as u64;
                    descs.push(push(
                        &mut blob,
                        &t.name,
                        DType::I8,
                        &t.shape,
                        as_bytes(&q),
                        Some(Quantization::Int8 {
                            axis: 0,
                            scales: scale_name.clone(),
                        }),
                    ));
                    descs.push(push(
                        &mut blob,
                        &scale_name,
                        DType::F32,
                        &[channels],
                        as_bytes(&scales),
                        None,
                    ));
                }
                _ => descs.push(push(&mut blob, &t.name, t.dtype, &t.shape, &t.bytes, None)),
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(descs.len());
        if let Some(dup) = descs.iter().find(|d| !seen.insert(d.name.as_str())) {
            return Err(FormatError::Build(format!(
                "tensor name {:?} is used twice (int8 scales are named `<weight>.__scales`)",
                dup.name
            )));
        }
        crate::schema::check_for_write(&self.metadata, &descs, &blob)?;
        let graph = Graph {
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            nodes: self.nodes.clone(),
            tensors: descs,
        };
        let metadata_json = serde_json::to_vec(&self.metadata)
            .map_err(|e| FormatError::Build(format!("metadata does not serialize: {e}")))?;
        let mut graph_json = serde_json::to_vec(&graph)
            .map_err(|e| FormatError::Build(format!("graph does not serialize: {e}")))?;
        // Pad the graph JSON with spaces so the weights start 64-byte aligned (no holes).
        let weights_off = HEADER_SIZE + metadata_json.len() + graph_json.len();
        let pad = (ALIGNMENT as usize - weights_off % ALIGNMENT as usize) % ALIGNMENT as usize;
        graph_json.resize(graph_json.len() + pad, b' ');
        let raw_size = blob.len() as u64;
        let stored = match opts.compression {
            Some(level) => {
                let mut z = zstd::bulk::compress(&blob, level)
                    .map_err(|e| FormatError::Build(format!("zstd compression failed: {e}")))?;
                pad_to_ratio_cap(&mut z, raw_size);
                z
            }
            None => blob,
        };
        let mut h = Header {
            major: VERSION_MAJOR,
            minor: crate::schema::format_minor(&self.metadata),
            required_flags: 0,
            optional_flags: 0,
            file_size: 0,
            sections: [(0, 0); 4],
            crcs: [0; 4],
            weights_raw_size: raw_size,
        };
        if opts.compression.is_some() {
            h.required_flags |= REQUIRED_COMPRESSED;
        }
        if quantized {
            h.required_flags |= REQUIRED_QUANTIZED;
        }
        let mut off = HEADER_SIZE as u64;
        for (i, part) in [&metadata_json, &graph_json, &stored].iter().enumerate() {
            h.sections[i] = (off, part.len() as u64);
            h.crcs[i] = crc32fast::hash(part);
            off += part.len() as u64;
        }
        h.sections[3] = (off, 0);
        h.crcs[3] = crc32fast::hash(&[]);
        h.file_size = off;
        let mut out = Vec::with_capacity(off as usize);
        out.extend_from_slice(&h.to_bytes());
        out.extend_from_slice(&metadata_json);
        out.extend_from_slice(&graph_json);
        out.extend_from_slice(&stored);
        match &opts.signing_key {
            Some(key) => crate::sign::sign_bytes(&out, key, "<memory>"),
            None => Ok(out),
        }
    }

    /// Writes the model to `path` atomically: a temporary file in the same directory is
    /// written, synced, and renamed over the target, so a crash never leaves a half-written
    /// model at `path`.
    pub fn write(&self, path: impl AsRef<Path>, opts: &WriteOptions) -> Result<u64> {
        let bytes = self.to_bytes(opts)?;
        write_atomic(path.as_ref(), &bytes)?;
        Ok(bytes.len() as u64)
    }
}

/// Readers refuse a weights section that expands more than
/// [`MAX_COMPRESSION_RATIO`]× (+ [`DECOMPRESS_SLACK`]); data that compresses better (long runs
/// of zeros) is padded with zstd skippable frames, which every zstd decoder skips, so that the
/// file stays readable.
fn pad_to_ratio_cap(z: &mut Vec<u8>, raw_size: u64) {
    const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
    const FRAME_HEADER: u64 = 8;
    let needed = raw_size
        .saturating_sub(DECOMPRESS_SLACK)
        .div_ceil(MAX_COMPRESSION_RATIO);
    while (z.len() as u64) < needed {
        let deficit = needed - z.len() as u64;
        let content = deficit
            .saturating_sub(FRAME_HEADER)
            .min(u64::from(u32::MAX));
        z.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        z.extend_from_slice(&(content as u32).to_le_bytes());
        z.resize(z.len() + content as usize, 0);
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.mle".into());
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let tmp = dir.join(format!(
        ".{file_name}.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    // Make the rename itself durable (best effort: not every platform can sync a directory).
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
