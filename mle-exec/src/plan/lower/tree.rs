//! The `TreeEnsemble` op (validation and layout are in [`crate::tree`]).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;
use crate::tree::TreeEnsemble;

/// `TreeEnsemble`: validated and laid out by [`TreeEnsemble::compile`]; reads the batch
/// itself when its input is the graph input.
pub(super) fn lower_tree(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let dims = &c.values[ctx.ins[0]].dims;
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let ens = TreeEnsemble::compile(ctx.node, c.file, f)?;
    let t = ens.n_targets();
    if t == 0 || t > MAX_WIDTH {
        return Err(ctx.bad(format!("n_targets {t} is out of range 1..={MAX_WIDTH}")));
    }
    let o = c.new_value(ctx.out, DType::F64, vec![t], t);
    let slot = c.n_tree_steps;
    c.n_tree_steps += 1;
    c.push(
        ctx.node,
        Kernel::Tree {
            ens: Box::new(ens),
            slot,
            from_input: ctx.ins[0] == ctx.x,
        },
        vec![ctx.ins[0]],
        o,
    );
    Ok(o)
}
