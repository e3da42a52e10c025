//! Elementwise ops: `Add` `Sub` `Mul` `Div` with numpy broadcasting, and the activations
//! (`Relu` … `Clip`, `Exp`, `Log1p`, `Expm1`).

use mle_format::DType;

use super::{checked_width, Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Act, BinOp, Kernel, Operand, ValueId};

/// `Add` `Sub` `Mul` `Div`: two runtime operands of one rank, or one and the constant `b`;
/// numpy broadcasting through a compile-time index map; `x + 0`, `x · 1` (...) become aliases.
pub(super) fn lower_binary(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    let binop = match op {
        "Add" => BinOp::Add,
        "Sub" => BinOp::Sub,
        "Mul" => BinOp::Mul,
        _ => BinOp::Div,
    };
    let a = ctx
        .ins
        .first()
        .copied()
        .ok_or_else(|| ctx.bad("expected 2 inputs (or 1 input and attribute `b`), found 0"))?;
    let dt = c.float_in(ctx, a)?;
    let a_dims = c.values[a].dims.clone();
    // Full shapes; the batch dimension is `None`.
    let (b, b_full): (Operand, Vec<Option<usize>>) = match (ctx.ins.len(), ctx.tensor_name("b")?) {
        (2, None) => {
            c.float_in(ctx, ctx.ins[1])?;
            let bv = c.coerce(ctx.ins[1], dt);
            let mut s = vec![None];
            s.extend(c.values[bv].dims.iter().map(|&d| Some(d)));
            (Operand::Value(bv), s)
        }
        (1, Some(_)) => {
            let (c, s) = ctx
                .tensor_f64(c.file, "b")?
                .ok_or_else(|| ctx.bad("attribute `b` is missing"))?;
            (Operand::Const(c), s.into_iter().map(Some).collect())
        }
        (k, _) => {
            return Err(ctx.bad(format!(
                "expected 2 inputs, or 1 input and attribute `b`; found {k} input(s)"
            )))
        }
    };
    let mut a_full = vec![None];
    a_full.extend(a_dims.iter().map(|&d| Some(d)));
    let rank = a_full.len().max(b_full.len());
    let b_is_value = matches!(b, Operand::Value(_));
    if b_is_value && b_full.len() != a_full.len() {
        return Err(ctx.bad(format!(
            "runtime operands must have the same rank, found {} and {}",
            a_full.len(),
            b_full.len()
        )));
    }
    if b_full.len() > a_full.len() {
        return Err(ctx.bad(format!(
            "constant `b` of rank {} cannot broadcast against an input of rank {}",
            b_full.len(),
            a_full.len()
        )));
    }
    // Pad b on the left with 1s (numpy).
    let pad = rank - b_full.len();
    let b_pad: Vec<Option<usize>> = std::iter::repeat_n(Some(1), pad).chain(b_full).collect();
    // Output dims (non-batch) and broadcasting.
    if let Some(Some(d)) = b_pad.first() {
        if *d != 1 {
            return Err(ctx.bad(format!(
                "constant `b` has {d} along the batch axis; only 1 can broadcast"
            )));
        }
    }
    let mut odims = Vec::with_capacity(rank - 1);
    for i in 1..rank {
        let da = a_full[i].unwrap_or(1);
        let db = b_pad[i].unwrap_or(1);
        let d = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(ctx.bad(format!(
                "shapes [N, {a_dims:?}] and {:?} do not broadcast (axis {i}: {da} vs {db})",
                &b_pad[1..]
            )));
        };
        odims.push(d);
    }
    let width = checked_width(ctx, &odims)?;
    let a_dims_u: Vec<usize> = a_full[1..].iter().map(|d| d.unwrap_or(1)).collect();
    let b_dims_u: Vec<usize> = b_pad[1..].iter().map(|d| d.unwrap_or(1)).collect();
    c.table_bytes = c
        .table_bytes
        .saturating_add(width.saturating_mul(std::mem::size_of::<(u32, u32)>()));
    if c.table_bytes > c.budget {
        return Err(ctx.bad(format!(
            "broadcasting to [N, {odims:?}] needs tables of {} bytes, over the plan budget of {} bytes for this file",
            c.table_bytes, c.budget
        )));
    }
    let map = broadcast_map(&odims, &a_dims_u, &b_dims_u);
    // Trivial folding: x + 0, x - 0, x * 1, x / 1 with the output shape of x.
    if let Operand::Const(cst) = &b {
        let neutral = match binop {
            BinOp::Add | BinOp::Sub => 0.0,
            BinOp::Mul | BinOp::Div => 1.0,
        };
        if odims == a_dims && cst.iter().all(|&v| v == neutral) {
            let o = c.new_alias(ctx.out, a, odims);
            return Ok(o);
        }
    }
    let o = c.new_value(ctx.out, dt, odims, width);
    let mut inputs = vec![a];
    if let Operand::Value(bv) = b {
        inputs.push(bv);
    }
    c.push(
        ctx.node,
        Kernel::Binary {
            op: binop,
            a: Operand::Value(a),
            b,
            map,
        },
        inputs,
        o,
    );
    Ok(o)
}

