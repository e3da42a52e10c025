//! Classical per-feature and post-transform ops (f64): `Scaler`, `Affine`, `Imputer`, `Normalizer`,
//! `BinaryToProba`, `ArgMax`, `Threshold`.

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, Norm, ValueId};

/// `Scaler`, `Affine`, `Imputer`, `Normalizer`: per-feature parameters over an f64 `[N, F]` input.
pub(super) fn lower_per_feature(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let xin = c.coerce(ctx.ins[0], DType::F64);
    let dims = c.values[xin].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let per_feature = |k: &str, def: Option<f64>| -> Result<Vec<f64>, ExecError> {
        match ctx.tensor_f64(c.file, k)? {
            Some((t, _)) if t.len() == f => Ok(t),
            Some((t, s)) => Err(ctx.bad(format!(
                "{k} has shape {s:?} ({} values), expected [{f}] for {f} features",
                t.len()
            ))),
            None => match def {
                Some(d) => Ok(vec![d; f]),
                None => Err(ctx.bad(format!("required attribute `{k}` is missing"))),
            },
        }
    };
    let (kernel, scratch) = match op {
        "Scaler" => (
            Kernel::Scaler {
                offset: per_feature("offset", Some(0.0))?,
                scale: per_feature("scale", Some(1.0))?,
                divide: false,
                bias: None,
            },
            false,
        ),
        "Affine" => {
            let has = |k: &str| ctx.node.attr(k).is_some();
            if has("scale") && has("divisor") {
                return Err(ctx.bad("has both `scale` and `divisor`; an Affine takes one"));
            }
            let divide = has("divisor");
            let scale = if divide {
                per_feature("divisor", None)?
            } else {
                per_feature("scale", Some(1.0))?
            };
            let bias = if has("bias") {
                Some(per_feature("bias", None)?)
            } else {
                None
            };
            let offset = per_feature("offset", Some(0.0))?;
            (
                Kernel::Scaler {
                    offset,
                    scale,
                    divide,
                    bias,
                },
                false,
            )
        }
        "Imputer" => (
            Kernel::Imputer {
                values: per_feature("values", None)?,
                missing: ctx.float("missing")?.unwrap_or(f64::NAN),
            },
            false,
        ),
        _ => {
            let norm = match ctx.string("norm")?.unwrap_or("l2") {
                "l1" => Norm::L1,
                "l2" => Norm::L2,
                "max" => Norm::Max,
                other => {
                    return Err(ctx.bad(format!(
                        "attribute `norm` is {other:?}, expected \"l1\", \"l2\" or \"max\""
                    )))
                }
            };
            (Kernel::Normalizer(norm), true)
        }
    };
    let o = c.new_value(ctx.out, DType::F64, dims, f);
    c.push(ctx.node, kernel, vec![xin], o);
    if scratch {
        let s = c.new_scratch(1);
        if let Some(st) = c.steps.last_mut() {
            st.scratch = Some(s);
        }
    }
    Ok(o)
}

/// `BinaryToProba`: `[1 − p, p]` from one f64 probability column.
pub(super) fn lower_binary_to_proba(
    c: &mut Compiler<'_>,
    ctx: &Ctx<'_>,
) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let xin = c.coerce(ctx.ins[0], DType::F64);
    if c.values[xin].width != 1 || c.values[xin].dims.len() > 1 {
        return Err(ctx.bad(format!(
            "input must have shape [N] or [N, 1], found [N, {:?}]",
            c.values[xin].dims
        )));
    }
    let o = c.new_value(ctx.out, DType::F64, vec![2], 2);
    c.push(ctx.node, Kernel::BinaryToProba, vec![xin], o);
    Ok(o)
}

/// `ArgMax`: index (i64) of the first maximum of `[N, C]`.
pub(super) fn lower_argmax(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let dims = &c.values[ctx.ins[0]].dims;
    if dims.len() != 1 || dims[0] == 0 {
        return Err(ctx.bad(format!(
            "input must have shape [N, C] with C >= 1, found [N, {dims:?}]"
        )));
    }
    let classes = dims[0];
    let o = c.new_value(ctx.out, DType::I64, vec![], 1);
    c.push(ctx.node, Kernel::ArgMax { classes }, vec![ctx.ins[0]], o);
    Ok(o)
}

/// `Threshold`: `x > threshold` as i64 from one column.
pub(super) fn lower_threshold(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    if c.values[ctx.ins[0]].width != 1 || c.values[ctx.ins[0]].dims.len() > 1 {
        return Err(ctx.bad(format!(
            "input must have shape [N] or [N, 1], found [N, {:?}]",
            c.values[ctx.ins[0]].dims
        )));
    }
    let t = ctx.float("threshold")?.ok_or_else(|| {
        ctx.bad("required attribute `threshold` is missing (0.5 on probabilities, 0 on margins)")
    })?;
    let o = c.new_value(ctx.out, DType::I64, vec![], 1);
    c.push(ctx.node, Kernel::Threshold(t), vec![ctx.ins[0]], o);
    Ok(o)
}
