//! The default-domain (`ai.onnx`) operators of small dense nets and converters, constant
//! folding of shape arithmetic, and the fused decompositions (GELU through `Erf`, layer
//! normalization through `ReduceMean`/`Pow`/`Sqrt`).

use mle_format::{Attr, ClassLabels, DType};

use super::graph::{cols_use, per_row, shape_to_const, ColKind, Ctx, NodeCx, Role, Rt, SDim, Val};
use super::proto::data_type as dt;
use super::tensor::{element_count, Const, Data, MAX_FOLDED_ELEMENTS, MAX_RANK};
use crate::error::ImportError;

type R<T> = Result<T, ImportError>;

fn norm_axis(ctx: &Ctx<'_>, nc: &NodeCx<'_>, axis: i64, rank: usize, key: &str) -> R<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(ctx.invalid(
            nc,
            key,
            format!("axis {axis} is outside a rank-{rank} value"),
        ));
    }
    Ok(a as usize)
}

fn alias(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, x: Rt) -> R<()> {
    ctx.define(nc, 0, Val::Rt(x))
}

/// `Identity`, `Dropout` (inference).
pub fn identity(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    if nc.n.op_type == "Dropout" {
        ctx.no_outputs_from(nc, 1)?;
        if let Some(Val::Const(t)) = ctx.opt_input(nc, 2)? {
            if t.to_i64().is_some_and(|v| v.iter().any(|&b| b != 0)) {
                return Err(ctx.unsupported(nc, "training_mode = true"));
            }
        }
    }
    let v = ctx.input(nc, 0)?;
    ctx.define(nc, 0, v)
}

/// `Constant`.
pub fn constant(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let c = if let Some(t) = ctx.a_tensor(nc, "value")? {
        t
    } else if let Some(f) = ctx.a_float(nc, "value_float")? {
        Const::float(dt::FLOAT, vec![], vec![f64::from(f)])
    } else if let Some(v) = ctx.a_floats(nc, "value_floats")? {
        Const::float(
            dt::FLOAT,
            vec![v.len()],
            v.iter().map(|&x| f64::from(x)).collect(),
        )
    } else if let Some(i) = ctx.a_int(nc, "value_int")? {
        Const::ints(vec![], vec![i])
    } else if let Some(v) = ctx.a_ints(nc, "value_ints")? {
        Const::ints(vec![v.len()], v)
    } else {
        return Err(ctx.unsupported(
            nc,
            "only value, value_float(s) and value_int(s) are supported",
        ));
    };
    ctx.define(nc, 0, Val::Const(c))
}

/// `Cast`.
pub fn cast(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let to = ctx
        .a_int(nc, "to")?
        .ok_or_else(|| ctx.invalid(nc, "to", "required attribute missing"))? as i32;
    match ctx.input(nc, 0)? {
        Val::Rt(x) => {
            if x.role == Role::Int && to == dt::INT64 {
                return alias(ctx, nc, x);
            }
            if matches!(x.role, Role::Label(_)) || x.dtype == DType::I64 {
                // A class index cast to int64 or string stays the label.
                return if matches!(to, dt::INT64 | dt::STRING) {
                    alias(ctx, nc, x)
                } else {
                    Err(ctx.unsupported(nc, format!("a class index cast to {}", dt::name(to))))
                };
            }
            let (want, f64_) = match to {
                dt::FLOAT => (DType::F32, false),
                dt::DOUBLE => (DType::F64, true),
                t => {
                    return Err(
                        ctx.unsupported(nc, format!("a float value cast to {}", dt::name(t)))
                    )
                }
            };
            let mut y = if x.dtype == want {
                x.clone()
            } else {
                let name = ctx.emit(
                    nc,
                    "Cast",
                    &[&x.name],
                    vec![("to", Attr::Str(want.name().into()))],
                );
                Rt {
                    name,
                    dtype: want,
                    ..x.clone()
                }
            };
            y.onnx_f64 = f64_;
            y.role = Role::Plain;
            alias(ctx, nc, y)
        }
        Val::Const(c) => {
            let out = match (to, c.to_f64()) {
                (dt::FLOAT | dt::DOUBLE, Some(v)) => Const::float(to, c.dims.clone(), v),
                (dt::INT64 | dt::INT32, Some(v)) => Const::ints(
                    c.dims.clone(),
                    v.iter().map(|&x| x.trunc() as i64).collect(),
                ),
                _ => {
                    return Err(ctx.unsupported(nc, format!("a constant cast to {}", dt::name(to))))
                }
            };
            ctx.define(nc, 0, Val::Const(out))
        }
        v @ Val::Shape { .. } if matches!(to, dt::INT64) => ctx.define(nc, 0, v),
        Val::Shape { .. } => {
            Err(ctx.unsupported(nc, format!("a shape value cast to {}", dt::name(to))))
        }
        v @ Val::Cols {
            kind: ColKind::Int, ..
        } if to == dt::INT64 => ctx.define(nc, 0, v),
        v @ Val::Cols {
            kind: ColKind::Str, ..
        } if to == dt::STRING => ctx.define(nc, 0, v),
        Val::Cols {
            kind: ColKind::Int,
            cols,
        } if matches!(to, dt::FLOAT | dt::DOUBLE) => {
            let y = ctx.numeric_cols(nc.label(), &cols, to == dt::DOUBLE)?;
            ctx.define(nc, 0, Val::Rt(y))
        }
        Val::Cols { kind, .. } => Err(ctx.unsupported(
            nc,
            format!(
                "a{} input cast to {}",
                if kind == ColKind::Str {
                    " string"
                } else {
                    "n int64"
                },
                dt::name(to)
            ),
        )),
    }
}

// ----- elementwise --------------------------------------------------------------------------

