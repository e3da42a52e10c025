//! Building an [`Explainer`] from a `TreeEnsemble` node already validated by
//! [`crate::tree::TreeEnsemble::compile`]: trees laid out in pre-order, the decision data of
//! every split, each leaf's path (distinct features, merged zero fractions) and its TreeSHAP
//! table.

use mle_format::tree::{attr, flags, CategoricalRule};
use mle_format::{Attr, Element, MleFile, Node};

use super::{Explainer, Leaf, Shap, Tree, Unexplainable, XNode, MAX_PATH_FEATURES, NO_TABLE};
use super::{TABLE_MAX_FEATURES, TABLE_MIN_BUDGET};
use crate::error::ExecError;

struct Arrays<'a> {
    node: &'a Node,
    file: &'a MleFile,
}

impl<'a> Arrays<'a> {
    fn err(&self, detail: String) -> ExecError {
        ExecError::InvalidGraph {
            model: self.file.name().to_string(),
            node: self.node.name.clone(),
            op: self.node.op.clone(),
            detail,
        }
    }

    fn tensor<T: Element>(&self, key: &str) -> Result<Option<&'a [T]>, ExecError> {
        match self.node.attr(key) {
            None => Ok(None),
            Some(Attr::Tensor(name)) => Ok(Some(self.file.tensor_as::<T>(name)?)),
            Some(a) => Err(self.err(format!("attribute {key:?} must name a tensor, found {a:?}"))),
        }
    }

    fn required<T: Element>(&self, key: &str) -> Result<&'a [T], ExecError> {
        self.tensor(key)?
            .ok_or_else(|| self.err(format!("missing tensor attribute {key:?}")))
    }

    fn string(&self, key: &str) -> Option<&'a str> {
        match self.node.attr(key) {
            Some(Attr::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.node.attr(key) {
            Some(Attr::Int(v)) => Some(*v),
            _ => None,
        }
    }
}

/// Shapley weight `s! (d - 1 - s)! / d!` for `s = 0..d`, into `w`.
fn shapley_weights(d: usize, w: &mut Vec<f64>) {
    w.clear();
    if d == 0 {
        return;
    }
    let mut x = 1.0 / d as f64;
    for s in 0..d {
        w.push(x);
        if s + 1 < d {
            x *= (s + 1) as f64 / (d - 1 - s) as f64;
        }
    }
}

/// The TreeSHAP table of one path of `z.len() = d` distinct features with zero fractions `z`:
/// for every hot set `H` (bit `j` set: the row satisfies the path's splits on feature `j`),
/// `A(H) = Σ_{S ⊆ H} w(|S|) Π_{j ∉ S} z_j` with `w(s) = s!(d-1-s)!/d!`, computed as the
/// coefficients of `Π_{j ∈ H} (z_j + t) · Π_{j ∉ H} z_j` weighted by `w`, each `H` from the
/// polynomial of `H` without its highest bit (which has the same factors below that bit).
/// `A(full set)` is never read and is left 0.
fn table(z: &[f64], out: &mut Vec<f64>) {
    let d = z.len();
    let n = 1usize << d;
    let mut w = Vec::new();
    shapley_weights(d, &mut w);
    // poly[h]: coefficients (degree <= d) of Π_{j < top(h)+1} (z_j + [j ∈ h] t); to get the
    // full product over all d factors, multiply by Π_{j > top(h)} z_j at the end.
    let stride = d + 1;
    let mut poly = vec![0.0f64; n * stride];
    poly[0] = 1.0; // h = 0: the empty product (top = -1)
    let mut tail = vec![1.0f64; d + 1]; // tail[k] = Π_{j >= k} z_j
    for k in (0..d).rev() {
        tail[k] = tail[k + 1] * z[k];
    }
    let start = out.len();
    out.resize(start + n, 0.0);
    for h in 0..n {
        if h > 0 {
            let k = usize::BITS as usize - 1 - h.leading_zeros() as usize; // highest bit
            let prev = h & !(1 << k);
            let prev_top = if prev == 0 {
                0
            } else {
                usize::BITS as usize - prev.leading_zeros() as usize
            };
            // Factors of prev cover j < prev_top; multiply in z_j for prev_top <= j < k, then
            // (z_k + t).
            let mut gap = 1.0;
            for &zj in &z[prev_top..k] {
                gap *= zj;
            }
            let (lo, hi) = poly.split_at_mut(h * stride);
            let src = &lo[prev * stride..prev * stride + stride];
            let dst = &mut hi[..stride];
            dst.fill(0.0);
            for s in 0..d {
                let c = src[s] * gap;
                dst[s] += c * z[k];
                dst[s + 1] += c;
            }
        }
        if h + 1 == n && d > 0 {
            continue; // the full set: never read
        }
        let top = if h == 0 {
            0
        } else {
            usize::BITS as usize - h.leading_zeros() as usize
        };
        let p = &poly[h * stride..h * stride + stride];
        let hot = h.count_ones() as usize;
        let mut a = 0.0;
        let terms = hot.min(d.saturating_sub(1)) + 1;
        for (s, &ps) in p.iter().enumerate().take(terms) {
            a += w.get(s).copied().unwrap_or(0.0) * ps;
        }
        out[start + h] = a * tail[top];
    }
}

