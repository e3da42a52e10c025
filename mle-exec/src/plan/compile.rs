//! Liveness, dead-step elimination, the memory plan, the plan budget and chunking: the last
//! stage of [`compile`], after lowering and fusion.

use mle_format::{DType, MleFile};

use super::fuse::fuse;
use super::ir::{BufId, Kernel, Plan, ValueId, CHUNK_ROWS};
use super::lower::{is_float, Compiler};
use super::{MAX_PLAN_BYTES, MAX_WIDTH, PLAN_BYTES_PER_FILE_BYTE};
use crate::error::ExecError;
use crate::kernels::{Packed, ROWS_MAX_OUTPUTS};
use crate::memory::{plan_offsets, Buffer};
use crate::OutputInfo;

/// Largest arena of one chunk, in bytes; wide models get shorter chunks.
const MAX_CHUNK_BYTES: usize = 32 << 20;

/// The plan budget of a file: [`MAX_PLAN_BYTES`] plus [`PLAN_BYTES_PER_FILE_BYTE`] per byte of
/// the file (or of its decompressed weights, when larger).
fn plan_budget(file: &MleFile) -> usize {
    let size = file.file_bytes().len().max(file.weights().len());
    MAX_PLAN_BYTES.saturating_add(size.saturating_mul(PLAN_BYTES_PER_FILE_BYTE))
}