/// Numpy broadcasting of two shapes, or `None`.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn fold_binary(ctx: &Ctx<'_>, nc: &NodeCx<'_>, op: &str, a: &Const, b: &Const) -> R<Const> {
    let shape = broadcast(&a.dims, &b.dims).ok_or_else(|| {
        ctx.invalid(
            nc,
            "input",
            format!("shapes {:?} and {:?} do not broadcast", a.dims, b.dims),
        )
    })?;
    let n = element_count(&shape)
        .filter(|&n| n <= MAX_FOLDED_ELEMENTS)
        .ok_or_else(|| ctx.unsupported(nc, format!("folding a constant of shape {shape:?} (at most {MAX_FOLDED_ELEMENTS} elements)")))?;
    let index = |dims: &[usize], flat: usize| -> usize {
        // Map an output index onto a broadcast input.
        let r = shape.len();
        let mut rem = flat;
        let mut idx = 0;
        let mut stride = 1;
        for i in (0..r).rev() {
            let d = shape[i];
            let k = rem % d.max(1);
            rem /= d.max(1);
            if i + dims.len() >= r {
                let dd = dims[i + dims.len() - r];
                if dd != 1 {
                    idx += k * stride;
                }
                stride *= dd;
            }
        }
        idx
    };
    let ints = matches!((&a.data, &b.data), (Data::I64(_), Data::I64(_)));
    if ints {
        let (Some(x), Some(y)) = (a.to_i64(), b.to_i64()) else {
            return Err(ctx.unsupported(nc, "mixed constant types"));
        };
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let (p, q) = (x[index(&a.dims, i)], y[index(&b.dims, i)]);
            v.push(
                match op {
                    "Add" => p.checked_add(q),
                    "Sub" => p.checked_sub(q),
                    "Mul" => p.checked_mul(q),
                    _ => p.checked_div(q),
                }
                .ok_or_else(|| {
                    ctx.invalid(
                        nc,
                        "input",
                        format!("integer {op} of {p} and {q} overflows"),
                    )
                })?,
            );
        }
        return Ok(Const::ints(shape, v));
    }
    let (Some(x), Some(y)) = (a.to_f64(), b.to_f64()) else {
        return Err(ctx.unsupported(nc, "string constants in arithmetic"));
    };
    let f32_ = a.elem != dt::DOUBLE;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let (p, q) = (x[index(&a.dims, i)], y[index(&b.dims, i)]);
        let r = if f32_ {
            let (p, q) = (p as f32, q as f32);
            f64::from(match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            })
        } else {
            match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            }
        };
        v.push(r);
    }
    Ok(Const::float(a.elem, shape, v))
}

/// Checks that constant `c` broadcasts onto runtime `x` without growing it.
fn const_fits(ctx: &Ctx<'_>, nc: &NodeCx<'_>, x: &Rt, c: &Const) -> R<()> {
    let ok = c.dims.len() <= x.rank()
        && c.dims
            .iter()
            .rev()
            .zip(x.dims.iter().rev())
            .enumerate()
            .all(|(i, (&cd, &xd))| {
                let batch = i + 1 == x.rank();
                if batch {
                    cd == 1
                } else {
                    cd == 1 || cd as i64 == xd
                }
            });
    if !ok {
        return Err(ctx.unsupported(
            nc,
            format!("a constant of shape {:?} broadcast onto a value of shape {:?} (it must not change the shape)", c.dims, x.dims),
        ));
    }
    if c.to_f64().is_none() {
        return Err(ctx.unsupported(nc, "a string constant in arithmetic"));
    }
    Ok(())
}

/// `y = x op c` with a constant `c`.
pub fn emit_const_op(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, op: &str, x: &Rt, c: &Const) -> R<Rt> {
    const_fits(ctx, nc, x, c)?;
    let t = ctx.const_tensor(c, x.dtype)?;
    let name = ctx.emit(nc, op, &[&x.name], vec![("b", Attr::Tensor(t))]);
    Ok(x.derived(name, x.dims.clone()))
}

/// `Add`, `Sub`, `Mul`, `Div`.
pub fn binary(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let op = nc.n.op_type.as_str();
    let a = ctx.input(nc, 0)?;
    let b = ctx.input(nc, 1)?;
    for (k, v) in [(0, &a), (1, &b)] {
        if let Val::Cols { kind, .. } = v {
            return Err(ctx.unsupported(nc, cols_use(k, *kind)));
        }
    }
    let as_const = |v: &Val| match v {
        Val::Const(c) => Some(c.clone()),
        Val::Shape { dims, scalar } => shape_to_const(dims, *scalar),
        Val::Rt(_) | Val::Cols { .. } => None,
    };
    match (&a, &b) {
        (Val::Rt(x), Val::Rt(y)) => {
            for (k, v) in [(0, x), (1, y)] {
                if v.dtype == DType::I64 || matches!(v.role, Role::Label(_) | Role::Int) {
                    return Err(ctx.unsupported(nc, format!("input[{k}] is an integer value")));
                }
            }
            if x.rank() != y.rank() {
                return Err(ctx.unsupported(
                    nc,
                    format!("runtime inputs of ranks {} and {}", x.rank(), y.rank()),
                ));
            }
            let xd: Vec<usize> = x.dims.iter().skip(1).map(|&d| d as usize).collect();
            let yd: Vec<usize> = y.dims.iter().skip(1).map(|&d| d as usize).collect();
            let out = broadcast(&xd, &yd).ok_or_else(|| {
                ctx.invalid(
                    nc,
                    "input",
                    format!("shapes {:?} and {:?} do not broadcast", x.dims, y.dims),
                )
            })?;
            let (xn, yn) = (x.name.clone(), y.name.clone());
            let name = ctx.emit(nc, op, &[&xn, &yn], vec![]);
            let mut dims = vec![-1];
            dims.extend(out.iter().map(|&d| d as i64));
            let dtype = if x.dtype == DType::F64 || y.dtype == DType::F64 {
                DType::F64
            } else {
                DType::F32
            };
            let r = Rt {
                dtype,
                ..x.derived(name, dims)
            };
            ctx.define(nc, 0, Val::Rt(r))
        }
        (Val::Rt(_), _) => {
            let x = ctx.float_input(nc, 0)?;
            let c = as_const(&b)
                .ok_or_else(|| ctx.unsupported(nc, "a batch-dependent shape in arithmetic"))?;
            let y = emit_const_op(ctx, nc, op, &x, &c)?;
            let _ = x;
            ctx.define(nc, 0, Val::Rt(y))
        }
        (_, Val::Rt(_)) => {
            let y = ctx.float_input(nc, 1)?;
            let c = as_const(&a)
                .ok_or_else(|| ctx.unsupported(nc, "a batch-dependent shape in arithmetic"))?;
            let r = match op {
                "Add" | "Mul" => emit_const_op(ctx, nc, op, &y, &c)?,
                "Sub" => {
                    // c - y = (-y) + c, exact.
                    let neg = Const::float(dt::FLOAT, vec![], vec![-1.0]);
                    let ny = emit_const_op(ctx, nc, "Mul", &y, &neg)?;
                    emit_const_op(ctx, nc, "Add", &ny, &c)?
                }
                _ => {
                    return Err(ctx.unsupported(
                        nc,
                        "a constant divided by a runtime value (no reciprocal op)",
                    ))
                }
            };
            ctx.define(nc, 0, Val::Rt(r))
        }
        _ => {
            // Shape arithmetic keeps the batch marker only through Identity-like use.
            let (Some(p), Some(q)) = (as_const(&a), as_const(&b)) else {
                return Err(ctx.unsupported(nc, "arithmetic on a batch-dependent shape"));
            };
            let c = fold_binary(ctx, nc, op, &p, &q)?;
            ctx.define(nc, 0, Val::Const(c))
        }
    }
}

