//! Normalizations over an axis or per channel: `Softmax` / `LogSoftmax`, `LayerNorm`, `BatchNorm`.

use super::{axis_index, Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};

/// `Softmax` / `LogSoftmax` along `axis`.
pub(super) fn lower_softmax(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    ctx.n_in(1)?;
    let dt = c.float_in(ctx, ctx.ins[0])?;
    let dims = c.values[ctx.ins[0]].dims.clone();
    let ax = axis_index(ctx, ctx.int("axis", Some(-1))?, dims.len() + 1)?;
    let outer = dims[..ax].iter().product();
    let inner = dims[ax + 1..].iter().product();
    let len = dims[ax];
    let width = c.values[ctx.ins[0]].width;
    let o = c.new_value(ctx.out, dt, dims, width);
    c.push(
        ctx.node,
        Kernel::Softmax {
            outer,
            len,
            inner,
            log: op == "LogSoftmax",
        },
        vec![ctx.ins[0]],
        o,
    );
    let s = c.new_scratch(2);
    if let Some(st) = c.steps.last_mut() {
        st.scratch = Some(s);
    }
    Ok(o)
}

/// `LayerNorm` over the last axis.
pub(super) fn lower_layer_norm(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    let dt = c.float_in(ctx, ctx.ins[0])?;
    let dims = c.values[ctx.ins[0]].dims.clone();
    let Some(&len) = dims.last() else {
        return Err(ctx.bad("input must have at least one non-batch axis"));
    };
    let weight = ctx.tensor_f64(c.file, "weight")?.map(|t| t.0);
    let bias = ctx.tensor_f64(c.file, "bias")?.map(|t| t.0);
    for (k, t) in [("weight", &weight), ("bias", &bias)] {
        if let Some(t) = t {
            if t.len() != len {
                return Err(ctx.bad(format!(
                    "{k} has {} values, the last axis has {len}",
                    t.len()
                )));
            }
        }
    }
    let eps = ctx.float("epsilon")?.unwrap_or(1e-5);
    let width = c.values[ctx.ins[0]].width;
    let outer = width.checked_div(len).unwrap_or(0);
    let o = c.new_value(ctx.out, dt, dims, width);
    c.push(
        ctx.node,
        Kernel::LayerNorm {
            outer,
            len,
            weight,
            bias,
            eps,
        },
        vec![ctx.ins[0]],
        o,
    );
    let s = c.new_scratch(2);
    if let Some(st) = c.steps.last_mut() {
        st.scratch = Some(s);
    }
    Ok(o)
}

/// `BatchNorm` (inference): folded into one scale and shift per channel.
pub(super) fn lower_batch_norm(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    let dt = c.float_in(ctx, ctx.ins[0])?;
    let dims = c.values[ctx.ins[0]].dims.clone();
    let Some(&ch) = dims.first() else {
        return Err(ctx.bad("input must have shape [N, C, ..]"));
    };
    let get = |k: &str, def: Option<f64>| -> Result<Vec<f64>, ExecError> {
        match ctx.tensor_f64(c.file, k)? {
            Some((t, _)) if t.len() == ch => Ok(t),
            Some((t, s)) => Err(ctx.bad(format!(
                "{k} has shape {s:?} ({} values), expected [{ch}]",
                t.len()
            ))),
            None => match def {
                Some(d) => Ok(vec![d; ch]),
                None => Err(ctx.bad(format!("required attribute `{k}` is missing"))),
            },
        }
    };
    let mean = get("mean", None)?;
    let var = get("var", None)?;
    let w = get("weight", Some(1.0))?;
    let b = get("bias", Some(0.0))?;
    let eps = ctx.float("epsilon")?.unwrap_or(1e-5);
    let scale: Vec<f64> = (0..ch).map(|i| w[i] / (var[i] + eps).sqrt()).collect();
    let shift: Vec<f64> = (0..ch).map(|i| b[i] - mean[i] * scale[i]).collect();
    let width = c.values[ctx.ins[0]].width;
    let inner = dims[1..].iter().product();
    let o = c.new_value(ctx.out, dt, dims, width);
    c.push(
        ctx.node,
        Kernel::ChannelAffine {
            channels: ch,
            inner,
            scale,
            shift,
        },
        vec![ctx.ins[0]],
        o,
    );
    Ok(o)
}
