//! Load + verify of a signed model: mmap open, header and section CRC32 checks, JSON parse,
//! tensor validation, and ED25519 verification, for a 1 MB and a 100 MB model.
//!
//! `nice cargo bench -p mle-format --bench load`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mle_format::*;

fn model(bytes: usize, key: &SecretKey) -> Vec<u8> {
    let meta = Metadata::new(
        "bench",
        "Dense",
        Task::Regression,
        (0..256).map(|i| format!("f{i}")).collect(),
        DType::F32,
        &[("prediction", DType::F32)],
    );
    let mut b = ModelBuilder::new(meta);
    // Sixteen dense layers sharing the size, like an MLP's weights.
    let layers = 16;
    let per = bytes / 4 / layers;
    for l in 0..layers {
        let w: Vec<f32> = (0..per)
            .map(|i| ((i * 31 + l) % 1000) as f32 * 1e-3)
            .collect();
        b.add_weight(&format!("layer{l}.weight"), &[per as u64], &w)
            .unwrap();
        b.push_node(
            Node::new(format!("layer{l}"), "Gemm", &["X"], &["Y"])
                .with("weight", Attr::Tensor(format!("layer{l}.weight"))),
        );
    }
    b.to_bytes(&WriteOptions {
        signing_key: Some(key.clone()),
        ..Default::default()
    })
    .unwrap()
}

fn bench_load(c: &mut Criterion) {
    let key = SecretKey::from_bytes(&[7; 32]);
    let opts = ReadOptions {
        public_key: Some(key.verifying_key()),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("load_verify");
    for (label, size) in [("1MB", 1usize << 20), ("100MB", 100 << 20)] {
        let path = dir.path().join(format!("{label}.mle"));
        let bytes = model(size, &key);
        std::fs::write(&path, &bytes).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        if size > 10 << 20 {
            group.sample_size(10);
        }
        group.bench_function(format!("open+crc+verify/{label}"), |b| {
            b.iter(|| {
                let f = MleFile::open(black_box(&path), &opts).unwrap();
                black_box(f.weights().len())
            })
        });
        group.bench_function(format!("open+crc/{label}"), |b| {
            b.iter(|| {
                let f = MleFile::open(black_box(&path), &ReadOptions::default()).unwrap();
                black_box(f.weights().len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