/// `Neg`: `x * -1` (exact).
pub fn neg(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    match ctx.input(nc, 0)? {
        Val::Const(c) => {
            let m = Const::float(c.elem, vec![], vec![-1.0]);
            let c = fold_binary(
                ctx,
                nc,
                "Mul",
                &c,
                &if c.to_i64().is_some() {
                    Const::ints(vec![], vec![-1])
                } else {
                    m
                },
            )?;
            ctx.define(nc, 0, Val::Const(c))
        }
        _ => {
            let x = ctx.float_input(nc, 0)?;
            let y = emit_const_op(
                ctx,
                nc,
                "Mul",
                &x,
                &Const::float(dt::FLOAT, vec![], vec![-1.0]),
            )?;
            ctx.define(nc, 0, Val::Rt(y))
        }
    }
}

/// Activations without parameters, `LeakyRelu`, `Gelu`, `Exp`.
pub fn unary(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let op = nc.n.op_type.as_str();
    let mut attrs = vec![];
    match op {
        "LeakyRelu" => {
            let a = ctx.a_float(nc, "alpha")?.unwrap_or(0.01);
            attrs.push(("alpha", Attr::Float(f64::from(a))));
        }
        "Gelu" => {
            let a = ctx
                .a_str(nc, "approximate")?
                .unwrap_or_else(|| "none".into());
            if a != "none" && a != "tanh" {
                return Err(ctx.invalid(
                    nc,
                    "approximate",
                    format!("{a:?} (expected none or tanh)"),
                ));
            }
            attrs.push(("approximate", Attr::Str(a)));
        }
        _ => {}
    }
    let name = ctx.emit(nc, op, &[&x.name], attrs);
    let mut y = x.derived(name, x.dims.clone());
    if op == "Exp" {
        y.dtype = DType::F64;
    }
    ctx.define(nc, 0, Val::Rt(y))
}

/// `Softmax`, `LogSoftmax`.
pub fn softmax(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let default = if nc.opset < 13 { 1 } else { -1 };
    let axis = ctx.a_int(nc, "axis")?.unwrap_or(default);
    let a = norm_axis(ctx, nc, axis, x.rank(), "axis")?;
    if a == 0 {
        return Err(ctx.unsupported(nc, "a softmax over the batch axis"));
    }
    if nc.opset < 13 && a + 1 != x.rank() {
        return Err(ctx.unsupported(
            nc,
            "before opset 13 a softmax not on the last axis flattens the trailing axes",
        ));
    }
    let rel = a as i64 - x.rank() as i64;
    let name = ctx.emit(
        nc,
        &nc.n.op_type,
        &[&x.name],
        vec![("axis", Attr::Int(rel))],
    );
    ctx.define(nc, 0, Val::Rt(x.derived(name, x.dims.clone())))
}

/// `ArgMax` over the classes of `[N, C]`: a class index labelled `0..C`.
pub fn argmax(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let axis = ctx.a_int(nc, "axis")?.unwrap_or(0);
    if x.rank() != 2 || norm_axis(ctx, nc, axis, x.rank(), "axis")? != 1 {
        return Err(ctx.unsupported(
            nc,
            format!(
                "ArgMax over axis {axis} of shape {:?} (only the classes of [N, C])",
                x.dims
            ),
        ));
    }
    if ctx.a_int(nc, "select_last_index")?.unwrap_or(0) != 0 {
        return Err(ctx.unsupported(nc, "select_last_index = 1"));
    }
    let c = x.dims[1];
    let name = ctx.emit(nc, "ArgMax", &[&x.name], vec![]);
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name,
            dtype: DType::I64,
            dims: vec![-1],
            onnx_f64: false,
            role: Role::Label(ClassLabels::Int((0..c).collect())),
        }),
    )
}

/// `Clip` (bounds as attributes before opset 11, constant inputs after).
pub fn clip(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let bound = |ctx: &Ctx<'_>, k: usize, key: &str| -> R<Option<f64>> {
        if nc.opset < 11 {
            return Ok(ctx.a_float(nc, key)?.map(f64::from));
        }
        match ctx.opt_const_input(nc, k)? {
            None => Ok(None),
            Some(c) => match c.to_f64().as_deref() {
                Some([v]) => Ok(Some(*v)),
                _ => Err(ctx.invalid(nc, &format!("input[{k}]"), "expected a scalar bound")),
            },
        }
    };
    let lo = bound(ctx, 1, "min")?;
    let hi = bound(ctx, 2, "max")?;
    let (l, h) = (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY));
    if l.is_nan() || h.is_nan() || l > h {
        return Err(ctx.unsupported(nc, format!("bounds [{l}, {h}]")));
    }
    let mut attrs = vec![];
    if let Some(l) = lo {
        attrs.push(("min", Attr::Float(l)));
    }
    if let Some(h) = hi {
        attrs.push(("max", Attr::Float(h)));
    }
    let name = ctx.emit(nc, "Clip", &[&x.name], attrs);
    ctx.define(nc, 0, Val::Rt(x.derived(name, x.dims.clone())))
}

// ----- dense --------------------------------------------------------------------------------

fn f32s(c: &Const) -> Option<Vec<f32>> {
    c.to_f64().map(|v| v.iter().map(|&x| x as f32).collect())
}

/// `Gemm` with constant `B` (and `C`).
pub fn gemm(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let w = ctx.const_input(nc, 1)?;
    let c = ctx.opt_const_input(nc, 2)?;
    if ctx.a_int(nc, "transA")?.unwrap_or(0) != 0 {
        return Err(ctx.unsupported(nc, "transA = 1"));
    }
    let trans_b = ctx.a_int(nc, "transB")?.unwrap_or(0) != 0;
    let alpha = ctx.a_float(nc, "alpha")?.unwrap_or(1.0);
    let beta = ctx.a_float(nc, "beta")?.unwrap_or(1.0);
    let [k_in] = x.dims.get(1..).unwrap_or_default() else {
        return Err(ctx.unsupported(
            nc,
            format!("input of shape {:?} (Gemm takes [N, K])", x.dims),
        ));
    };
    let &[r0, r1] = w.dims.as_slice() else {
        return Err(ctx.invalid(
            nc,
            "input[1]",
            format!("B has shape {:?}, expected rank 2", w.dims),
        ));
    };
    let (k, m) = if trans_b { (r1, r0) } else { (r0, r1) };
    if k as i64 != *k_in {
        return Err(ctx.invalid(
            nc,
            "input[1]",
            format!("B has shape {:?}, the input has {k_in} columns", w.dims),
        ));
    }
    let mut wv = f32s(&w).ok_or_else(|| ctx.invalid(nc, "input[1]", "not numeric"))?;
    if alpha != 1.0 {
        wv.iter_mut().for_each(|v| *v *= alpha);
    }
    let wt = ctx.weight(&w.dims, wv)?;
    let mut attrs = vec![
        ("weight", Attr::Tensor(wt)),
        ("trans_b", Attr::Int(i64::from(trans_b))),
    ];
    if let Some(c) = c {
        let ok =
            matches!(c.dims.as_slice(), [] | [1] | [1, 1]) || c.dims == [m] || c.dims == [1, m];
        if !ok {
            return Err(ctx.unsupported(
                nc,
                format!(
                    "C of shape {:?} (a bias of [M] or [1, M] for M = {m})",
                    c.dims
                ),
            ));
        }
        let v = f32s(&c).ok_or_else(|| ctx.invalid(nc, "input[2]", "not numeric"))?;
        let bias: Vec<f32> = (0..m)
            .map(|j| {
                v.get(if v.len() == 1 { 0 } else { j })
                    .copied()
                    .unwrap_or(0.0)
                    * beta
            })
            .collect();
        let bt = ctx.weight(&[m], bias)?;
        attrs.push(("bias", Attr::Tensor(bt)));
    }
    ctx.model_ops.push("Gemm".into());
    let name = ctx.emit(nc, "Gemm", &[&x.name], attrs);
    let y = Rt {
        dtype: DType::F32,
        ..x.derived(name, vec![-1, m as i64])
    };
    ctx.define(nc, 0, Val::Rt(y))
}

