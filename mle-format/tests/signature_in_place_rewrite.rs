//! Regression test: a verified load must use the bytes it verified. With a public key the
//! reader used to map the file shared, verify the signature over the mapping and then parse and
//! serve tensors from the same mapping, so a writer rewriting the file in place after the check
//! could substitute unsigned content. A verified load now reads a private copy.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::*;
use mle_format::*;

#[test]
fn signature_verified_load_is_not_changed_by_an_in_place_rewrite() {
    let key = test_key(7);
    let bytes = sample_builder()
        .to_bytes(&WriteOptions {
            signing_key: Some(key.clone()),
            ..Default::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signed.mle");
    std::fs::write(&path, &bytes).unwrap();
    let opts = ReadOptions {
        public_key: Some(key.verifying_key()),
    };
    let file = MleFile::open(&path, &opts).unwrap();
    assert!(
        !file.is_zero_copy(),
        "a verified load must not borrow a shared mapping"
    );
    let name = file.graph().tensors[0].name.clone();
    let before = file.tensor(&name).unwrap().bytes.to_vec();

    // Rewrite every weight byte in place (same inode, same length).
    let h = file.header();
    let (off, size) = h.sections[2];
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(&vec![0xA5; size as usize]).unwrap();
    f.sync_all().unwrap();

    assert_eq!(file.tensor(&name).unwrap().bytes, &before[..]);
    assert_eq!(file.file_bytes(), &bytes[..]);
    file.verify(&key.verifying_key()).unwrap();
    // The file on disk is now refused.
    assert!(MleFile::open(&path, &opts).is_err());
}

#[test]
fn unverified_load_still_maps_the_file() {
    let bytes = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.mle");
    std::fs::write(&path, &bytes).unwrap();
    let file = MleFile::open(&path, &ReadOptions::default()).unwrap();
    assert!(file.is_zero_copy());
}