/// Builds the explainer of `node`, a `TreeEnsemble` that
/// [`crate::tree::TreeEnsemble::compile`] accepted for `n_features` features (so every index
/// below is in range; still read with checked access). `budget`: bytes of TreeSHAP tables
/// allowed.
pub(super) fn build(
    node: &Node,
    file: &MleFile,
    n_features: usize,
    budget: usize,
) -> Result<Explainer, ExecError> {
    let a = Arrays { node, file };
    let bad = |what: &str| a.err(format!("explain: {what} out of range"));
    let n_targets = a.int(attr::N_TARGETS).unwrap_or(1).max(1) as usize;
    let leaf_dim = a.int(attr::LEAF_DIM).unwrap_or(1).max(1) as usize;
    let lt = a.string(attr::COMPARISON) == Some("lt");
    let f32_precision = a.string(attr::INPUT_PRECISION) == Some("f32");
    let average = a.string(attr::AGGREGATE) == Some("average");
    let members_left = a.string(attr::CATEGORICAL_MEMBERS) != Some("right");
    let negative_invalid = a
        .string(attr::CATEGORICAL_RULE)
        .and_then(|r| CategoricalRule::parse(r).ok())
        == Some(CategoricalRule::XgBoost);
    let base = match node.attr(attr::BASE_SCORES) {
        Some(Attr::Floats(v)) => v.clone(),
        _ => vec![0.0; n_targets],
    };
    let feature = a.required::<i32>(attr::FEATURE)?;
    let threshold = a.required::<f64>(attr::THRESHOLD)?;
    let left = a.required::<u32>(attr::LEFT)?;
    let right = a.required::<u32>(attr::RIGHT)?;
    let fl = a.required::<u8>(attr::FLAGS)?;
    let leaf_values = a.required::<f64>(attr::LEAF_VALUES)?;
    let roots = a.required::<u32>(attr::TREE_ROOTS)?;
    let targets = a.tensor::<u32>(attr::TREE_TARGETS)?;
    let weights = a.tensor::<f64>(attr::TREE_WEIGHTS)?;
    let cover = a.tensor::<f64>(attr::NODE_COVER)?;
    let leaf_ids = a.tensor::<i32>(attr::LEAF_IDS)?;
    let (cat_offsets, cat_bits) = match (
        a.tensor::<u32>(attr::CAT_OFFSETS)?,
        a.tensor::<u32>(attr::CAT_BITS)?,
    ) {
        (Some(o), Some(b)) => (o, b),
        _ => (&[][..], &[][..]),
    };
    let n_trees = roots.len();

    // Target and scale of each tree: the weight, divided as the prediction is under average.
    let mut target = vec![0u32; n_trees];
    if leaf_dim == 1 {
        if let Some(t) = targets {
            for (d, s) in target.iter_mut().zip(t) {
                *d = *s;
            }
        }
    }
    let mut divisor = vec![1.0f64; n_targets];
    if average {
        if leaf_dim == 1 {
            let mut count = vec![0usize; n_targets];
            for &t in &target {
                if let Some(c) = count.get_mut(t as usize) {
                    *c += 1;
                }
            }
            for (d, c) in divisor.iter_mut().zip(count) {
                *d = if c > 0 { c as f64 } else { 1.0 };
            }
        } else {
            divisor.fill(n_trees.max(1) as f64);
        }
    }

    let mut ex = Explainer {
        n_features,
        n_targets,
        leaf_dim,
        lt,
        f32_precision,
        members_left,
        negative_invalid,
        nodes: Vec::new(),
        trees: Vec::with_capacity(n_trees),
        leaves: Vec::new(),
        values: Vec::new(),
        cat_bits: cat_bits.to_vec(),
        max_tree_nodes: 0,
        shap: Err(Unexplainable::NoCovers {
            node: node.name.clone(),
        }),
    };
    let mut shap = Shap {
        path_feat: Vec::new(),
        path_z: Vec::new(),
        path_c: Vec::new(),
        tables: Vec::new(),
        bias: base.clone(),
        max_path: 0,
    };
    shap.bias.resize(n_targets, 0.0);
    let mut table_bytes = 0usize;
    let budget = budget.max(TABLE_MIN_BUDGET);
    let mut too_wide: Option<Unexplainable> = None;

    // Per tree: pre-order DFS (left first), with the path of (feature, zero fraction) edges.
    let mut stack: Vec<(u32, usize, u32, f64)> = Vec::new(); // (orig, depth, edge feature, edge z)
    let mut path_f: Vec<u32> = Vec::new();
    let mut path_zs: Vec<f64> = Vec::new();
    let mut distinct: Vec<u32> = Vec::new();
    let mut merged: Vec<f64> = Vec::new();
    let mut tmp_table: Vec<f64> = Vec::new();
    for (k, &root) in roots.iter().enumerate() {
        let t = *target.get(k).ok_or_else(|| bad("tree_targets"))? as usize;
        let wk = weights.and_then(|w| w.get(k)).copied().unwrap_or(1.0);
        let scale: Vec<f64> = if leaf_dim == 1 {
            vec![wk / divisor.get(t).copied().unwrap_or(1.0)]
        } else {
            divisor.iter().map(|d| wk / d).collect()
        };
        let node0 = ex.nodes.len();
        let leaf0 = ex.leaves.len();
        stack.clear();
        path_f.clear();
        path_zs.clear();
        stack.push((root, 0, u32::MAX, 1.0));
        // Per stack entry: the laid-out parent whose child pointer it patches (is left).
        let mut patch_stack: Vec<Option<(usize, bool)>> = vec![None];
        while let (Some((orig, depth, ef, ez)), Some(pp)) = (stack.pop(), patch_stack.pop()) {
            let o = orig as usize;
            let at = ex.nodes.len();
            if let Some((p, is_left)) = pp {
                let local = (at - node0) as u32;
                let pn = ex.nodes.get_mut(p).ok_or_else(|| bad("parent"))?;
                if is_left {
                    pn.left = local;
                } else {
                    pn.right = local;
                }
            }
            if depth > 0 {
                path_f.truncate(depth - 1);
                path_zs.truncate(depth - 1);
                path_f.push(ef);
                path_zs.push(ez);
            }
            let f = *fl.get(o).ok_or_else(|| bad("flags"))?;
            if f & flags::LEAF != 0 {
                // The leaf's distinct features, in order of first occurrence, and their merged
                // zero fractions.
                distinct.clear();
                merged.clear();
                for (&pf, &pz) in path_f.iter().zip(&path_zs) {
                    match distinct.iter().position(|&d| d == pf) {
                        Some(j) => merged[j] *= pz,
                        None => {
                            distinct.push(pf);
                            merged.push(pz);
                        }
                    }
                }
                let d = distinct.len();
                if d > MAX_PATH_FEATURES && too_wide.is_none() {
                    too_wide = Some(Unexplainable::PathTooWide {
                        node: node.name.clone(),
                        tree: k,
                        features: d,
                    });
                }
                let value0 = ex.values.len();
                let vals = leaf_values
                    .get(o * leaf_dim..(o + 1) * leaf_dim)
                    .ok_or_else(|| bad("leaf_values"))?;
                for (j, &v) in vals.iter().enumerate() {
                    ex.values
                        .push(v * scale.get(j).or(scale.first()).copied().unwrap_or(1.0));
                }
                let id = match leaf_ids {
                    Some(ids) => *ids.get(o).ok_or_else(|| bad("leaf_ids"))?,
                    None => i32::try_from(orig.saturating_sub(root)).unwrap_or(i32::MAX),
                };
                // Expected value: v · Π z over the path (cover(leaf) / cover(root)).
                let reach: f64 = merged.iter().product();
                if leaf_dim == 1 {
                    if let (Some(b), Some(v)) = (shap.bias.get_mut(t), ex.values.get(value0)) {
                        *b += v * reach;
                    }
                } else {
                    for (b, v) in shap.bias.iter_mut().zip(&ex.values[value0..]) {
                        *b += v * reach;
                    }
                }
                let path0 = shap.path_feat.len();
                let mut zero_mask = 0u64;
                for (j, (&pf, &z)) in distinct.iter().zip(&merged).enumerate() {
                    shap.path_feat.push(pf);
                    shap.path_z.push(z);
                    shap.path_c.push(if z > 0.0 { (1.0 - z) / z } else { 0.0 });
                    if z <= 0.0 && j < 64 {
                        zero_mask |= 1 << j;
                    }
                }
                shap.max_path = shap.max_path.max(d);
                let bytes = (1usize << d.min(TABLE_MAX_FEATURES)) * 8;
                let table = if d <= TABLE_MAX_FEATURES
                    && zero_mask == 0
                    && table_bytes + bytes <= budget
                    && vals.iter().any(|&v| v != 0.0)
                {
                    table_bytes += bytes;
                    let start = shap.tables.len();
                    tmp_table.clear();
                    table(&merged, &mut tmp_table);
                    shap.tables.extend_from_slice(&tmp_table);
                    start as u32
                } else {
                    NO_TABLE
                };
                ex.leaves.push(Leaf {
                    d: d as u32,
                    path: path0 as u32,
                    table,
                    zero_mask,
                    value: value0 as u32,
                    id,
                });
                ex.nodes.push(XNode {
                    thr: 0.0,
                    feat: 0,
                    flags: flags::LEAF,
                    slot: 0,
                    left: (ex.leaves.len() - 1 - leaf0) as u32,
                    right: 0,
                    cat_lo: 0,
                    cat_hi: 0,
                });
            } else {
                let feat = *feature.get(o).ok_or_else(|| bad("feature"))?;
                let feat = u32::try_from(feat).map_err(|_| bad("feature"))?;
                // The slot of this split's feature on its path (prefix-consistent: the same for
                // every leaf below).
                distinct.clear();
                for &pf in &path_f {
                    if !distinct.contains(&pf) {
                        distinct.push(pf);
                    }
                }
                let slot = distinct
                    .iter()
                    .position(|&d| d == feat)
                    .unwrap_or(distinct.len());
                let (l, r) = (
                    *left.get(o).ok_or_else(|| bad("left"))?,
                    *right.get(o).ok_or_else(|| bad("right"))?,
                );
                let (zl, zr) = match cover {
                    Some(c) => {
                        let cn = c.get(o).copied().unwrap_or(0.0);
                        let cl = c.get(l as usize).copied().unwrap_or(0.0);
                        let cr = c.get(r as usize).copied().unwrap_or(0.0);
                        if cn > 0.0 {
                            (cl / cn, cr / cn)
                        } else {
                            (0.0, 0.0)
                        }
                    }
                    None => (1.0, 1.0),
                };
                let (cat_lo, cat_hi) = if f & flags::CATEGORICAL != 0 {
                    (
                        cat_offsets.get(o).copied().unwrap_or(0),
                        cat_offsets.get(o + 1).copied().unwrap_or(0),
                    )
                } else {
                    (0, 0)
                };
                ex.nodes.push(XNode {
                    thr: *threshold.get(o).ok_or_else(|| bad("threshold"))?,
                    feat,
                    flags: f,
                    slot: slot.min(u8::MAX as usize) as u8,
                    left: 0,
                    right: 0,
                    cat_lo,
                    cat_hi,
                });
                stack.push((r, depth + 1, feat, zr));
                patch_stack.push(Some((at, false)));
                stack.push((l, depth + 1, feat, zl));
                patch_stack.push(Some((at, true)));
            }
        }
        let n_tree = ex.nodes.len() - node0;
        ex.max_tree_nodes = ex.max_tree_nodes.max(n_tree);
        ex.trees.push(Tree {
            nodes: node0 as u32,
            n_nodes: n_tree as u32,
            leaves: leaf0 as u32,
            target: t as u32,
        });
    }
    ex.shap = match (cover, too_wide) {
        (None, _) => Err(Unexplainable::NoCovers {
            node: node.name.clone(),
        }),
        (Some(_), Some(e)) => Err(e),
        (Some(_), None) => Ok(shap),
    };
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `A(H)` by its definition (a sum over subsets).
    fn table_naive(z: &[f64]) -> Vec<f64> {
        let d = z.len();
        let mut w = Vec::new();
        shapley_weights(d, &mut w);
        (0..1usize << d)
            .map(|h| {
                if h + 1 == 1 << d {
                    return 0.0;
                }
                let mut a = 0.0;
                for s in 0..1usize << d {
                    if s & !h != 0 {
                        continue;
                    }
                    let mut p = w[s.count_ones() as usize];
                    for (j, &zj) in z.iter().enumerate() {
                        if s >> j & 1 == 0 {
                            p *= zj;
                        }
                    }
                    a += p;
                }
                a
            })
            .collect()
    }

    #[test]
    fn table_matches_the_subset_sum() {
        for z in [
            vec![],
            vec![0.3],
            vec![0.3, 0.8],
            vec![0.5, 0.25, 0.9, 0.1],
            vec![0.2, 0.7, 0.4, 0.6, 0.9, 0.35, 0.5],
        ] {
            let mut t = Vec::new();
            table(&z, &mut t);
            let n = table_naive(&z);
            assert_eq!(t.len(), n.len());
            for (h, (a, b)) in t.iter().zip(&n).enumerate() {
                assert!((a - b).abs() < 1e-14, "z {z:?} h {h}: {a} vs {b}");
            }
        }
    }
}