/// `MatMul` by a constant `[K, M]`.
pub fn matmul(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let w = ctx.const_input(nc, 1)?;
    let &[k, m] = w.dims.as_slice() else {
        return Err(ctx.unsupported(
            nc,
            format!(
                "a right-hand side of shape {:?} (only a constant [K, M])",
                w.dims
            ),
        ));
    };
    if x.rank() < 2 || x.dims.last() != Some(&(k as i64)) {
        return Err(ctx.invalid(
            nc,
            "input[1]",
            format!("shape {:?} for an input of shape {:?}", w.dims, x.dims),
        ));
    }
    let wv = f32s(&w).ok_or_else(|| ctx.invalid(nc, "input[1]", "not numeric"))?;
    let wt = ctx.weight(&w.dims, wv)?;
    ctx.model_ops.push("MatMul".into());
    let name = ctx.emit(nc, "MatMul", &[&x.name], vec![("weight", Attr::Tensor(wt))]);
    let mut dims = x.dims.clone();
    if let Some(l) = dims.last_mut() {
        *l = m as i64;
    }
    let y = Rt {
        dtype: DType::F32,
        ..x.derived(name, dims)
    };
    ctx.define(nc, 0, Val::Rt(y))
}

fn channel_tensor(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, k: usize, len: usize) -> R<Option<String>> {
    let Some(c) = ctx.opt_const_input(nc, k)? else {
        return Ok(None);
    };
    if c.len() != len {
        return Err(ctx.invalid(
            nc,
            &format!("input[{k}]"),
            format!("{} values, expected {len}", c.len()),
        ));
    }
    let v = f32s(&c).ok_or_else(|| ctx.invalid(nc, &format!("input[{k}]"), "not numeric"))?;
    ctx.weight(&[len], v).map(Some)
}

/// `LayerNormalization` over the last axis.
pub fn layer_norm(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let axis = ctx.a_int(nc, "axis")?.unwrap_or(-1);
    if norm_axis(ctx, nc, axis, x.rank(), "axis")? + 1 != x.rank() || x.rank() < 2 {
        return Err(ctx.unsupported(nc, "normalization over more than the last axis"));
    }
    ctx.no_outputs_from(nc, 1)?;
    let d = *x.dims.last().unwrap_or(&1) as usize;
    let eps = ctx.a_float(nc, "epsilon")?.unwrap_or(1e-5);
    let mut attrs = vec![("epsilon", Attr::Float(f64::from(eps)))];
    if let Some(w) = channel_tensor(ctx, nc, 1, d)? {
        attrs.push(("weight", Attr::Tensor(w)));
    }
    if let Some(b) = channel_tensor(ctx, nc, 2, d)? {
        attrs.push(("bias", Attr::Tensor(b)));
    }
    let name = ctx.emit(nc, "LayerNorm", &[&x.name], attrs);
    ctx.define(nc, 0, Val::Rt(x.derived(name, x.dims.clone())))
}

/// `BatchNormalization` in inference mode.
pub fn batch_norm(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    if ctx.a_int(nc, "training_mode")?.unwrap_or(0) != 0 {
        return Err(ctx.unsupported(nc, "training_mode = 1"));
    }
    ctx.no_outputs_from(nc, 1)?;
    let Some(&c) = x.dims.get(1) else {
        return Err(ctx.unsupported(nc, "an input without a channel axis"));
    };
    let c = c as usize;
    let eps = ctx.a_float(nc, "epsilon")?.unwrap_or(1e-5);
    let mut attrs = vec![("epsilon", Attr::Float(f64::from(eps)))];
    for (k, key) in [(1, "weight"), (2, "bias"), (3, "mean"), (4, "var")] {
        let t = channel_tensor(ctx, nc, k, c)?
            .ok_or_else(|| ctx.invalid(nc, &format!("input[{k}]"), "required input missing"))?;
        attrs.push((key, Attr::Tensor(t)));
    }
    let name = ctx.emit(nc, "BatchNorm", &[&x.name], attrs);
    ctx.define(nc, 0, Val::Rt(x.derived(name, x.dims.clone())))
}

// ----- shapes -------------------------------------------------------------------------------

/// Emits a reshape of `x` to `dims` (batch first), or aliases when unchanged.
fn reshape_to(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, x: Rt, dims: Vec<i64>) -> R<()> {
    let before = per_row(&x.dims);
    let after = per_row(&dims);
    if before.is_none() || before != after || dims.len() > MAX_RANK {
        return Err(ctx.invalid(
            nc,
            "shape",
            format!("{:?} cannot hold a value of shape {:?}", dims, x.dims),
        ));
    }
    if dims == x.dims || matches!(x.role, Role::Label(_)) || x.dtype == DType::I64 {
        // Labels keep their role: their shape is fixed at the output.
        return alias(
            ctx,
            nc,
            Rt {
                dims: if matches!(x.role, Role::Label(_)) {
                    x.dims.clone()
                } else {
                    dims
                },
                ..x
            },
        );
    }
    let name = ctx.emit(
        nc,
        "Reshape",
        &[&x.name],
        vec![("shape", Attr::Ints(dims.clone()))],
    );
    alias(ctx, nc, x.derived(name, dims))
}

fn is_label(x: &Rt) -> bool {
    matches!(x.role, Role::Label(_)) || x.dtype == DType::I64
}

