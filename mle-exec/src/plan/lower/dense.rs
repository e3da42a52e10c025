//! Dense layers: `Gemm`, `MatMul` (f32) and `LinearModel` (f64).

use mle_format::DType;

use super::{checked_width, Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Act, Dense, Kernel, ValueId};

/// `Gemm` and `MatMul`: an f32 dense layer with weights `[M, K]` row-major.
pub(super) fn lower_dense(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    ctx.n_in(1).map_err(|e| {
        if op == "MatMul" && ctx.ins.len() == 2 {
            ctx.bad("a runtime right-hand side is not supported; give the weights as attribute `weight` [K, M]")
        } else {
            e
        }
    })?;
    c.float_in(ctx, ctx.ins[0])?;
    let xin = c.coerce(ctx.ins[0], DType::F32);
    let dims = c.values[xin].dims.clone();
    if dims.is_empty() || (op == "Gemm" && dims.len() != 1) {
        return Err(ctx.bad(format!(
            "input must have shape [N, K]{}, found [N, {dims:?}]",
            if op == "MatMul" {
                " (or [N, .., K])"
            } else {
                ""
            }
        )));
    }
    let k = dims[dims.len() - 1];
    let (w, wshape) = ctx
        .tensor_f32(c.file, "weight")?
        .ok_or_else(|| ctx.bad("required attribute `weight` is missing"))?;
    let trans_b = if op == "Gemm" {
        ctx.int("trans_b", Some(1))?
    } else {
        0
    };
    if wshape.len() != 2 {
        return Err(ctx.bad(format!("weight must be rank 2, found shape {wshape:?}")));
    }
    let (m, wk) = if trans_b != 0 {
        (wshape[0], wshape[1])
    } else {
        (wshape[1], wshape[0])
    };
    if wk != k {
        return Err(ctx.bad(format!(
            "weight shape {wshape:?} (trans_b={trans_b}) needs {wk} input features, the input has {k}"
        )));
    }
    let w = if trans_b != 0 {
        w
    } else {
        let mut t = vec![0f32; m * k];
        for i in 0..k {
            for j in 0..m {
                t[j * k + i] = w[i * m + j];
            }
        }
        t
    };
    let bias = match ctx.tensor_f32(c.file, "bias")? {
        None => None,
        Some((b, _)) if b.len() == m => Some(b),
        Some((b, s)) => {
            return Err(ctx.bad(format!(
                "bias has shape {s:?} ({} values), expected {m}",
                b.len()
            )))
        }
    };
    let groups = dims[..dims.len() - 1].iter().product();
    let mut odims = dims.clone();
    if let Some(l) = odims.last_mut() {
        *l = m;
    }
    let width = checked_width(ctx, &odims)?;
    let o = c.new_value(ctx.out, DType::F32, odims, width);
    let d = Dense {
        w,
        bias,
        m,
        k,
        groups,
        act: Act::None,
        packed: None,
    };
    c.push(ctx.node, Kernel::DenseF32(d), vec![xin], o);
    Ok(o)
}

/// `LinearModel`: an f64 dense layer (`coef`, `intercept`).
pub(super) fn lower_linear_model(
    c: &mut Compiler<'_>,
    ctx: &Ctx<'_>,
) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let xin = c.coerce(ctx.ins[0], DType::F64);
    let dims = c.values[xin].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let (coef, cshape) = ctx
        .tensor_f64(c.file, "coef")?
        .ok_or_else(|| ctx.bad("required attribute `coef` is missing"))?;
    let t = match cshape.as_slice() {
        [t, cf] if *cf == f => *t,
        [cf] if *cf == f => 1,
        _ => {
            return Err(ctx.bad(format!(
                "coef has shape {cshape:?}, expected [T, {f}] for {f} input features"
            )))
        }
    };
    let intercept = match ctx.tensor_f64(c.file, "intercept")? {
        None => None,
        Some((b, _)) if b.len() == t => Some(b),
        Some((b, s)) => {
            return Err(ctx.bad(format!(
                "intercept has shape {s:?} ({} values), expected {t}",
                b.len()
            )))
        }
    };
    let o = c.new_value(ctx.out, DType::F64, vec![t], t);
    let d = Dense {
        w: coef,
        bias: intercept,
        m: t,
        k: f,
        groups: 1,
        act: Act::None,
        packed: None,
    };
    c.push(ctx.node, Kernel::DenseF64(d), vec![xin], o);
    Ok(o)
}