/// For each flat index of `out`, the flat indices into `a` and `b` under numpy broadcasting
/// (all three of the same rank; a dimension of 1 broadcasts).
pub(super) fn broadcast_map(out: &[usize], a: &[usize], b: &[usize]) -> Vec<(u32, u32)> {
    let width: usize = out.iter().product();
    let strides = |d: &[usize]| -> Vec<usize> {
        let mut s = vec![0; d.len()];
        let mut acc = 1;
        for i in (0..d.len()).rev() {
            s[i] = if d[i] == 1 { 0 } else { acc };
            acc *= d[i];
        }
        s
    };
    let (sa, sb) = (strides(a), strides(b));
    let mut map = Vec::with_capacity(width);
    let mut idx = vec![0usize; out.len()];
    for _ in 0..width {
        let ja: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let jb: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        map.push((ja as u32, jb as u32));
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    map
}

/// The activations (`Relu` … `Clip`) in the input's dtype, and `Exp`, `Log1p`, `Expm1` in f64.
pub(super) fn lower_activation(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    let op = ctx.node.op.as_str();
    ctx.n_in(1)?;
    let dt = c.float_in(ctx, ctx.ins[0])?;
    let act = match op {
        "Relu" => Act::Relu,
        "LeakyRelu" => Act::LeakyRelu(ctx.float("alpha")?.unwrap_or(0.01)),
        "Sigmoid" => Act::Sigmoid,
        "Tanh" => Act::Tanh,
        "Gelu" => match ctx.string("approximate")?.unwrap_or("none") {
            "none" => Act::GeluErf,
            "tanh" => Act::GeluTanh,
            other => {
                return Err(ctx.bad(format!(
                    "attribute `approximate` is {other:?}, expected \"none\" or \"tanh\""
                )))
            }
        },
        "Silu" => Act::Silu,
        "Clip" => {
            let lo = ctx.float("min")?.unwrap_or(f64::NEG_INFINITY);
            let hi = ctx.float("max")?.unwrap_or(f64::INFINITY);
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(ctx.bad(format!("min {lo} must not exceed max {hi}")));
            }
            Act::Clip(lo, hi)
        }
        "Log1p" => Act::Log1p,
        "Expm1" => Act::Expm1,
        _ => Act::Exp,
    };
    // Exp, Log1p and Expm1 are classical ops: f64.
    let classical = matches!(act, Act::Exp | Act::Log1p | Act::Expm1);
    let xin = if classical {
        c.coerce(ctx.ins[0], DType::F64)
    } else {
        ctx.ins[0]
    };
    let dt = if classical { DType::F64 } else { dt };
    let dims = c.values[xin].dims.clone();
    let width = c.values[xin].width;
    let o = c.new_value(ctx.out, dt, dims, width);
    c.push(ctx.node, Kernel::Unary(act), vec![xin], o);
    Ok(o)
}