/// `Reshape` by a constant or folded shape.
pub fn reshape(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let shape: Vec<SDim> = match ctx.input(nc, 1)? {
        Val::Shape { dims, .. } => dims,
        Val::Const(c) => c
            .to_i64()
            .ok_or_else(|| ctx.invalid(nc, "input[1]", "the shape is not int64"))?
            .iter()
            .map(|&d| SDim::Known(d))
            .collect(),
        Val::Rt(_) => return Err(ctx.unsupported(nc, "a shape computed at run time")),
        Val::Cols { kind, .. } => return Err(ctx.unsupported(nc, cols_use(1, kind))),
    };
    match ctx.input(nc, 0)? {
        Val::Rt(x) => {
            if is_label(&x) {
                return alias(ctx, nc, x);
            }
            let allowzero = ctx.a_int(nc, "allowzero")?.unwrap_or(0) != 0;
            let mut out: Vec<Option<i64>> = Vec::with_capacity(shape.len());
            let mut batch_at = None;
            for (i, d) in shape.iter().enumerate() {
                match *d {
                    SDim::Batch => {
                        batch_at = Some(i);
                        out.push(Some(-1));
                    }
                    SDim::Known(0) if !allowzero => match x.dims.get(i) {
                        Some(-1) => {
                            batch_at = Some(i);
                            out.push(Some(-1));
                        }
                        Some(&v) => out.push(Some(v)),
                        None => {
                            return Err(ctx.invalid(
                                nc,
                                "input[1]",
                                format!("entry {i} copies a dimension the input lacks"),
                            ))
                        }
                    },
                    SDim::Known(-1) => out.push(None),
                    SDim::Known(v) if v >= 1 => out.push(Some(v)),
                    SDim::Known(v) => {
                        return Err(ctx.invalid(nc, "input[1]", format!("entry {i} = {v}")))
                    }
                }
            }
            let infer = out.iter().filter(|d| d.is_none()).count();
            let per_row =
                per_row(&x.dims).ok_or_else(|| ctx.invalid(nc, "input[0]", "shape overflows"))?;
            let dims: Vec<i64> = match (batch_at, infer) {
                (Some(0), 0) => out.iter().map(|d| d.unwrap_or(-1)).collect(),
                (Some(0), 1) => {
                    let known = out
                        .iter()
                        .skip(1)
                        .flatten()
                        .try_fold(1i64, |a, &d| a.checked_mul(d))
                        .unwrap_or(0);
                    if known <= 0 || per_row % known != 0 {
                        return Err(ctx.invalid(
                            nc,
                            "input[1]",
                            format!("cannot infer a dimension of {:?} from {:?}", shape, x.dims),
                        ));
                    }
                    out.iter().map(|d| d.unwrap_or(per_row / known)).collect()
                }
                (None, 1) if out.first() == Some(&None) => {
                    // [-1, known...]: the batch is inferred when the rest holds a row.
                    let known = out
                        .iter()
                        .skip(1)
                        .flatten()
                        .try_fold(1i64, |a, &d| a.checked_mul(d));
                    if known != Some(per_row) {
                        return Err(ctx.unsupported(
                            nc,
                            format!("a reshape to {shape:?} that moves data across the batch"),
                        ));
                    }
                    out.iter().map(|d| d.unwrap_or(-1)).collect()
                }
                _ => {
                    return Err(ctx.unsupported(
                        nc,
                        format!("a reshape to {shape:?} that does not keep the batch first"),
                    ))
                }
            };
            reshape_to(ctx, nc, x, dims)
        }
        Val::Const(c) => {
            let n = c.len();
            let mut dims: Vec<Option<usize>> = Vec::new();
            for (i, d) in shape.iter().enumerate() {
                dims.push(match *d {
                    SDim::Known(0) => Some(*c.dims.get(i).ok_or_else(|| {
                        ctx.invalid(nc, "input[1]", "copies a missing dimension")
                    })?),
                    SDim::Known(-1) => None,
                    SDim::Known(v) if v > 0 => Some(v as usize),
                    _ => {
                        return Err(
                            ctx.unsupported(nc, "reshaping a constant by a batch-dependent shape")
                        )
                    }
                });
            }
            let known: usize = dims
                .iter()
                .flatten()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(0);
            let dims: Vec<usize> = dims
                .iter()
                .map(|d| d.unwrap_or(n.checked_div(known).unwrap_or(0)))
                .collect();
            if element_count(&dims) != Some(n) {
                return Err(ctx.invalid(
                    nc,
                    "input[1]",
                    format!("shape {dims:?} for {n} elements"),
                ));
            }
            ctx.define(nc, 0, Val::Const(Const { dims, ..c }))
        }
        Val::Shape { .. } => Err(ctx.unsupported(nc, "reshaping a shape value")),
        Val::Cols { kind, .. } => Err(ctx.unsupported(nc, cols_use(0, kind))),
    }
}

fn axes(ctx: &Ctx<'_>, nc: &NodeCx<'_>, from_input: bool) -> R<Option<Vec<i64>>> {
    if from_input {
        Ok(match ctx.opt_const_input(nc, 1)? {
            Some(c) => Some(
                c.to_i64()
                    .ok_or_else(|| ctx.invalid(nc, "input[1]", "axes are not int64"))?
                    .to_vec(),
            ),
            None => None,
        })
    } else {
        ctx.a_ints(nc, "axes")
    }
}

/// `Flatten`.
pub fn flatten(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let x = ctx.float_input(nc, 0)?;
    let axis = ctx.a_int(nc, "axis")?.unwrap_or(1);
    if norm_axis(ctx, nc, axis, x.rank().max(1), "axis").ok() != Some(1)
        && !(axis == x.rank() as i64 && x.rank() == 1)
    {
        return Err(ctx.unsupported(nc, format!("axis {axis} (only 1 keeps the batch)")));
    }
    let per = per_row(&x.dims).ok_or_else(|| ctx.invalid(nc, "input[0]", "shape overflows"))?;
    reshape_to(ctx, nc, x, vec![-1, per])
}

