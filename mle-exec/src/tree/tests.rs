//! The f32 records of f64-precision models and the NaN-free step against the f64 path (the
//! reference kernel of docs/OPS.md semantics for f64 precision), bit for bit, on random trees
//! whose thresholds sit exactly at, and one f32 step around, the inputs.

use mle_format::{
    Attr, DType, InputSchema, Metadata, MleFile, ModelBuilder, Node, OutputSchema, ReadOptions,
    Task, WriteOptions,
};

use super::flags::{LEAF, MISSING_LEFT, NAN_IS_ZERO};
use super::TreeEnsemble;
use crate::batch::{Batch, ColumnData};

const NF: usize = 5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Values the inputs and thresholds are drawn from: a few f32 values, their f32 neighbours,
/// and f64 values between two f32 (not representable in f32).
fn pool() -> Vec<f64> {
    let mut p = vec![0.0, -0.0, 1.0, -1.0, 0.1f32 as f64, 2.5, -3.75];
    for v in p.clone() {
        let f = v as f32;
        p.push(f32::from_bits(f.to_bits() + 1) as f64);
        p.push((f as f64 + f32::from_bits(f.to_bits() + 1) as f64) / 2.0);
    }
    p
}

fn ensemble(seed: u64, lt: bool) -> TreeEnsemble {
    let mut rng = Rng(seed * 7919 + 1);
    let pool = pool();
    let (mut feature, mut threshold, mut left, mut right, mut flags, mut leaf, mut roots) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..1 + rng.below(12) {
        roots.push(feature.len() as u32);
        // Breadth-first random tree: node i's children are appended when it splits.
        let mut open = vec![(feature.len(), 0u32)];
        feature.push(0);
        threshold.push(0.0);
        left.push(0);
        right.push(0);
        flags.push(LEAF);
        leaf.push(0.0);
        while let Some((i, d)) = open.pop() {
            if d > rng.below(7) as u32 {
                leaf[i] = rng.below(1000) as f64 / 64.0 - 7.0;
                continue;
            }
            feature[i] = rng.below(NF as u64) as i32;
            threshold[i] = pool[rng.below(pool.len() as u64) as usize];
            flags[i] = [0, MISSING_LEFT, NAN_IS_ZERO][rng.below(3) as usize];
            for side in 0..2 {
                let c = feature.len();
                feature.push(0);
                threshold.push(0.0);
                left.push(0);
                right.push(0);
                flags.push(LEAF);
                leaf.push(0.0);
                if side == 0 {
                    left[i] = c as u32;
                } else {
                    right[i] = c as u32;
                }
                open.push((c, d + 1));
            }
        }
    }
    let meta = Metadata {
        framework: "test".into(),
        framework_version: String::new(),
        model_type: "TreeEnsemble".into(),
        task: Task::Regression,
        input: InputSchema {
            feature_names: (0..NF).map(|i| format!("f{i}")).collect(),
            dtype: DType::F64,
            shape: vec![-1, NF as i64],
        },
        output: OutputSchema {
            names: vec!["y".into()],
            dtypes: vec![DType::F64],
            class_labels: None,
        },
        export_time: String::new(),
        exporter_version: String::new(),
        user: Default::default(),
    };
    let mut b = ModelBuilder::new(meta);
    let n = feature.len() as u64;
    b.add_tensor("roots", &[roots.len() as u64], &roots)
        .unwrap();
    b.add_tensor("feature", &[n], &feature).unwrap();
    b.add_tensor("threshold", &[n], &threshold).unwrap();
    b.add_tensor("left", &[n], &left).unwrap();
    b.add_tensor("right", &[n], &right).unwrap();
    b.add_tensor("flags", &[n], &flags).unwrap();
    b.add_tensor("leaf_values", &[n], &leaf).unwrap();
    let t = |x: &str| Attr::Tensor(x.into());
    b.push_node(
        Node::new("trees", "TreeEnsemble", &["X"], &["y"])
            .with("n_targets", Attr::Int(1))
            .with("tree_roots", t("roots"))
            .with("feature", t("feature"))
            .with("threshold", t("threshold"))
            .with("left", t("left"))
            .with("right", t("right"))
            .with("flags", t("flags"))
            .with("leaf_values", t("leaf_values"))
            .with("comparison", Attr::Str(if lt { "lt" } else { "le" }.into()))
            .with("input_precision", Attr::Str("f64".into())),
    );
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let file = MleFile::from_bytes(&bytes, "t.mle", &ReadOptions::default()).unwrap();
    let node = file.graph().nodes[0].clone();
    TreeEnsemble::compile(&node, &file, NF).unwrap()
}

#[test]
fn f32_records_and_nan_free_blocks_equal_the_f64_path() {
    let pool = pool();
    for seed in 0..200u64 {
        let ens = ensemble(seed, seed % 2 == 0);
        assert_eq!(ens.kernel_name(), "fast-f64");
        let mut rng = Rng(seed + 17);
        let rows = [1usize, 3, 4, 70, 600][seed as usize % 5];
        // Half the seeds have no NaN at all (the NaN-free step), the others a few.
        let nan_rate = if seed % 4 < 2 { 0 } else { 8 };
        let x32: Vec<f32> = (0..rows * NF)
            .map(|_| {
                if nan_rate > 0 && rng.below(nan_rate) == 0 {
                    f32::NAN
                } else {
                    pool[rng.below(pool.len() as u64) as usize] as f32
                }
            })
            .collect();
        let x64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let b32 = Batch::from_row_major_f32(&x32, rows, NF).unwrap();
        let b64 = Batch::from_row_major_f64(&x64, rows, NF).unwrap();
        assert!(b32
            .columns()
            .iter()
            .all(|c| matches!(c.data, ColumnData::F32(_))));
        let mut s = ens.scratch();
        let (mut o32, mut o64) = (vec![f64::NAN; rows], vec![f64::NAN; rows]);
        ens.predict_batch(&b32, 0..rows, &mut o32, &mut s);
        ens.predict_batch(&b64, 0..rows, &mut o64, &mut s);
        for r in 0..rows {
            let (mut a, mut b) = ([f64::NAN], [f64::NAN]);
            ens.predict_row_f32(&x32[r * NF..(r + 1) * NF], &mut a);
            ens.predict_row_f64(&x64[r * NF..(r + 1) * NF], &mut b);
            let want = b[0].to_bits();
            for (what, got) in [
                ("f32 batch", o32[r]),
                ("f64 batch", o64[r]),
                ("f32 row", a[0]),
            ] {
                assert_eq!(
                    got.to_bits(),
                    want,
                    "seed {seed} row {r}: {what} {got} vs {}",
                    b[0]
                );
            }
        }
    }
}
