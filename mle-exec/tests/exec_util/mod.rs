//! Shared helpers of the executor's tests: building models with `ModelBuilder`, random data
//! (from `mle_testkit::Rng`), and running a model every way (columns f64/f32, strided
//! row-major, single rows, threads).
#![allow(dead_code)]

use std::sync::Arc;

use mle_exec::{Batch, ColumnData, ExecError, Model, OutputData, Outputs, RunOptions, Session};
use mle_format::*;

pub use mle_testkit::Rng;

pub fn meta(n_features: usize, input_dtype: DType, outs: &[ValueInfo]) -> Metadata {
    let outputs: Vec<(&str, DType)> = outs.iter().map(|o| (o.name.as_str(), o.dtype)).collect();
    Metadata::new(
        "test",
        "test",
        Task::Regression,
        (0..n_features).map(|i| format!("f{i}")).collect(),
        input_dtype,
        &outputs,
    )
}

pub fn vi(name: &str, dtype: DType, shape: &[i64]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// A tensor to add to a model.
pub enum T {
    F32(Vec<u64>, Vec<f32>),
    F64(Vec<u64>, Vec<f64>),
    U32(Vec<u64>, Vec<u32>),
    I32(Vec<u64>, Vec<i32>),
    U8(Vec<u64>, Vec<u8>),
}

/// A model builder pre-filled with one input `X` of `n_features`.
pub fn builder(
    n_features: usize,
    input_dtype: DType,
    nodes: Vec<Node>,
    tensors: Vec<(&str, T)>,
    outputs: Vec<ValueInfo>,
) -> ModelBuilder {
    let mut b = ModelBuilder::new(meta(n_features, input_dtype, &outputs));
    for (name, t) in tensors {
        match t {
            T::F32(s, d) => b.add_weight(name, &s, &d).unwrap(),
            T::F64(s, d) => b.add_tensor(name, &s, &d).unwrap(),
            T::U32(s, d) => b.add_tensor(name, &s, &d).unwrap(),
            T::I32(s, d) => b.add_tensor(name, &s, &d).unwrap(),
            T::U8(s, d) => b.add_tensor(name, &s, &d).unwrap(),
        }
    }
    b.set_inputs(vec![vi("X", input_dtype, &[-1, n_features as i64])]);
    for n in nodes {
        b.push_node(n);
    }
    b.set_outputs(outputs);
    b
}

pub fn build(
    n_features: usize,
    input_dtype: DType,
    nodes: Vec<Node>,
    tensors: Vec<(&str, T)>,
    outputs: Vec<ValueInfo>,
) -> Result<Model, ExecError> {
    let b = builder(n_features, input_dtype, nodes, tensors, outputs);
    let bytes = b.to_bytes(&WriteOptions::default())?;
    Model::from_bytes(&bytes, "test.mle")
}

pub fn tensor(name: &str) -> Attr {
    Attr::Tensor(name.into())
}

/// An output's values as f64.
pub fn as_f64(d: &OutputData) -> Vec<f64> {
    match d {
        OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        OutputData::F64(v) => v.clone(),
        OutputData::I64(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

/// Asserts `got` ≈ `want` (NaN matches NaN) within `tol·(1 + |want|)`.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
        } else {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: got {g}, want {w}"
            );
        }
    }
}