/// `Squeeze` / `Unsqueeze` (axes as attribute before opset 13, input after).
pub fn squeeze(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, unsqueeze: bool) -> R<()> {
    let ax = axes(ctx, nc, nc.opset >= 13)?;
    match ctx.input(nc, 0)? {
        Val::Rt(x) => {
            let Some(ax) = ax else {
                return Err(ctx.unsupported(
                    nc,
                    "no axes (squeezing every unit axis could squeeze the batch)",
                ));
            };
            let rank = if unsqueeze {
                x.rank() + ax.len()
            } else {
                x.rank()
            };
            let mut a = Vec::new();
            for &v in &ax {
                let n = norm_axis(ctx, nc, v, rank, "axes")?;
                if n == 0 {
                    return Err(ctx.unsupported(nc, "an axis before the batch"));
                }
                a.push(n);
            }
            let dims: Vec<i64> = if unsqueeze {
                let mut out = Vec::with_capacity(rank);
                let mut src = x.dims.iter();
                for i in 0..rank {
                    if a.contains(&i) {
                        out.push(1);
                    } else {
                        out.push(*src.next().unwrap_or(&1));
                    }
                }
                out
            } else {
                if a.iter().any(|&i| x.dims.get(i) != Some(&1)) {
                    return Err(ctx.invalid(
                        nc,
                        "axes",
                        format!("{ax:?} includes a dimension of {:?} that is not 1", x.dims),
                    ));
                }
                x.dims
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !a.contains(i))
                    .map(|(_, &d)| d)
                    .collect()
            };
            if is_label(&x) {
                return alias(ctx, nc, x);
            }
            reshape_to(ctx, nc, x, dims)
        }
        Val::Const(c) => {
            let rank = if unsqueeze {
                c.dims.len() + ax.as_ref().map_or(0, Vec::len)
            } else {
                c.dims.len()
            };
            let dims: Vec<usize> = match ax {
                Some(ax) => {
                    let a: Vec<usize> = ax
                        .iter()
                        .map(|&v| norm_axis(ctx, nc, v, rank, "axes"))
                        .collect::<R<_>>()?;
                    if unsqueeze {
                        let mut src = c.dims.iter();
                        (0..rank)
                            .map(|i| {
                                if a.contains(&i) {
                                    1
                                } else {
                                    *src.next().unwrap_or(&1)
                                }
                            })
                            .collect()
                    } else {
                        c.dims
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !a.contains(i))
                            .map(|(_, &d)| d)
                            .collect()
                    }
                }
                None if !unsqueeze => c.dims.iter().copied().filter(|&d| d != 1).collect(),
                None => return Err(ctx.invalid(nc, "axes", "required")),
            };
            if element_count(&dims) != Some(c.len()) || dims.len() > MAX_RANK {
                return Err(ctx.invalid(nc, "axes", "invalid for the constant's shape"));
            }
            ctx.define(nc, 0, Val::Const(Const { dims, ..c }))
        }
        Val::Shape { dims, scalar } => {
            // A scalar shape entry unsqueezed to [1] (or a [1] squeezed to a scalar).
            if unsqueeze && scalar {
                ctx.define(
                    nc,
                    0,
                    Val::Shape {
                        dims,
                        scalar: false,
                    },
                )
            } else if !unsqueeze && dims.len() == 1 {
                ctx.define(nc, 0, Val::Shape { dims, scalar: true })
            } else {
                Err(ctx.unsupported(nc, "this use on a shape value"))
            }
        }
        Val::Cols { kind, .. } => Err(ctx.unsupported(nc, cols_use(0, kind))),
    }
}

/// `Shape` (with `start` / `end` from opset 15).
pub fn shape(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let dims: Vec<SDim> = match ctx.input(nc, 0)? {
        Val::Rt(x) => x
            .dims
            .iter()
            .map(|&d| if d < 0 { SDim::Batch } else { SDim::Known(d) })
            .collect(),
        Val::Const(c) => c.dims.iter().map(|&d| SDim::Known(d as i64)).collect(),
        Val::Shape { dims, scalar } => {
            vec![SDim::Known(if scalar { 0 } else { dims.len() as i64 })]
                .into_iter()
                .take(usize::from(!scalar))
                .collect()
        }
        Val::Cols { cols, .. } => vec![SDim::Batch, SDim::Known(cols.len() as i64)],
    };
    let r = dims.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(ctx.a_int(nc, "start")?.unwrap_or(0));
    let end = clampi(ctx.a_int(nc, "end")?.unwrap_or(r));
    let dims = dims.get(start..end.max(start)).unwrap_or_default().to_vec();
    ctx.define(
        nc,
        0,
        Val::Shape {
            dims,
            scalar: false,
        },
    )
}

/// `Gather` on constants and shape values.
pub fn gather(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let idx = ctx.const_input(nc, 1)?;
    let iv = idx
        .to_i64()
        .ok_or_else(|| ctx.invalid(nc, "input[1]", "indices are not integers"))?
        .to_vec();
    let axis = ctx.a_int(nc, "axis")?.unwrap_or(0);
    let scalar = idx.dims.is_empty();
    match ctx.input(nc, 0)? {
        Val::Cols { kind, cols } => {
            // Columns of a string / int64 graph input `[N, k]` (skl2onnx's column selection).
            if axis != 1 && axis != -1 {
                return Err(ctx.unsupported(nc, format!("axis {axis} of an [N, k] input")));
            }
            if idx.dims.len() != 1 || iv.is_empty() {
                return Err(ctx.unsupported(nc, "indices that are not a non-empty 1-D list"));
            }
            let k = cols.len() as i64;
            let picked = iv
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + k } else { i };
                    usize::try_from(j)
                        .ok()
                        .and_then(|j| cols.get(j).copied())
                        .ok_or_else(|| {
                            ctx.invalid(nc, "input[1]", format!("index {i} outside {k} columns"))
                        })
                })
                .collect::<R<Vec<usize>>>()?;
            if picked.len() > crate::ensemble::MAX_FEATURES {
                return Err(ctx.unsupported(nc, "too many columns"));
            }
            ctx.define(nc, 0, Val::Cols { kind, cols: picked })
        }
        Val::Shape { dims, .. } => {
            if axis != 0 && axis != -1 {
                return Err(ctx.invalid(nc, "axis", "a shape value has one axis"));
            }
            let n = dims.len() as i64;
            let mut out = Vec::with_capacity(iv.len());
            for &i in &iv {
                let j = if i < 0 { i + n } else { i };
                out.push(
                    *dims
                        .get(usize::try_from(j).unwrap_or(usize::MAX))
                        .ok_or_else(|| {
                            ctx.invalid(nc, "input[1]", format!("index {i} outside {n} entries"))
                        })?,
                );
            }
            if idx.dims.len() > 1 {
                return Err(ctx.unsupported(nc, "multi-dimensional indices on a shape"));
            }
            ctx.define(nc, 0, Val::Shape { dims: out, scalar })
        }
        Val::Const(c) if c.dims.len() == 1 && (axis == 0 || axis == -1) && idx.dims.len() <= 1 => {
            let n = c.len() as i64;
            let mut pick = Vec::with_capacity(iv.len());
            for &i in &iv {
                let j = if i < 0 { i + n } else { i };
                pick.push(
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| j < c.len())
                        .ok_or_else(|| {
                            ctx.invalid(nc, "input[1]", format!("index {i} outside {n} entries"))
                        })?,
                );
            }
            let dims = if scalar { vec![] } else { vec![pick.len()] };
            let data = match &c.data {
                Data::F32(v) => Data::F32(pick.iter().map(|&j| v[j]).collect()),
                Data::F64(v) => Data::F64(pick.iter().map(|&j| v[j]).collect()),
                Data::I64(v) => Data::I64(pick.iter().map(|&j| v[j]).collect()),
                Data::Str(v) => Data::Str(pick.iter().map(|&j| v[j].clone()).collect()),
            };
            ctx.define(
                nc,
                0,
                Val::Const(Const {
                    elem: c.elem,
                    dims,
                    data,
                }),
            )
        }
        _ => Err(ctx.unsupported(
            nc,
            "Gather of a runtime value or a multi-dimensional constant",
        )),
    }
}

