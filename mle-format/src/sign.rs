//! ED25519 signatures over a whole `.mle` file, and key files.
//!
//! The signed message is `b"MLE-SIGNATURE-V1\0"`, then the header's first 124 bytes with the
//! signature CRC (bytes 100..104) set to zero, then the metadata, graph and weights sections as
//! stored. The header CRC (bytes 124..128) is not part of the message: it covers the signature
//! CRC, which covers the signature. Key files hold the 32-byte key as 64 hexadecimal characters
//! (a trailing newline is allowed); raw 32-byte files are accepted too.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{FormatError, Result, Section};
use crate::header::{
    Header, FILE_SIZE_OFFSET, HEADER_CRC_OFFSET, HEADER_SIZE, OPTIONAL_FLAGS_OFFSET,
    OPTIONAL_SIGNED, SIGNATURE_CRC_OFFSET, SIGNATURE_SIZE_OFFSET,
};

/// Size of an ED25519 signature section.
pub const SIGNATURE_SIZE: usize = 64;
/// Domain-separation prefix of the signed message.
pub const SIGNATURE_DOMAIN: &[u8] = b"MLE-SIGNATURE-V1\0";

pub use ed25519_dalek::{SigningKey as SecretKey, VerifyingKey as PublicKey};

/// The header as it enters the signed message: its first 124 bytes with the signature CRC
/// (bytes 100..104) set to zero.
fn signed_header(header: &[u8; HEADER_SIZE]) -> [u8; HEADER_CRC_OFFSET] {
    let mut h = [0u8; HEADER_CRC_OFFSET];
    h.copy_from_slice(&header[..HEADER_CRC_OFFSET]);
    h[SIGNATURE_CRC_OFFSET..SIGNATURE_CRC_OFFSET + 4].fill(0);
    h
}

