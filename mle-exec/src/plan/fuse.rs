//! Fusion: a dense layer absorbs a following per-output constant `Add`/`Sub` (into its bias)
//! and a following activation (into its epilogue); a `Scaler` is folded into a following
//! `LinearModel`.

use std::collections::HashMap;

use super::ir::{Act, BinOp, Dense, Kernel, Operand, Step, Value, ValueId};
use crate::real::Real;

/// Number of uses of each value by steps, aliases and graph outputs.
pub(super) fn use_counts(values: &[Value], steps: &[Step], outputs: &[ValueId]) -> Vec<usize> {
    let mut uses = vec![0usize; values.len()];
    for s in steps {
        for &i in &s.inputs {
            uses[i] += 1;
        }
    }
    for v in values {
        if let Some(src) = v.alias_of {
            uses[src] += 1;
        }
    }
    for &o in outputs {
        uses[o] += 1;
    }
    uses
}

/// Fuses `Dense → Add/Sub const` into the bias, `Dense → activation` into the epilogue, and a
/// `Scaler` into a following `LinearModel`. Each rewrite needs the intermediate value to have
/// exactly one use and not be a graph output. One forward pass (linear in the step count).
pub(super) fn fuse(values: &[Value], steps: Vec<Step>, outputs: &[ValueId]) -> Vec<Step> {
    let uses = use_counts(values, &steps, outputs);
    let mut steps: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for ci in 0..steps.len() {
        let input = steps[ci].as_ref().and_then(|s| s.inputs.first().copied());
        let pi = input.and_then(|i| producer.get(&i).copied());
        if let (Some(input), Some(pi)) = (input, pi) {
            if uses[input] == 1 && pi < ci {
                let (head, tail) = steps.split_at_mut(ci);
                if let (Some(p), Some(c)) = (head[pi].as_mut(), tail[0].as_mut()) {
                    match fuse_pair(values, input, p, c) {
                        Fused::IntoProducer => {
                            p.output = c.output;
                            producer.insert(p.output, pi);
                            steps[ci] = None;
                            continue;
                        }
                        Fused::IntoConsumer => {
                            c.inputs[0] = p.inputs[0];
                            steps[pi] = None;
                        }
                        Fused::No => {}
                    }
                }
            }
        }
        if let Some(s) = &steps[ci] {
            producer.insert(s.output, ci);
        }
    }
    steps.into_iter().flatten().collect()
}

enum Fused {
    No,
    IntoProducer,
    IntoConsumer,
}

/// Calls `$body` with `$d` bound to the dense layer of kernel `$k` (f32 or f64, one body
/// monomorphized per precision); `$other` for any other kernel.
macro_rules! with_dense {
    ($k:expr, $d:ident => $body:expr, $other:expr) => {
        match $k {
            Kernel::DenseF32($d) => $body,
            Kernel::DenseF64($d) => $body,
            _ => $other,
        }
    };
}

fn fuse_pair(values: &[Value], input: ValueId, p: &mut Step, c: &mut Step) -> Fused {
    let same_shape = values[c.output].dims == values[input].dims;
    match (&mut p.kernel, &mut c.kernel) {
        (
            pk,
            Kernel::Binary {
                op,
                a: Operand::Value(av),
                b: Operand::Const(cst),
                map,
            },
        ) if *av == input && matches!(op, BinOp::Add | BinOp::Sub) && same_shape => {
            with_dense!(pk, d => fold_bias(d, *op, map, cst), Fused::No)
        }
        (pk, Kernel::Unary(act)) => with_dense!(pk, d => fold_act(d, *act), Fused::No),
        (
            Kernel::Scaler {
                offset,
                scale,
                divide,
                bias: None,
            },
            Kernel::DenseF64(d),
        ) if d.groups == 1
            && offset.iter().chain(scale.iter()).all(|v| v.is_finite())
            && (!*divide || scale.iter().all(|&v| v != 0.0))
            && offset.len() == d.k =>
        {
            let bias = d.bias.get_or_insert_with(|| vec![0.0; d.m]);
            for (t, b) in bias.iter_mut().enumerate() {
                let row = &mut d.w[t * d.k..(t + 1) * d.k];
                let mut shift = 0.0;
                for f in 0..d.k {
                    if *divide {
                        row[f] /= scale[f];
                    } else {
                        row[f] *= scale[f];
                    }
                    shift += row[f] * offset[f];
                }
                *b -= shift;
            }
            Fused::IntoConsumer
        }
        _ => Fused::No,
    }
}

/// `Dense → Add/Sub` of a per-output constant: the constant goes into the bias (summed in f64,
/// rounded once to the layer's precision).
fn fold_bias<T: Real>(d: &mut Dense<T>, op: BinOp, map: &[(u32, u32)], cst: &[f64]) -> Fused {
    if d.act != Act::None || d.groups != 1 || map.len() != d.m {
        return Fused::No;
    }
    let sign = if op == BinOp::Add { 1.0 } else { -1.0 };
    let bias = d.bias.get_or_insert_with(|| vec![T::ZERO; d.m]);
    for (j, &(_, jb)) in map.iter().enumerate() {
        bias[j] = T::from_f64(bias[j].to_f64() + sign * cst[jb as usize]);
    }
    Fused::IntoProducer
}

/// `Dense → activation`: the activation becomes the layer's epilogue.
fn fold_act<T>(d: &mut Dense<T>, act: Act) -> Fused {
    if d.act != Act::None {
        return Fused::No;
    }
    d.act = act;
    Fused::IntoProducer
}