/// `Concat`: of runtime values (the Concat op), or of 1-D constants and shape values (folded).
pub fn concat(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let axis = ctx
        .a_int(nc, "axis")?
        .ok_or_else(|| ctx.invalid(nc, "axis", "required attribute missing"))?;
    let vals: Vec<Val> = (0..nc.n.input.len())
        .map(|k| ctx.input(nc, k))
        .collect::<R<_>>()?;
    if let Some(Val::Cols { kind, .. }) = vals.first() {
        // String or int64 graph inputs side by side (`[N, k]` each, along axis 1).
        let kind = *kind;
        if axis != 1 && axis != -1 {
            return Err(ctx.unsupported(nc, format!("axis {axis} of [N, k] inputs")));
        }
        let mut all = Vec::new();
        for v in &vals {
            match v {
                Val::Cols { kind: k, cols } if *k == kind => all.extend_from_slice(cols),
                _ => {
                    return Err(ctx.unsupported(
                        nc,
                        "a concatenation of a string or int64 graph input with other values",
                    ))
                }
            }
        }
        if all.len() > crate::ensemble::MAX_FEATURES {
            return Err(ctx.unsupported(nc, "too many columns"));
        }
        return ctx.define(nc, 0, Val::Cols { kind, cols: all });
    }
    if vals.iter().any(|v| matches!(v, Val::Cols { .. })) {
        return Err(ctx.unsupported(
            nc,
            "a concatenation of a string or int64 graph input with other values",
        ));
    }
    if vals.iter().all(|v| matches!(v, Val::Rt(_))) {
        // int64 values (an encoder's output) only with each other.
        let ints = vals
            .iter()
            .all(|v| matches!(v, Val::Rt(r) if r.role == Role::Int));
        let rts: Vec<Rt> = (0..vals.len())
            .map(|k| {
                if ints {
                    ctx.rt_input(nc, k)
                } else {
                    ctx.float_input(nc, k)
                }
            })
            .collect::<R<_>>()?;
        let Some(first) = rts.first().cloned() else {
            return Err(ctx.invalid(nc, "input", "no inputs"));
        };
        let a = norm_axis(ctx, nc, axis, first.rank(), "axis")?;
        if a == 0 {
            return Err(ctx.unsupported(nc, "a concatenation along the batch"));
        }
        let mut dims = first.dims.clone();
        dims[a] = 0;
        for r in &rts {
            if r.rank() != first.rank()
                || r.dims
                    .iter()
                    .enumerate()
                    .any(|(i, &d)| i != a && d != first.dims[i])
            {
                return Err(ctx.invalid(
                    nc,
                    "input",
                    format!(
                        "shapes {:?} and {:?} differ outside axis {a}",
                        first.dims, r.dims
                    ),
                ));
            }
            dims[a] = dims[a]
                .checked_add(r.dims[a])
                .ok_or_else(|| ctx.invalid(nc, "input", "widths overflow"))?;
        }
        let wide = rts.iter().any(|r| r.dtype == DType::F64);
        let mut names = Vec::new();
        for r in &rts {
            names.push(if wide && r.dtype != DType::F64 {
                ctx.emit(
                    nc,
                    "Cast",
                    &[&r.name],
                    vec![("to", Attr::Str("f64".into()))],
                )
            } else {
                r.name.clone()
            });
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let name = ctx.emit(nc, "Concat", &refs, vec![("axis", Attr::Int(a as i64))]);
        let dtype = if wide { DType::F64 } else { first.dtype };
        return ctx.define(
            nc,
            0,
            Val::Rt(Rt {
                dtype,
                ..first.derived(name, dims)
            }),
        );
    }
    if vals.iter().any(|v| matches!(v, Val::Rt(_))) {
        return Err(ctx.unsupported(nc, "a concatenation of constants and runtime values"));
    }
    // 1-D constants and shapes.
    let mut out: Vec<SDim> = Vec::new();
    let mut consts: Vec<Const> = Vec::new();
    let mut any_shape = false;
    for v in &vals {
        match v {
            Val::Shape { dims, .. } => {
                any_shape = true;
                out.extend_from_slice(dims);
            }
            Val::Const(c) if c.dims.len() <= 1 => {
                if let Some(iv) = c.to_i64() {
                    out.extend(iv.iter().map(|&d| SDim::Known(d)));
                }
                consts.push(c.clone());
            }
            _ => return Err(ctx.unsupported(nc, "a concatenation of multi-dimensional constants")),
        }
    }
    if any_shape || consts.iter().all(|c| c.to_i64().is_some()) {
        if out.len() > MAX_FOLDED_ELEMENTS {
            return Err(ctx.unsupported(nc, "a folded shape too long"));
        }
        let v = Val::Shape {
            dims: out,
            scalar: false,
        };
        let v = match &v {
            Val::Shape { dims, .. } => shape_to_const(dims, false).map(Val::Const).unwrap_or(v),
            _ => v,
        };
        return ctx.define(nc, 0, v);
    }
    let mut all = Vec::new();
    let elem = consts.first().map_or(dt::FLOAT, |c| c.elem);
    for c in &consts {
        all.extend(
            c.to_f64()
                .ok_or_else(|| ctx.unsupported(nc, "string constants"))?,
        );
    }
    if all.len() > MAX_FOLDED_ELEMENTS {
        return Err(ctx.unsupported(nc, "a folded constant too long"));
    }
    let n = all.len();
    ctx.define(nc, 0, Val::Const(Const::float(elem, vec![n], all)))
}

// ----- fused decompositions -----------------------------------------------------------------

/// A fused group found by [`find_patterns`]: emitted at node `at`, the others skipped.
#[derive(Debug, Clone)]
pub struct Fused {
    /// The node whose output the fused op defines.
    pub at: usize,
    /// The input value.
    pub x: String,
    /// `Gelu` or `LayerNorm` (with its epsilon).
    pub op: FusedOp,
}

/// The fused operator.
#[derive(Debug, Clone, Copy)]
pub enum FusedOp {
    /// `x/2·(1 + erf(x/√2))`.
    Gelu,
    /// `(x − mean)/√(var + ε)` over the last axis.
    LayerNorm(f64),
}

/// Finds `Erf` GELUs and `ReduceMean`/`Pow`/`Sqrt` layer norms in `nodes`; `scalar` gives the
/// value of a constant scalar by name. Returns the groups and the indices of the nodes they
/// absorb.
pub fn find_patterns(
    nodes: &[super::proto::NodeProto],
    scalar: &dyn Fn(&str) -> Option<f64>,
) -> (Vec<Fused>, std::collections::HashSet<usize>) {
    use std::collections::{HashMap, HashSet};
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
        for x in &n.input {
            *uses.entry(x.as_str()).or_default() += 1;
        }
    }
    let op = |i: usize| nodes.get(i).map(|n| n.op_type.as_str()).unwrap_or("");
    let ins = |i: usize| nodes.get(i).map(|n| n.input.as_slice()).unwrap_or_default();
    let out0 = |i: usize| {
        nodes
            .get(i)
            .and_then(|n| n.output.first())
            .map(String::as_str)
            .unwrap_or("")
    };
    let once = |v: &str| uses.get(v).copied() == Some(1);
    let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() <= 1e-6 * want.abs());
    // The other operand of a binary node when one operand is the scalar `want`.
    let other_than_scalar = |i: usize, want: f64| -> Option<String> {
        let [a, b] = ins(i) else { return None };
        if near(scalar(b), want) {
            Some(a.clone())
        } else if near(scalar(a), want) && matches!(op(i), "Add" | "Mul") {
            Some(b.clone())
        } else {
            None
        }
    };
    let mut groups = Vec::new();
    let mut skip = HashSet::new();
    let consumers = |v: &str| -> Vec<usize> {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.input.iter().any(|x| x == v))
            .map(|(i, _)| i)
            .collect()
    };
    for (e, n) in nodes.iter().enumerate() {
        if n.op_type != "Erf" || !n.domain.is_empty() {
            continue;
        }
        // d = x / √2 (or x · 1/√2)
        let Some(&d) = n.input.first().and_then(|v| producer.get(v.as_str())) else {
            continue;
        };
        let x = match op(d) {
            "Div" => other_than_scalar(d, std::f64::consts::SQRT_2),
            "Mul" => other_than_scalar(d, std::f64::consts::FRAC_1_SQRT_2),
            _ => None,
        };
        let Some(x) = x else { continue };
        if !once(out0(d)) || !once(out0(e)) {
            continue;
        }
        // a = erf + 1
        let [a] = consumers(out0(e))[..] else {
            continue;
        };
        if op(a) != "Add" || other_than_scalar(a, 1.0).as_deref() != Some(out0(e)) || !once(out0(a))
        {
            continue;
        }
        let [m] = consumers(out0(a))[..] else {
            continue;
        };
        if op(m) != "Mul" {
            continue;
        }
        let other = ins(m)
            .iter()
            .find(|v| v.as_str() != out0(a))
            .cloned()
            .unwrap_or_default();
        // Either m = x · a then y = m · 0.5, or h = x · 0.5 then y = h · a.
        if other == x && once(out0(m)) {
            let [y] = consumers(out0(m))[..] else {
                continue;
            };
            if op(y) == "Mul" && other_than_scalar(y, 0.5).as_deref() == Some(out0(m)) {
                groups.push(Fused {
                    at: y,
                    x,
                    op: FusedOp::Gelu,
                });
                skip.extend([d, e, a, m]);
            }
        } else if let Some(&h) = producer.get(other.as_str()) {
            if op(h) == "Mul"
                && other_than_scalar(h, 0.5).as_deref() == Some(x.as_str())
                && once(out0(h))
            {
                groups.push(Fused {
                    at: m,
                    x,
                    op: FusedOp::Gelu,
                });
                skip.extend([d, e, a, h]);
            }
        }
    }
    for (dv, n) in nodes.iter().enumerate() {
        // n = Div(d, s): d = Sub(x, ReduceMean(x)), s = Sqrt(Add(ReduceMean(Pow(d, 2)), eps))
        if n.op_type != "Div" || !n.domain.is_empty() {
            continue;
        }
        let [dn, sn] = n.input.as_slice() else {
            continue;
        };
        let (Some(&sub), Some(&sq)) = (producer.get(dn.as_str()), producer.get(sn.as_str())) else {
            continue;
        };
        if op(sub) != "Sub" || op(sq) != "Sqrt" {
            continue;
        }
        let [x, mean] = ins(sub) else { continue };
        let Some(&rm1) = producer.get(mean.as_str()) else {
            continue;
        };
        if op(rm1) != "ReduceMean" || ins(rm1).first() != Some(x) {
            continue;
        }
        let Some(&add) = ins(sq).first().and_then(|v| producer.get(v.as_str())) else {
            continue;
        };
        if op(add) != "Add" {
            continue;
        }
        let [av, ev] = ins(add) else { continue };
        let Some(eps) = scalar(ev) else { continue };
        let Some(&rm2) = producer.get(av.as_str()) else {
            continue;
        };
        if op(rm2) != "ReduceMean" {
            continue;
        }
        let Some(&pw) = ins(rm2).first().and_then(|v| producer.get(v.as_str())) else {
            continue;
        };
        if op(pw) != "Pow"
            || ins(pw).first() != Some(dn)
            || !near(ins(pw).get(1).and_then(|v| scalar(v)), 2.0)
        {
            continue;
        }
        let last_axis = |i: usize| {
            let n = &nodes[i];
            let keep = n
                .attribute
                .iter()
                .find(|a| a.name == "keepdims")
                .map_or(1, |a| a.i);
            let ax = n
                .attribute
                .iter()
                .find(|a| a.name == "axes")
                .map(|a| a.ints.clone());
            keep == 1 && ax.as_deref() == Some(&[-1]) && n.input.len() == 1
        };
        if !last_axis(rm1) || !last_axis(rm2) {
            continue;
        }
        let single = [out0(rm1), out0(pw), out0(rm2), out0(add), out0(sq)]
            .iter()
            .all(|v| once(v));
        if !single || uses.get(dn.as_str()).copied() != Some(2) {
            continue;
        }
        groups.push(Fused {
            at: dv,
            x: x.clone(),
            op: FusedOp::LayerNorm(eps),
        });
        skip.extend([rm1, sub, pw, rm2, add, sq]);
    }
    (groups, skip)
}

/// Emits a fused group at its node.
pub fn emit_fused(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, f: &Fused) -> R<()> {
    let x = match ctx.values.get(&f.x) {
        Some(Val::Rt(r)) if !is_label(r) => r.clone(),
        _ => {
            return Err(ctx.unsupported(
                nc,
                format!("a fused {:?} of a value that is not a runtime float", f.op),
            ))
        }
    };
    let (op, attrs) = match f.op {
        FusedOp::Gelu => ("Gelu", vec![("approximate", Attr::Str("none".into()))]),
        FusedOp::LayerNorm(eps) => ("LayerNorm", vec![("epsilon", Attr::Float(eps))]),
    };
    let name = ctx.emit(nc, op, &[&x.name], attrs);
    ctx.define(nc, 0, Val::Rt(x.derived(name, x.dims.clone())))
}
