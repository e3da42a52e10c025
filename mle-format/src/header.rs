//! The fixed 128-byte header (see `FORMAT.md`).

use crate::error::{FormatError, Result, Section};

/// `MLE\0`, little-endian `0x00454C4D`.
pub const MAGIC: [u8; 4] = *b"MLE\0";
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 128;
/// Major format version written and read by this crate.
pub const VERSION_MAJOR: u16 = 1;
/// Newest minor format version known to this crate (1.1: typed input features; the writer
/// still writes 1.0 for files without them).
pub const VERSION_MINOR: u16 = 1;
/// Alignment of the weights section and of every tensor inside it.
pub const ALIGNMENT: u64 = 64;

/// Required flag: the weights section is zstd-compressed.
pub const REQUIRED_COMPRESSED: u32 = 1 << 0;
/// Required flag: some tensors are quantized (f16 or int8 with scales).
pub const REQUIRED_QUANTIZED: u32 = 1 << 1;
/// Every required flag this reader understands.
pub const KNOWN_REQUIRED: u32 = REQUIRED_COMPRESSED | REQUIRED_QUANTIZED;
/// Optional flag: a signature section is present.
pub const OPTIONAL_SIGNED: u32 = 1 << 0;

/// Byte offset of the optional flags.
pub const OPTIONAL_FLAGS_OFFSET: usize = 12;
/// Byte offset of the total file size.
pub const FILE_SIZE_OFFSET: usize = 16;
/// Byte offset of the signature section's size in the section table.
pub const SIGNATURE_SIZE_OFFSET: usize = 80;
/// Byte offset of the signature CRC inside the header (zeroed in the signed message).
pub const SIGNATURE_CRC_OFFSET: usize = 100;
/// Byte offset of the reserved bytes (112..124): zero in version 1.0.
pub const RESERVED_OFFSET: usize = 112;
/// Byte offset of the header CRC.
pub const HEADER_CRC_OFFSET: usize = 124;

/// Index of each section in the section table.
pub(crate) const SECTIONS: [Section; 4] = [
    Section::Metadata,
    Section::Graph,
    Section::Weights,
    Section::Signature,
];

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Required feature flags.
    pub required_flags: u32,
    /// Optional feature flags.
    pub optional_flags: u32,
    /// Total file size in bytes.
    pub file_size: u64,
    /// `(offset, size)` of metadata, graph, weights, signature.
    pub sections: [(u64, u64); 4],
    /// CRC32 of metadata, graph, weights (as stored), signature.
    pub crcs: [u32; 4],
    /// Size of the weights blob after decompression (equals the stored size when not compressed).
    pub weights_raw_size: u64,
}