/// Compiles `file`'s graph.
pub(crate) fn compile(file: &MleFile) -> Result<Plan, ExecError> {
    let graph = file.graph();
    let model = file.name().to_string();
    let gbad = |node: &str, detail: String| ExecError::InvalidGraph {
        model: model.clone(),
        node: node.to_string(),
        op: "graph".into(),
        detail,
    };
    let [input] = graph.inputs.as_slice() else {
        return Err(gbad(
            "<inputs>",
            format!(
                "expected exactly one graph input, found {}",
                graph.inputs.len()
            ),
        ));
    };
    if !is_float(input.dtype) {
        return Err(gbad(
            &input.name,
            format!("graph input has dtype {}, expected f32 or f64", input.dtype),
        ));
    }
    let n_features = match input.shape.as_slice() {
        [-1, f] if *f >= 0 && (*f as usize) <= MAX_WIDTH => *f as usize,
        s => {
            return Err(gbad(
                &input.name,
                format!("graph input shape {s:?} must be [-1, F] with 0 <= F <= {MAX_WIDTH}"),
            ))
        }
    };
    let names_len = file.metadata().input.feature_names.len();
    if names_len != 0 && names_len != n_features {
        return Err(gbad(
            &input.name,
            format!("metadata lists {names_len} feature names but the graph input has {n_features} features"),
        ));
    }
    let mut c = Compiler::new(file, plan_budget(file));
    let x = c.new_value(&input.name, input.dtype, vec![n_features], n_features);
    c.names.insert(input.name.clone(), x);
    c.chain.insert(input.name.clone());
    c.chain_tail = input.name.clone();
    for node in &graph.nodes {
        c.node(node, x)?;
    }
    // The Lookup chain is the input stage: everything else reads its last value only.
    if !c.lookups.is_empty() {
        let tail = &c.chain_tail;
        let early = c
            .chain_reads
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .chain(graph.outputs.iter().map(|o| ("<outputs>", &o.name)))
            .find(|(_, v)| c.chain.contains(*v) && *v != tail);
        if let Some((node, v)) = early {
            return Err(gbad(
                node,
                format!("reads {v:?}, a value of the Lookup chain before its end; only the chain's last value {tail:?} may be read outside the chain"),
            ));
        }
    }
    // Graph outputs.
    if graph.outputs.is_empty() {
        return Err(gbad("<outputs>", "the graph has no outputs".into()));
    }
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    let mut infos = Vec::with_capacity(graph.outputs.len());
    for o in &graph.outputs {
        let v = *c.names.get(&o.name).ok_or_else(|| {
            gbad(
                &o.name,
                format!("graph output {:?} is not produced by any node", o.name),
            )
        })?;
        let val = &c.values[v];
        let v = match (val.dtype, o.dtype) {
            (a, b) if a == b => v,
            (DType::F32 | DType::F64, DType::F32 | DType::F64) => c.coerce(v, o.dtype),
            (a, b) => {
                return Err(gbad(
                    &o.name,
                    format!("graph output is declared {b} but the graph computes {a}"),
                ))
            }
        };
        let val = &c.values[v];
        let declared = o.shape.get(1..).unwrap_or(&[]);
        if o.shape.first() != Some(&-1) {
            return Err(gbad(
                &o.name,
                format!("output shape {:?} must start with -1 (the batch)", o.shape),
            ));
        }
        let width = if declared.is_empty() {
            if val.width != 1 {
                return Err(gbad(
                    &o.name,
                    format!(
                        "output declared [N] but the graph computes [N, {:?}]",
                        val.dims
                    ),
                ));
            }
            0
        } else {
            if declared.iter().all(|&d| d >= 0) {
                let w = declared
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
                if w != Some(val.width as u64) {
                    return Err(gbad(
                        &o.name,
                        format!(
                            "output declared {:?} but the graph computes [N, {:?}]",
                            o.shape, val.dims
                        ),
                    ));
                }
            }
            val.width
        };
        outputs.push(v);
        infos.push(OutputInfo {
            name: o.name.clone(),
            dtype: val.dtype,
            width,
        });
    }
    let steps = std::mem::take(&mut c.steps);
    let mut steps = fuse(&c.values, steps, &outputs);
    // Pre-pack f32 dense weights (after fusion: the bias is final); layers of few outputs
    // run the dot-product kernels, unpacked.
    for s in &mut steps {
        if let Kernel::DenseF32(d) = &mut s.kernel {
            if d.m <= ROWS_MAX_OUTPUTS {
                continue;
            }
            d.packed = Packed::new(&d.w, d.bias.as_deref(), d.m, d.k).map(Box::new);
        }
    }
    // Dead-step elimination (backwards from the outputs).
    let mut needed = vec![false; c.values.len()];
    let mark = |needed: &mut Vec<bool>, mut v: ValueId| loop {
        needed[v] = true;
        match c.values[v].alias_of {
            Some(src) if !needed[src] => v = src,
            _ => break,
        }
    };
    for &o in &outputs {
        mark(&mut needed, o);
    }
    let mut keep = vec![false; steps.len()];
    for i in (0..steps.len()).rev() {
        if needed[steps[i].output] {
            keep[i] = true;
            for &inp in &steps[i].inputs {
                mark(&mut needed, inp);
            }
        }
    }
    let mut k = keep.iter();
    steps.retain(|_| *k.next().unwrap_or(&false));
    // Tree steps reading the graph input read the batch; X is gathered only when needed.
    let mut gather_x = outputs.iter().any(|&o| c.values[o].buf == c.values[x].buf);
    for s in &steps {
        let reads_x = s.inputs.iter().any(|&i| c.values[i].buf == c.values[x].buf);
        if reads_x
            && !matches!(
                s.kernel,
                Kernel::Tree {
                    from_input: true,
                    ..
                }
            )
        {
            gather_x = true;
        }
    }
    // A first Dense step of few outputs that alone reads X reads a row-major batch where it
    // lies (X is still planned: other batches and single rows are gathered).
    let xbuf = c.values[x].buf;
    let dense_of = |k: &Kernel| match k {
        Kernel::DenseF32(d) => Some((d.groups, d.k, d.m)),
        Kernel::DenseF64(d) => Some((d.groups, d.k, d.m)),
        _ => None,
    };
    let direct_x = c.lookups.is_empty()
        && !outputs.iter().any(|&o| c.values[o].buf == xbuf)
        && steps.first().is_some_and(|s| {
            s.inputs.len() == 1
                && c.values[s.inputs[0]].buf == xbuf
                && c.values[s.inputs[0]].dtype == c.values[x].dtype
                && dense_of(&s.kernel)
                    .is_some_and(|(g, k, m)| g == 1 && k == n_features && m <= ROWS_MAX_OUTPUTS)
        })
        && steps
            .iter()
            .skip(1)
            .all(|s| s.inputs.iter().all(|&i| c.values[i].buf != xbuf));
    // Liveness: X at time 0, step i at time i + 1, outputs read at steps.len() + 1.
    let end = steps.len() + 1;
    let mut first = vec![usize::MAX; c.buf_units.len()];
    let mut last = vec![0usize; c.buf_units.len()];
    let mut touch = |b: BufId, t: usize| {
        first[b] = first[b].min(t);
        last[b] = last[b].max(t);
    };
    if gather_x {
        touch(c.values[x].buf, 0);
    }
    for (i, s) in steps.iter().enumerate() {
        let t = i + 1;
        touch(c.values[s.output].buf, t);
        for &inp in &s.inputs {
            if inp == x && !gather_x {
                continue;
            }
            touch(c.values[inp].buf, t);
        }
        if let Some(b) = s.scratch {
            touch(b, t);
        }
    }
    for &o in &outputs {
        touch(c.values[o].buf, end);
    }
    let buffers: Vec<Buffer> = (0..c.buf_units.len())
        .map(|b| Buffer {
            size: c.buf_units[b],
            first: first[b],
            last: last[b],
        })
        .collect();
    let (buf_off, arena_per_row) = plan_offsets(&buffers);
    let mut tree_tmp_per_row = 0;
    for s in &steps {
        if let Kernel::Tree { ens, .. } = &s.kernel {
            tree_tmp_per_row = tree_tmp_per_row.max(ens.n_targets());
        }
    }
    let per_row = arena_per_row + tree_tmp_per_row * 8;
    let out_row: usize = infos.iter().map(|i| i.width.max(1) * 8).sum();
    let asked = per_row
        .saturating_add(out_row)
        .saturating_add(c.table_bytes);
    if asked > c.budget {
        return Err(gbad(
            "<plan>",
            format!(
                "one row needs {} bytes (arena {arena_per_row}, tree staging {}, outputs {out_row}, tables {}), over the plan budget of {} bytes for this file ({MAX_PLAN_BYTES} + {PLAN_BYTES_PER_FILE_BYTE} x its size)",
                asked,
                tree_tmp_per_row * 8,
                c.table_bytes,
                c.budget
            ),
        ));
    }
    let chunk_rows = (MAX_CHUNK_BYTES / per_row.max(1)).clamp(1, CHUNK_ROWS);
    let mut lookup_of = vec![None; n_features];
    for (k, st) in c.lookups.iter().enumerate() {
        if let Some(slot) = lookup_of.get_mut(st.feature) {
            *slot = Some(k);
        }
    }
    Ok(Plan {
        n_features,
        x,
        gather_x,
        direct_x,
        values: c.values,
        steps,
        outputs,
        infos,
        buf_off,
        buf_size: c.buf_units,
        arena_per_row,
        chunk_rows,
        n_tree_steps: c.n_tree_steps,
        tree_tmp_per_row,
        lookups: c.lookups,
        lookup_of,
    })
}