/// Runs `model` on `x` (`[n, f]` row-major) every way and checks every output against
/// `reference(row) -> one Vec per output` (flattened per row). `f32_too` also runs the f32
/// path (input rounded to f32, reference on the rounded values).
pub fn check_model(
    model: &Arc<Model>,
    x: &[f64],
    n: usize,
    reference: &dyn Fn(&[f64]) -> Vec<Vec<f64>>,
    tol: f64,
    f32_too: bool,
) {
    let f = model.n_features();
    assert_eq!(x.len(), n * f);
    let mut variants: Vec<(&str, Vec<f64>)> = vec![("f64", x.to_vec())];
    if f32_too {
        variants.push(("f32", x.iter().map(|&v| v as f32 as f64).collect()));
    }
    for (kind, xv) in variants {
        // Expected, row by row.
        let n_out = model.outputs().len();
        let mut want: Vec<Vec<f64>> = vec![Vec::new(); n_out];
        for r in 0..n {
            let outs = reference(&xv[r * f..(r + 1) * f]);
            assert_eq!(outs.len(), n_out);
            for (k, o) in outs.into_iter().enumerate() {
                let w = model.outputs()[k].width.max(1);
                assert_eq!(o.len(), w, "reference output {k} width");
                want[k].extend(o);
            }
        }
        let cols64: Vec<Vec<f64>> = (0..f)
            .map(|j| (0..n).map(|r| xv[r * f + j]).collect())
            .collect();
        let cols32: Vec<Vec<f32>> = cols64
            .iter()
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect();
        let x32: Vec<f32> = xv.iter().map(|&v| v as f32).collect();
        let batch = if kind == "f64" {
            Batch::from_columns(cols64.iter().map(|c| ColumnData::F64(c)).collect()).unwrap()
        } else {
            Batch::from_columns(cols32.iter().map(|c| ColumnData::F32(c)).collect()).unwrap()
        };
        let strided = if kind == "f64" {
            Batch::from_row_major_f64(&xv, n, f).unwrap()
        } else {
            Batch::from_row_major_f32(&x32, n, f).unwrap()
        };
        let mut s = Session::new(model.clone());
        let base: Outputs = s
            .predict_batch(&batch, RunOptions::default())
            .unwrap()
            .clone();
        assert_eq!(base.n_rows, n);
        for (k, o) in base.outputs.iter().enumerate() {
            assert_close(
                &as_f64(&o.data),
                &want[k],
                tol,
                &format!("{kind} columns, output {:?}", o.info.name),
            );
        }
        // Strided row-major view and other thread counts: bit-identical.
        for threads in [1, 0, 3] {
            let got = s
                .predict_batch(&strided, RunOptions { threads })
                .unwrap()
                .clone();
            assert_bit_identical(&got, &base, &format!("{kind}: strided, threads={threads}"));
        }
        // Owned outputs (the session hands its buffers over and runs next into fresh ones),
        // then a borrowed run again: bit-identical.
        for threads in [1, 2] {
            let owned = s
                .predict_batch_owned(&strided, RunOptions { threads })
                .unwrap();
            assert_bit_identical(&owned, &base, &format!("{kind}: owned, threads={threads}"));
        }
        let again = s
            .predict_batch(&batch, RunOptions { threads: 1 })
            .unwrap()
            .clone();
        assert_bit_identical(&again, &base, &format!("{kind}: after owned runs"));
        // Single rows agree with the reference.
        for r in (0..n).step_by((n / 7).max(1)) {
            let out = if kind == "f64" {
                s.predict_row(&xv[r * f..(r + 1) * f]).unwrap()
            } else {
                s.predict_row_f32(&x32[r * f..(r + 1) * f]).unwrap()
            };
            assert_eq!(out.n_rows, 1);
            for (k, o) in out.outputs.iter().enumerate() {
                let w = o.info.width.max(1);
                assert_close(
                    &as_f64(&o.data),
                    &want[k][r * w..(r + 1) * w],
                    tol,
                    &format!("{kind} row {r}, output {:?}", o.info.name),
                );
            }
        }
    }
}

/// Asserts two runs are bit-identical (NaN payloads included).
pub fn assert_bit_identical(a: &Outputs, b: &Outputs, what: &str) {
    assert_eq!(a.n_rows, b.n_rows, "{what}: n_rows");
    assert_eq!(a.outputs.len(), b.outputs.len(), "{what}: outputs");
    for (x, y) in a.outputs.iter().zip(&b.outputs) {
        assert_eq!(x.info, y.info, "{what}");
        let same = match (&x.data, &y.data) {
            (OutputData::F32(p), OutputData::F32(q)) => {
                p.len() == q.len() && p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits())
            }
            (OutputData::F64(p), OutputData::F64(q)) => {
                p.len() == q.len() && p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits())
            }
            (OutputData::I64(p), OutputData::I64(q)) => p == q,
            _ => false,
        };
        assert!(same, "{what}: output {:?} differs", x.info.name);
    }
}

/// Batch sizes exercised by every operator test: empty, one row, not a multiple of any SIMD
/// width, and more than one chunk with a partial last chunk.
pub const BATCHES: [usize; 5] = [0, 1, 7, 37, 1100];

/// Random `[n, f]` data in [-3, 3); with `nan`, about 5% NaN.
pub fn data(rng: &mut Rng, n: usize, f: usize, nan: bool) -> Vec<f64> {
    (0..n * f)
        .map(|_| {
            if nan && rng.next_u64() % 20 == 0 {
                f64::NAN
            } else {
                rng.f64(-3.0, 3.0)
            }
        })
        .collect()
}
