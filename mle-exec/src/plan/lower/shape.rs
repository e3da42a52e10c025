//! Shape and dtype ops: `Concat`, the aliases `Flatten` / `Reshape` / `Identity` (no copy), `Cast`.

use mle_format::DType;

use super::{axis_index, checked_width, Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;

/// `Concat` along `axis`.
pub(super) fn lower_concat(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    if ctx.ins.is_empty() {
        return Err(ctx.bad("expected at least 1 input, found 0"));
    }
    let dt = c.values[ctx.ins[0]].dtype;
    let d0 = c.values[ctx.ins[0]].dims.clone();
    let ax = axis_index(ctx, ctx.int("axis", Some(1))?, d0.len() + 1)?;
    let mut total = 0usize;
    let mut blocks = Vec::with_capacity(ctx.ins.len());
    let inner: usize = d0[ax + 1..].iter().product();
    for &v in &ctx.ins {
        let val = &c.values[v];
        if val.dtype != dt {
            return Err(ctx.bad(format!(
                "input {:?} has dtype {}, the first input has {dt}",
                val.name, val.dtype
            )));
        }
        if val.dims.len() != d0.len()
            || val.dims[..ax] != d0[..ax]
            || val.dims[ax + 1..] != d0[ax + 1..]
        {
            return Err(ctx.bad(format!(
                "input {:?} has shape [N, {:?}], which does not match [N, {d0:?}] outside axis {}",
                val.name,
                val.dims,
                ax + 1
            )));
        }
        total = total.saturating_add(val.dims[ax]);
        blocks.push(val.dims[ax] * inner);
    }
    let mut odims = d0.clone();
    odims[ax] = total;
    let width = checked_width(ctx, &odims)?;
    let outer = d0[..ax].iter().product();
    let o = c.new_value(ctx.out, dt, odims, width);
    c.push(
        ctx.node,
        Kernel::Concat { outer, blocks },
        ctx.ins.clone(),
        o,
    );
    Ok(o)
}

/// `Flatten`, `Identity`, `Reshape`: aliases of their input (no step, no copy).
pub(super) fn lower_alias(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    ctx.n_in(1)?;
    let src = &c.values[ctx.ins[0]];
    let width = src.width;
    let odims = match op {
        "Identity" => src.dims.clone(),
        "Flatten" => vec![width],
        _ => {
            let shape = ctx
                .ints("shape")?
                .ok_or_else(|| ctx.bad("required attribute `shape` is missing"))?;
            reshape_dims(ctx, shape, width)?
        }
    };
    Ok(c.new_alias(ctx.out, ctx.ins[0], odims))
}

/// Reshape target dims from `shape` (`shape[0]` is `-1`, the batch; one more `-1` may be inferred).
fn reshape_dims(ctx: &Ctx<'_>, shape: &[i64], width: usize) -> Result<Vec<usize>, ExecError> {
    if shape.first() != Some(&-1) {
        return Err(ctx.bad(format!(
            "shape {shape:?} must start with -1 (the batch dimension)"
        )));
    }
    let rest = &shape[1..];
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in rest.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(ctx.bad(format!(
                    "shape {shape:?} has more than one -1 after the batch"
                )));
            }
            infer = Some(i);
        } else if d <= 0 {
            return Err(ctx.bad(format!("shape {shape:?} has a non-positive dimension {d}")));
        } else {
            known = known
                .checked_mul(d as usize)
                .filter(|&k| k <= MAX_WIDTH)
                .ok_or_else(|| ctx.bad(format!("shape {shape:?} is too large")))?;
        }
    }
    let mut dims: Vec<usize> = rest.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || width % known != 0 {
            return Err(ctx.bad(format!(
                "cannot reshape {width} values per row into {shape:?}"
            )));
        }
        dims[i] = width / known;
    } else if known != width {
        return Err(ctx.bad(format!(
            "cannot reshape {width} values per row into {shape:?} ({known} values)"
        )));
    }
    Ok(dims)
}

/// `Cast` to f32 or f64 (an alias when the dtype is already the target).
pub(super) fn lower_cast(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    let to = match ctx.string("to")? {
        Some("f32") => DType::F32,
        Some("f64") => DType::F64,
        Some(other) => {
            return Err(ctx.bad(format!(
                "attribute `to` is {other:?}, expected \"f32\" or \"f64\""
            )))
        }
        None => return Err(ctx.bad("required attribute `to` is missing")),
    };
    let src = &c.values[ctx.ins[0]];
    if src.dtype == to {
        let dims = src.dims.clone();
        Ok(c.new_alias(ctx.out, ctx.ins[0], dims))
    } else {
        let dims = src.dims.clone();
        let width = src.width;
        let o = c.new_value(ctx.out, to, dims, width);
        c.push(ctx.node, Kernel::Cast, vec![ctx.ins[0]], o);
        Ok(o)
    }
}