impl Header {
    /// Serializes to 128 bytes, computing the header CRC.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.major.to_le_bytes());
        b[6..8].copy_from_slice(&self.minor.to_le_bytes());
        b[8..12].copy_from_slice(&self.required_flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.optional_flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.file_size.to_le_bytes());
        for (i, (off, size)) in self.sections.iter().enumerate() {
            let at = 24 + i * 16;
            b[at..at + 8].copy_from_slice(&off.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
        }
        for (i, crc) in self.crcs.iter().enumerate() {
            let at = 88 + i * 4;
            b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        b[104..112].copy_from_slice(&self.weights_raw_size.to_le_bytes());
        let crc = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        b[HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the header of `bytes` (the whole file): size, magic, header CRC,
    /// version, required flags, and that the sections tile the file exactly.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Header> {
        let actual = bytes.len() as u64;
        let Some(b) = bytes.get(..HEADER_SIZE) else {
            if bytes.len() >= 4 && bytes[..4] != MAGIC {
                return Err(bad_magic(bytes, file));
            }
            return Err(FormatError::Truncated {
                file: file.to_string(),
                section: Section::Header,
                needed: HEADER_SIZE as u64,
                actual,
            });
        };
        if b[..4] != MAGIC {
            return Err(bad_magic(b, file));
        }
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        // The version comes before the header CRC: a future major version may lay out the
        // rest of the header differently, and must be reported as a version mismatch.
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != VERSION_MAJOR {
            return Err(FormatError::VersionMismatch {
                file: file.to_string(),
                file_major: major,
                file_minor: minor,
                supported_major: VERSION_MAJOR,
                supported_minor: VERSION_MINOR,
            });
        }
        let stored = u32_at(HEADER_CRC_OFFSET);
        let computed = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch {
                file: file.to_string(),
                section: Section::Header,
                stored,
                computed,
            });
        }
        let h = Header {
            major: u16_at(4),
            minor: u16_at(6),
            required_flags: u32_at(8),
            optional_flags: u32_at(12),
            file_size: u64_at(16),
            sections: [
                (u64_at(24), u64_at(32)),
                (u64_at(40), u64_at(48)),
                (u64_at(56), u64_at(64)),
                (u64_at(72), u64_at(80)),
            ],
            crcs: [u32_at(88), u32_at(92), u32_at(96), u32_at(100)],
            weights_raw_size: u64_at(104),
        };
        let unknown = h.required_flags & !KNOWN_REQUIRED;
        if unknown != 0 {
            return Err(FormatError::UnsupportedFeature {
                file: file.to_string(),
                flags: unknown,
                known: KNOWN_REQUIRED,
            });
        }
        // Reserved bytes are zero in the versions this reader knows; a newer minor version may
        // use them for fields an older reader can safely ignore.
        if h.minor.cmp(&VERSION_MINOR) != std::cmp::Ordering::Greater
            && b[RESERVED_OFFSET..HEADER_CRC_OFFSET]
                .iter()
                .any(|&x| x != 0)
        {
            return Err(corrupted(file, "reserved bytes 112..124 are not zero"));
        }
        if h.file_size != actual {
            return Err(if h.file_size > actual {
                // Name the first section the missing bytes cut into.
                let section = h
                    .sections
                    .iter()
                    .position(|&(off, size)| off.saturating_add(size) > actual)
                    .and_then(|i| SECTIONS.get(i).copied())
                    .unwrap_or(Section::Header);
                FormatError::Truncated {
                    file: file.to_string(),
                    section,
                    needed: h.file_size,
                    actual,
                }
            } else {
                corrupted(
                    file,
                    &format!(
                        "header says the file has {} bytes but it has {actual}",
                        h.file_size
                    ),
                )
            });
        }
        // Sections tile the file: metadata starts right after the header and each section
        // starts where the previous one ended; the last one ends at the end of the file.
        let mut cursor = HEADER_SIZE as u64;
        for (i, &(off, size)) in h.sections.iter().enumerate() {
            let section = SECTIONS[i];
            if off != cursor {
                return Err(FormatError::Corrupted {
                    file: file.to_string(),
                    section,
                    detail: format!(
                        "starts at byte {off}, expected {cursor} (sections must tile the file)"
                    ),
                });
            }
            cursor = off
                .checked_add(size)
                .filter(|&end| end <= actual)
                .ok_or_else(|| FormatError::Truncated {
                    file: file.to_string(),
                    section,
                    needed: off.saturating_add(size),
                    actual,
                })?;
        }
        if cursor != actual {
            return Err(corrupted(
                file,
                &format!("sections end at byte {cursor} but the file has {actual} bytes"),
            ));
        }
        let (w_off, w_size) = h.sections[2];
        if w_off % ALIGNMENT != 0 {
            return Err(FormatError::Corrupted {
                file: file.to_string(),
                section: Section::Weights,
                detail: format!("offset {w_off} is not a multiple of {ALIGNMENT}"),
            });
        }
        let compressed = h.required_flags & REQUIRED_COMPRESSED != 0;
        if !compressed && h.weights_raw_size != w_size {
            return Err(FormatError::Corrupted {
                file: file.to_string(),
                section: Section::Weights,
                detail: format!(
                    "uncompressed weights: raw size {} differs from stored size {w_size}",
                    h.weights_raw_size
                ),
            });
        }
        let signed = h.optional_flags & OPTIONAL_SIGNED != 0;
        let sig_size = h.sections[3].1;
        if signed != (sig_size == crate::sign::SIGNATURE_SIZE as u64) || (!signed && sig_size != 0)
        {
            return Err(FormatError::Corrupted {
                file: file.to_string(),
                section: Section::Signature,
                detail: format!(
                    "size {sig_size} does not match the signed flag ({signed}); a signature is {} bytes",
                    crate::sign::SIGNATURE_SIZE
                ),
            });
        }
        Ok(h)
    }

    /// True when the weights are zstd-compressed.
    pub fn compressed(&self) -> bool {
        self.required_flags & REQUIRED_COMPRESSED != 0
    }

    /// True when a signature section is present.
    pub fn signed(&self) -> bool {
        self.optional_flags & OPTIONAL_SIGNED != 0
    }
}

fn bad_magic(bytes: &[u8], file: &str) -> FormatError {
    let mut found = [0u8; 4];
    for (d, s) in found.iter_mut().zip(bytes) {
        *d = *s;
    }
    FormatError::BadMagic {
        file: file.to_string(),
        found,
    }
}

fn corrupted(file: &str, detail: &str) -> FormatError {
    FormatError::Corrupted {
        file: file.to_string(),
        section: Section::Header,
        detail: detail.to_string(),
    }
}