fn put(header: &mut [u8; HEADER_SIZE], at: usize, bytes: &[u8]) {
    if let Some(dst) = header.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Signs a complete `.mle` file (signed or not) and returns the signed file. An existing
/// signature is replaced. The header and the section checksums are validated first; every
/// header byte other than the signed flag, the file size, the signature section's size and the
/// two CRCs is kept as it was.
pub fn sign_bytes(file_bytes: &[u8], key: &SigningKey, file: &str) -> Result<Vec<u8>> {
    let h = Header::parse(file_bytes, file)?;
    crate::reader::verify_section_crcs(&h, file_bytes, file)?;
    let out_of_range = || FormatError::Corrupted {
        file: file.to_string(),
        section: Section::Header,
        detail: "section table out of range".into(),
    };
    // The signature section starts where the weights end (checked by `Header::parse`).
    let body_end = usize::try_from(h.sections[3].0).map_err(|_| out_of_range())?;
    let body = file_bytes
        .get(HEADER_SIZE..body_end)
        .ok_or_else(out_of_range)?;
    let mut header: [u8; HEADER_SIZE] = file_bytes
        .get(..HEADER_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(out_of_range)?;
    let file_size = (body_end + SIGNATURE_SIZE) as u64;
    put(
        &mut header,
        OPTIONAL_FLAGS_OFFSET,
        &(h.optional_flags | OPTIONAL_SIGNED).to_le_bytes(),
    );
    put(&mut header, FILE_SIZE_OFFSET, &file_size.to_le_bytes());
    put(
        &mut header,
        SIGNATURE_SIZE_OFFSET,
        &(SIGNATURE_SIZE as u64).to_le_bytes(),
    );
    let mut msg = Vec::with_capacity(SIGNATURE_DOMAIN.len() + HEADER_CRC_OFFSET + body.len());
    msg.extend_from_slice(SIGNATURE_DOMAIN);
    msg.extend_from_slice(&signed_header(&header));
    msg.extend_from_slice(body);
    let sig = key.sign(&msg).to_bytes();
    drop(msg);
    put(
        &mut header,
        SIGNATURE_CRC_OFFSET,
        &crc32fast::hash(&sig).to_le_bytes(),
    );
    let header_crc = crc32fast::hash(&header[..HEADER_CRC_OFFSET]);
    put(&mut header, HEADER_CRC_OFFSET, &header_crc.to_le_bytes());
    let mut out = Vec::with_capacity(body_end + SIGNATURE_SIZE);
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out.extend_from_slice(&sig);
    Ok(out)
}

/// Verifies the signature of a complete file against `key`. The file must parse (header and
/// section CRCs) first.
pub fn verify_bytes(file_bytes: &[u8], key: &VerifyingKey, file: &str) -> Result<()> {
    let h = Header::parse(file_bytes, file)?;
    crate::reader::verify_section_crcs(&h, file_bytes, file)?;
    verify_parsed(&h, file_bytes, key, file)
}

/// Verifies the signature of a file whose header `h` was parsed from `file_bytes`. The message
/// is hashed in place (streamed), without copying the file.
pub(crate) fn verify_parsed(
    h: &Header,
    file_bytes: &[u8],
    key: &VerifyingKey,
    file: &str,
) -> Result<()> {
    if !h.signed() {
        return Err(FormatError::SignatureMissing {
            file: file.to_string(),
        });
    }
    let invalid = |detail: &str| FormatError::SignatureInvalid {
        file: file.to_string(),
        detail: detail.to_string(),
    };
    let sig_off =
        usize::try_from(h.sections[3].0).map_err(|_| invalid("signature offset out of range"))?;
    let sig_bytes: [u8; SIGNATURE_SIZE] = file_bytes
        .get(sig_off..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("signature section is not 64 bytes"))?;
    let header: &[u8; HEADER_SIZE] = file_bytes
        .get(..HEADER_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("file shorter than its header"))?;
    let body = file_bytes
        .get(HEADER_SIZE..sig_off)
        .ok_or_else(|| invalid("section table out of range"))?;
    if key.is_weak() {
        return Err(invalid(
            "the public key is a weak (small-order) ed25519 key",
        ));
    }
    let sig = Signature::from_bytes(&sig_bytes);
    let mut verifier = key
        .verify_stream(&sig)
        .map_err(|_| invalid("the signature is malformed"))?;
    verifier.update(SIGNATURE_DOMAIN);
    verifier.update(signed_header(header));
    verifier.update(body);
    verifier.finalize_and_verify().map_err(|_| {
        invalid("the signature does not match this key and content (wrong key, or the file was modified after signing)")
    })
}

/// Generates a new random signing key.
pub fn generate_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| FormatError::Build(format!("no randomness for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

fn parse_key_bytes(bytes: &[u8], path: &Path) -> Result<[u8; 32]> {
    let bad = |detail: String| FormatError::BadKey {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(bytes);
        return Ok(k);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| {
            bad(format!(
                "expected 64 hex characters or 32 raw bytes, found {} bytes",
                bytes.len()
            ))
        })?
        .trim();
    if text.len() != 64 {
        return Err(bad(format!(
            "expected 64 hex characters, found {}",
            text.len()
        )));
    }
    let mut k = [0u8; 32];
    for (i, byte) in k.iter_mut().enumerate() {
        let pair = text
            .get(2 * i..2 * i + 2)
            .ok_or_else(|| bad("not ASCII hex".into()))?;
        *byte = u8::from_str_radix(pair, 16)
            .map_err(|_| bad(format!("bad hex digits {pair:?} at {}", 2 * i)))?;
    }
    Ok(k)
}

/// Parses a public key from key-file contents (`source` names it in errors).
pub fn public_key_from_bytes(bytes: &[u8], source: &Path) -> Result<VerifyingKey> {
    let k = parse_key_bytes(bytes, source)?;
    VerifyingKey::from_bytes(&k).map_err(|e| FormatError::BadKey {
        path: source.to_path_buf(),
        detail: format!("not a valid ed25519 public key: {e}"),
    })
}

/// Parses a secret key from key-file contents.
pub fn secret_key_from_bytes(bytes: &[u8], source: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&parse_key_bytes(bytes, source)?))
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > 4096 {
        return Err(FormatError::BadKey {
            path: path.to_path_buf(),
            detail: format!("{} bytes is too large for a key file", meta.len()),
        });
    }
    std::fs::read(path).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a public key file.
pub fn read_public_key(path: impl AsRef<Path>) -> Result<VerifyingKey> {
    let path = path.as_ref();
    public_key_from_bytes(&read_key_file(path)?, path)
}

/// Reads a secret key file.
pub fn read_secret_key(path: impl AsRef<Path>) -> Result<SigningKey> {
    let path = path.as_ref();
    secret_key_from_bytes(&read_key_file(path)?, path)
}

/// The hex text of a key file (64 hex characters and a newline).
pub fn key_to_hex(bytes: &[u8; 32]) -> String {
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s
}
