//! Shared helpers of the integration tests: a sample model and header surgery.
#![allow(dead_code)]

use std::collections::BTreeMap;

use mle_format::header::{HEADER_CRC_OFFSET, HEADER_SIZE};
use mle_format::*;

/// Metadata of a small binary classifier.
pub fn sample_metadata() -> Metadata {
    let mut user = BTreeMap::new();
    user.insert("author".to_string(), serde_json::json!("tests"));
    user.insert("version".to_string(), serde_json::json!(3));
    let mut m = Metadata::new(
        "sklearn",
        "LogisticRegression",
        Task::Binary,
        vec!["a".into(), "b".into(), "c".into()],
        DType::F64,
        &[("label", DType::I64), ("probabilities", DType::F64)],
    )
    .with_class_labels(ClassLabels::Str(vec!["no".into(), "yes".into()]));
    m.framework_version = "1.9.1".into();
    m.export_time = "2026-01-01T00:00:00Z".into();
    m.exporter_version = "0.1.0".into();
    m.user = user;
    m
}

/// A small model with a tensor of every dtype, a float weight (quantizable), and nodes that
/// reference them.
pub fn sample_builder() -> ModelBuilder {
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_weight("coef", &[2, 3], &[0.5, -1.25, 3.0, -0.001, 2.5, 100.0])
        .unwrap();
    b.add_tensor("intercept", &[2], &[0.25f64, -0.75]).unwrap();
    b.add_tensor(
        "f16",
        &[3],
        &[half::f16::from_f32(1.5), half::f16::ONE, half::f16::ZERO],
    )
    .unwrap();
    b.add_tensor("i8", &[4], &[-128i8, -1, 0, 127]).unwrap();
    b.add_tensor("i32", &[2], &[i32::MIN, 7]).unwrap();
    b.add_tensor("i64", &[1], &[i64::MAX]).unwrap();
    b.add_tensor("u8", &[5], &[0u8, 1, 2, 3, 255]).unwrap();
    b.add_tensor("u32", &[3], &[0u32, 9, u32::MAX]).unwrap();
    b.add_tensor("empty", &[0, 4], &[] as &[f32]).unwrap();
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, 3],
    }]);
    b.push_node(
        Node::new("linear", "LinearModel", &["X"], &["margin"])
            .with("coef", Attr::Tensor("coef".into()))
            .with("intercept", Attr::Tensor("intercept".into())),
    );
    b.push_node(
        Node::new("softmax", "Softmax", &["margin"], &["probabilities"])
            .with("axis", Attr::Int(-1)),
    );
    b.push_node(Node::new(
        "argmax",
        "ArgMax",
        &["probabilities"],
        &["label"],
    ));
    b.set_outputs(vec![
        ValueInfo {
            name: "label".into(),
            dtype: DType::I64,
            shape: vec![-1],
        },
        ValueInfo {
            name: "probabilities".into(),
            dtype: DType::F64,
            shape: vec![-1, 2],
        },
    ]);
    b
}

/// A fixed signing key (deterministic tests).
pub fn test_key(seed: u8) -> SecretKey {
    SecretKey::from_bytes(&[seed; 32])
}

/// Recomputes the header CRC after the header was edited.
pub fn fix_header_crc(bytes: &mut [u8]) {
    let crc = crc32fast::hash(&bytes[..HEADER_CRC_OFFSET]);
    bytes[HEADER_CRC_OFFSET..HEADER_SIZE].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes the CRC of the section holding byte `pos` (per the original header `h`) and then
/// the header CRC, so that a mutation gets past the checksums and reaches deeper validation.
pub fn fix_crcs(bytes: &mut [u8], h: &Header, pos: usize) {
    for (i, &(off, size)) in h.sections.iter().enumerate() {
        let (off, size) = (off as usize, size as usize);
        if pos >= off && pos < off + size && off + size <= bytes.len() {
            let crc = crc32fast::hash(&bytes[off..off + size]);
            let at = 88 + 4 * i;
            bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    if bytes.len() >= HEADER_SIZE {
        fix_header_crc(bytes);
    }
}

/// Reads every tensor of a loaded file through every accessor (what a consumer would do).
pub fn touch_all(f: &MleFile) {
    for t in &f.graph().tensors {
        let v = f.tensor(&t.name).expect("listed tensor must load");
        assert_eq!(v.bytes.len() as u64, t.length);
        assert_eq!(
            v.bytes.as_ptr() as usize % 64,
            0,
            "tensor {} misaligned",
            t.name
        );
        let _ = f.tensor_f32(&t.name);
        let _ = f.tensor_as::<u8>(&t.name);
    }
}
