//! Validation of the `TreeEnsemble` arrays and their layout into kernel records.

use std::ops::Range;

use mle_format::tree::{attr, CategoricalRule};
use mle_format::{Attr, Element, MleFile, Node};

use super::flags::{ALL, CATEGORICAL, LEAF, MISSING_LEFT, NAN_IS_ZERO, ZERO_IS_MISSING};
use super::threshold::{le_threshold_f32, le_threshold_f64};
use super::{
    Ext, Nodes, RankIndex, Rec, RowGroup, RowWindow, TreeEnsemble, FM_STRIDE, MAX_DEPTH, MAX_NODES,
    MAX_TARGETS, RANK_PAD, ROW_TREES, ROW_WINDOW, SUPER_ROWS,
};
use crate::error::ExecError;

/// Bytes of nodes and leaf values per group of trees walked together over a row block; with
/// the scratch block this stays within a 512 KiB L2.
const GROUP_BYTES: usize = 192 * 1024;

struct Ctx<'a> {
    node: &'a Node,
    file: &'a MleFile,
}

impl Ctx<'_> {
    fn err(&self, detail: impl Into<String>) -> ExecError {
        ExecError::InvalidGraph {
            model: self.file.name().to_string(),
            node: self.node.name.clone(),
            op: self.node.op.clone(),
            detail: detail.into(),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ExecError> {
        match self.node.attr(key) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(a) => Err(self.err(format!("attribute {key:?} must be an integer, found {a:?}"))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<&str>, ExecError> {
        match self.node.attr(key) {
            None => Ok(None),
            Some(Attr::Str(v)) => Ok(Some(v.as_str())),
            Some(a) => Err(self.err(format!("attribute {key:?} must be a string, found {a:?}"))),
        }
    }

    /// A string attribute that must be one of `choices`; `default` when absent (None: required).
    fn choice(
        &self,
        key: &str,
        choices: &[&str],
        default: Option<&str>,
    ) -> Result<usize, ExecError> {
        let v = match (self.string(key)?, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(self.err(format!("missing attribute {key:?} (one of {choices:?})")))
            }
        };
        choices.iter().position(|c| *c == v).ok_or_else(|| {
            self.err(format!(
                "attribute {key:?} is {v:?}, expected one of {choices:?}"
            ))
        })
    }

    /// The tensor named by attribute `key`, or None when the attribute is absent.
    fn tensor<T: Element>(&self, key: &str) -> Result<Option<&[T]>, ExecError> {
        match self.node.attr(key) {
            None => Ok(None),
            Some(Attr::Tensor(name)) => Ok(Some(self.file.tensor_as::<T>(name)?)),
            Some(a) => Err(self.err(format!("attribute {key:?} must name a tensor, found {a:?}"))),
        }
    }

    fn required<T: Element>(&self, key: &str) -> Result<&[T], ExecError> {
        self.tensor(key)?
            .ok_or_else(|| self.err(format!("missing tensor attribute {key:?}")))
    }

    fn check_len(&self, key: &str, len: usize, expected: usize) -> Result<(), ExecError> {
        if len != expected {
            return Err(self.err(format!(
                "tensor {key:?} has {len} elements, expected {expected}"
            )));
        }
        Ok(())
    }
}

/// The result of walking one tree depth first.
struct Walk {
    /// Original node index of each laid-out node.
    order: Vec<u32>,
    /// Laid-out index of the right child of each laid-out internal node.
    right: Vec<u32>,
}

pub(super) fn compile(
    node: &Node,
    file: &MleFile,
    n_features: usize,
) -> Result<TreeEnsemble, ExecError> {
    let cx = Ctx { node, file };
    if node.op != "TreeEnsemble" {
        return Err(cx.err("not a TreeEnsemble node"));
    }
    if n_features > u32::MAX as usize {
        return Err(cx.err(format!(
            "{n_features} features exceeds the limit of {}",
            u32::MAX
        )));
    }

    // Scalars.
    let n_targets = cx
        .int(attr::N_TARGETS)?
        .ok_or_else(|| cx.err("missing attribute \"n_targets\""))?;
    if n_targets < 1 || n_targets > MAX_TARGETS as i64 {
        return Err(cx.err(format!(
            "n_targets is {n_targets}, expected 1..={MAX_TARGETS}"
        )));
    }
    let n_targets = n_targets as usize;
    let leaf_dim = cx.int(attr::LEAF_DIM)?.unwrap_or(1);
    if leaf_dim != 1 && leaf_dim != n_targets as i64 {
        return Err(cx.err(format!(
            "leaf_dim is {leaf_dim}, expected 1 or n_targets ({n_targets})"
        )));
    }
    let leaf_dim = leaf_dim as usize;
    let lt = cx.choice(attr::COMPARISON, &["le", "lt"], None)? == 1;
    let f32_precision = cx.choice(attr::INPUT_PRECISION, &["f64", "f32"], None)? == 1;
    let average = cx.choice(attr::AGGREGATE, &["sum", "average"], Some("sum"))? == 1;
    let base = match node.attr(attr::BASE_SCORES) {
        None => vec![0.0; n_targets],
        Some(Attr::Floats(v)) if v.len() == n_targets => v.clone(),
        Some(Attr::Floats(v)) => {
            return Err(cx.err(format!(
                "base_scores has {} values, expected n_targets = {n_targets}",
                v.len()
            )))
        }
        Some(a) => return Err(cx.err(format!("base_scores must be floats, found {a:?}"))),
    };

    // Arrays.
    let feature = cx.required::<i32>(attr::FEATURE)?;
    let n_nodes = feature.len();
    if n_nodes > MAX_NODES {
        return Err(cx.err(format!("{n_nodes} nodes exceeds the limit of {MAX_NODES}")));
    }
    let threshold = cx.required::<f64>(attr::THRESHOLD)?;
    let left = cx.required::<u32>(attr::LEFT)?;
    let right = cx.required::<u32>(attr::RIGHT)?;
    let flags = cx.required::<u8>(attr::FLAGS)?;
    let leaf_values = cx.required::<f64>(attr::LEAF_VALUES)?;
    cx.check_len(attr::THRESHOLD, threshold.len(), n_nodes)?;
    cx.check_len(attr::LEFT, left.len(), n_nodes)?;
    cx.check_len(attr::RIGHT, right.len(), n_nodes)?;
    cx.check_len(attr::FLAGS, flags.len(), n_nodes)?;
    cx.check_len(attr::LEAF_VALUES, leaf_values.len(), n_nodes * leaf_dim)?;
    let roots = cx.required::<u32>(attr::TREE_ROOTS)?;
    let n_trees = roots.len();
    let targets = cx.tensor::<u32>(attr::TREE_TARGETS)?;
    if let Some(t) = targets {
        cx.check_len(attr::TREE_TARGETS, t.len(), n_trees)?;
    }
    let weights = cx.tensor::<f64>(attr::TREE_WEIGHTS)?;
    if let Some(w) = weights {
        cx.check_len(attr::TREE_WEIGHTS, w.len(), n_trees)?;
    }

    // Explanation annotations (read by `crate::explain`): checked here so that a model
    // either loads with valid covers and leaf ids or not at all.
    if let Some(c) = cx.tensor::<f64>(attr::NODE_COVER)? {
        cx.check_len(attr::NODE_COVER, c.len(), n_nodes)?;
        if let Some((i, v)) = c
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(cx.err(format!("node_cover[{i}] = {v}, expected finite and >= 0")));
        }
    }
    if let Some(ids) = cx.tensor::<i32>(attr::LEAF_IDS)? {
        cx.check_len(attr::LEAF_IDS, ids.len(), n_nodes)?;
        if let Some((i, v)) = ids.iter().enumerate().find(|(_, v)| **v < 0) {
            return Err(cx.err(format!("leaf_ids[{i}] = {v}, expected >= 0")));
        }
    }

    // Per-node checks.
    let mut any_categorical = false;
    let mut any_zero_missing = false;
    for i in 0..n_nodes {
        let fl = flags[i];
        if fl & !ALL != 0 {
            return Err(cx.err(format!(
                "node {i}: flags {fl:#04x} has undefined bits (defined: {ALL:#04x})"
            )));
        }
        if fl & LEAF != 0 {
            continue;
        }
        let (l, r) = (left[i] as usize, right[i] as usize);
        for (side, c) in [("left", l), ("right", r)] {
            if c <= i || c >= n_nodes {
                return Err(cx.err(format!(
                    "node {i}: {side} child {c} must point forward, within {i}+1..{n_nodes}"
                )));
            }
        }
        let f = feature[i];
        if f < 0 || f as usize >= n_features {
            return Err(cx.err(format!("node {i}: feature {f} outside 0..{n_features}")));
        }
        any_categorical |= fl & CATEGORICAL != 0;
        any_zero_missing |= fl & ZERO_IS_MISSING != 0;
    }
    let mut cat: Option<(&[u32], &[u32])> = None;
    let mut members_left = true;
    let mut negative_invalid = false;
    if any_categorical {
        let offsets = cx.required::<u32>(attr::CAT_OFFSETS)?;
        let bits = cx.required::<u32>(attr::CAT_BITS)?;
        cx.check_len(attr::CAT_OFFSETS, offsets.len(), n_nodes + 1)?;
        let mut prev = 0u32;
        for (i, &o) in offsets.iter().enumerate() {
            if o < prev || o as usize > bits.len() {
                return Err(cx.err(format!(
                    "cat_offsets[{i}] = {o} must be within {prev}..={} (monotonic, inside cat_bits)",
                    bits.len()
                )));
            }
            prev = o;
        }
        members_left = cx.choice(attr::CATEGORICAL_MEMBERS, &["left", "right"], None)? == 0;
        let rule = match cx.string(attr::CATEGORICAL_RULE)? {
            Some(v) => CategoricalRule::parse(v).map_err(|e| cx.err(e.to_string()))?,
            None => CategoricalRule::default(),
        };
        negative_invalid = rule == CategoricalRule::XgBoost;
        cat = Some((offsets, bits));
    }

    // Walk the trees depth first: each node reached once, depth bounded.
    let mut seen = vec![false; n_nodes];
    let mut tree_walks = Vec::with_capacity(n_trees);
    let mut depth = Vec::with_capacity(n_trees);
    let mut stack: Vec<(u32, u32, Option<usize>)> = Vec::new();
    for (k, &root) in roots.iter().enumerate() {
        if root as usize >= n_nodes {
            return Err(cx.err(format!("tree {k}: root {root} outside 0..{n_nodes}")));
        }
        let mut w = Walk {
            order: Vec::new(),
            right: Vec::new(),
        };
        let mut max_d = 0u32;
        stack.clear();
        stack.push((root, 0, None));
        while let Some((orig, d, patch)) = stack.pop() {
            let o = orig as usize;
            if std::mem::replace(&mut seen[o], true) {
                return Err(cx.err(format!(
                    "tree {k}: node {o} is reached twice (every node must have one parent)"
                )));
            }
            if d as usize > MAX_DEPTH {
                return Err(cx.err(format!("tree {k}: depth exceeds the limit of {MAX_DEPTH}")));
            }
            let at = w.order.len();
            if let Some(p) = patch {
                w.right[p] = at as u32;
            }
            w.order.push(orig);
            w.right.push(0);
            if flags[o] & LEAF != 0 {
                max_d = max_d.max(d);
            } else {
                // Right first so that the left child is laid out next.
                stack.push((right[o], d + 1, Some(at)));
                stack.push((left[o], d + 1, None));
            }
        }
        depth.push(max_d);
        tree_walks.push(w);
    }

    // Targets and divisors.
    let mut target = vec![0u32; n_trees];
    if leaf_dim == 1 {
        if let Some(t) = targets {
            for (k, &tk) in t.iter().enumerate() {
                if tk as usize >= n_targets {
                    return Err(cx.err(format!("tree_targets[{k}] = {tk} outside 0..{n_targets}")));
                }
            }
            target.copy_from_slice(t);
        }
    }
    let mut divisor = vec![0.0; n_targets];
    if average {
        if leaf_dim == 1 {
            let mut count = vec![0usize; n_targets];
            for &t in &target {
                count[t as usize] += 1;
            }
            for (d, c) in divisor.iter_mut().zip(count) {
                *d = c as f64;
            }
        } else {
            divisor.fill(n_trees as f64);
        }
    }

    // Lay out.
    let total: usize = tree_walks.iter().map(|w| w.order.len()).sum();
    let mut leaf = vec![0.0f64; total * leaf_dim];
    let mut tree_roots = Vec::with_capacity(n_trees);
    let mut layout: Vec<(u32, u32)> = Vec::with_capacity(total); // (orig, right) per laid-out node
    for (k, w) in tree_walks.iter().enumerate() {
        let start = layout.len();
        tree_roots.push(start as u32);
        let wk = weights.map_or(1.0, |w| w[k]);
        for (j, (&orig, &r)) in w.order.iter().zip(&w.right).enumerate() {
            let at = start + j;
            let o = orig as usize;
            if flags[o] & LEAF != 0 {
                let src = &leaf_values[o * leaf_dim..(o + 1) * leaf_dim];
                for (dst, &v) in leaf[at * leaf_dim..(at + 1) * leaf_dim].iter_mut().zip(src) {
                    *dst = wk * v;
                }
                layout.push((orig, at as u32));
            } else {
                layout.push((orig, (start + r as usize) as u32));
            }
        }
    }
    // Children of laid-out node `at` (left laid out next; a leaf points to itself twice), as
    // byte offsets of records of `size` bytes.
    let child = |at: usize, r: u32, fl: u8, size: usize| -> [u32; 2] {
        let b = |k: usize| (k * size) as u32;
        if fl & LEAF != 0 {
            [b(at); 2]
        } else {
            [b(at + 1), b(r as usize)]
        }
    };
    let s32 = std::mem::size_of::<Rec<f32>>();
    let s64 = std::mem::size_of::<Rec<f64>>();
    let general = any_categorical || any_zero_missing;
    let mut any_dl = false;
    let mut dl_of = vec![false; total];
    let nodes = if general {
        let (offsets, bits) = cat.unwrap_or((&[], &[]));
        let mut recs = Vec::with_capacity(total);
        let mut ext = Vec::with_capacity(total);
        for (at, &(orig, r)) in layout.iter().enumerate() {
            let o = orig as usize;
            let fl = flags[o];
            let leafy = fl & LEAF != 0;
            recs.push(Rec {
                thr: threshold[o],
                feat: if leafy { 0 } else { feature[o] as u32 },
                child: child(at, r, flags[orig as usize], s64),
            });
            let (lo, hi) = if fl & CATEGORICAL != 0 && !leafy {
                (
                    offsets.get(o).copied().unwrap_or(0),
                    offsets.get(o + 1).copied().unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            ext.push(Ext {
                flags: if leafy { LEAF } else { fl },
                cat_lo: lo,
                cat_hi: hi,
            });
        }
        Nodes::General {
            recs,
            ext,
            cat_bits: bits.to_vec(),
        }
    } else {
        // Fast records: `x <= t'` in the input precision; NaN goes left iff DL_BIT.
        let fast = |o: usize| -> (u32, f64, bool) {
            let fl = flags[o];
            let t = threshold[o];
            let dl = if fl & NAN_IS_ZERO != 0 {
                // NaN is replaced by 0.0 and compared: it goes where 0.0 goes.
                if lt {
                    0.0 < t
                } else {
                    0.0 <= t
                }
            } else {
                fl & MISSING_LEFT != 0
            };
            (feature[o] as u32, t, dl)
        };
        let mut recs32 = Vec::with_capacity(total);
        let mut recs64 = Vec::with_capacity(if f32_precision { 0 } else { total });
        for (at, &(orig, r)) in layout.iter().enumerate() {
            let o = orig as usize;
            let (ch32, ch64) = (child(at, r, flags[o], s32), child(at, r, flags[o], s64));
            if flags[o] & LEAF != 0 {
                recs32.push(Rec {
                    thr: f32::NAN,
                    feat: 0,
                    child: ch32,
                });
                if !f32_precision {
                    recs64.push(Rec {
                        thr: f64::NAN,
                        feat: 0,
                        child: ch64,
                    });
                }
            } else {
                let (feat, t, dl) = fast(o);
                any_dl |= dl;
                dl_of[at] = dl;
                // For f32 precision the input is rounded to f32 first; for f64 precision an
                // f32 input widens exactly: either way `x32 <= t'` decides (threshold.rs).
                recs32.push(Rec {
                    thr: le_threshold_f32(t, lt),
                    feat,
                    child: ch32,
                });
                if !f32_precision {
                    recs64.push(Rec {
                        thr: le_threshold_f64(t, lt),
                        feat,
                        child: ch64,
                    });
                }
            }
        }
        if f32_precision {
            Nodes::F32(recs32)
        } else {
            Nodes::F64 {
                recs: recs64,
                f32: recs32,
            }
        }
    };

    // Tree groups for the batch kernel (by bytes) and the row kernel (by count).
    let rec_bytes = match nodes {
        Nodes::F32(_) => std::mem::size_of::<Rec<f32>>(),
        Nodes::F64 { .. } => std::mem::size_of::<Rec<f64>>(),
        Nodes::General { .. } => std::mem::size_of::<Rec<f64>>() + std::mem::size_of::<Ext>(),
    };
    let scratch_bytes = SUPER_ROWS * n_features.max(1) * if f32_precision { 4 } else { 8 };
    let budget = GROUP_BYTES.saturating_sub(scratch_bytes / 2).max(16 * 1024);
    let mut groups: Vec<Range<usize>> = Vec::new();
    let (mut g0, mut bytes) = (0usize, 0usize);
    for (k, w) in tree_walks.iter().enumerate() {
        let b = w.order.len() * (rec_bytes + 8 * leaf_dim);
        if k > g0 && bytes + b > budget {
            groups.push(g0..k);
            g0 = k;
            bytes = 0;
        }
        bytes += b;
    }
    if g0 < n_trees {
        groups.push(g0..n_trees);
    }
    // Row kernel: windows of ROW_WINDOW consecutive trees, sorted by depth within the window
    // and cut into groups of ROW_TREES (walked together to the deepest of the group).
    let mut row_windows = Vec::with_capacity(n_trees.div_ceil(ROW_WINDOW));
    let mut row_groups = Vec::with_capacity(n_trees.div_ceil(ROW_TREES));
    for a in (0..n_trees).step_by(ROW_WINDOW) {
        let b = (a + ROW_WINDOW).min(n_trees);
        let mut order: Vec<usize> = (a..b).collect();
        order.sort_by_key(|&k| depth[k]);
        let g0 = row_groups.len();
        let mut walked = [false; ROW_WINDOW];
        let mut ready = 0;
        for chunk in order.chunks(ROW_TREES) {
            let mut g = RowGroup {
                roots: [tree_roots[chunk[0]]; ROW_TREES],
                pos: [ROW_WINDOW as u8; ROW_TREES],
                depth: chunk.iter().map(|&k| depth[k]).max().unwrap_or(0),
                ready: 0,
            };
            for (j, &k) in chunk.iter().enumerate() {
                g.roots[j] = tree_roots[k];
                g.pos[j] = (k - a) as u8;
                walked[k - a] = true;
            }
            while ready < b - a && walked[ready] {
                ready += 1;
            }
            g.ready = ready as u8;
            row_groups.push(g);
        }
        row_windows.push(RowWindow {
            trees: a..b,
            groups: g0..row_groups.len(),
        });
    }

    // Records of the feature-major batch kernel: feature offsets in bytes, when they fit.
    let fm = match &nodes {
        Nodes::F32(r) | Nodes::F64 { f32: r, .. }
            if cfg!(target_arch = "x86_64") && n_features * FM_STRIDE <= u32::MAX as usize =>
        {
            r.iter()
                .map(|r| Rec {
                    thr: f32::from_bits(super::kernel::threshold_key(r.thr)),
                    feat: r.feat * FM_STRIDE as u32,
                    child: r.child,
                })
                .collect()
        }
        _ => Vec::new(),
    };

    // The same kernel over f64 inputs of an f64 model: thresholds as ranks.
    let (fm_ranks, thresholds) = match &nodes {
        Nodes::F64 { recs, .. } if !fm.is_empty() => rank_records(recs, &fm, n_features),
        _ => (Vec::new(), Vec::new()),
    };
    let (rank_index, rank_buckets, ranks) = rank_index(&thresholds);

    Ok(TreeEnsemble {
        fm,
        fm_ranks,
        ranks,
        rank_index,
        rank_buckets,
        n_features,
        width: n_features.max(1),
        n_targets,
        leaf_dim,
        nodes,
        any_dl,
        dl: dl_of,
        f32_precision,
        lt,
        members_left,
        negative_invalid,
        leaf,
        roots: tree_roots,
        depth,
        target,
        groups,
        row_windows,
        row_groups,
        divisor,
        base,
    })
}

/// The most buckets of a feature's `RankIndex`.
const MAX_RANK_BUCKETS: usize = 1024;

/// The `RankIndex` of each feature's thresholds (`per[f]`, ascending and distinct), their
/// buckets, and the thresholds laid end to end, each feature's followed by [`RANK_PAD`] `+inf`
/// (`TreeEnsemble::ranks`).
fn rank_index(per: &[Vec<f64>]) -> (Vec<RankIndex>, Vec<u32>, Vec<f64>) {
    let mut index = Vec::with_capacity(per.len());
    let mut buckets = Vec::new();
    let total: usize = per.iter().map(|l| l.len() + RANK_PAD).sum();
    let mut padded = Vec::with_capacity(total);
    for list in per {
        let lo = padded.len() as u32;
        padded.extend_from_slice(list);
        let hi = padded.len() as u32;
        padded.extend([f64::INFINITY; RANK_PAD]);
        let finite = || list.iter().copied().filter(|t| t.is_finite());
        let (min, max) = match (finite().next(), finite().next_back()) {
            (Some(a), Some(b)) => (a, b),
            _ => (0.0, 0.0),
        };
        // About four buckets per threshold, more while a bucket holds more than RANK_PAD of
        // them: up to 16 per threshold and MAX_RANK_BUCKETS (the tables stay within a small
        // multiple of the model's nodes).
        let most = (16 * list.len()).clamp(16, MAX_RANK_BUCKETS);
        let mut want = (4 * list.len()).next_power_of_two().clamp(16, most);
        let first = buckets.len();
        let ix = loop {
            buckets.truncate(first);
            // A range too wide for f64 (or a single value) gets one bucket: every value is
            // clamped to 0 and scaled by 0 (so the product is never inf * 0).
            let scale = want as f64 / (max - min);
            let (min, max, scale) = if (max - min).is_finite() && scale.is_finite() {
                (min, max, scale)
            } else {
                (0.0, 0.0, 0.0)
            };
            let mut ix = RankIndex {
                lo,
                hi,
                min,
                max,
                scale,
                first: first as u32,
                ..RankIndex::default()
            };
            // The bucket of `max` is the last (about `want`; rounding may add one).
            ix.buckets = ix.bucket(max) as u32 + 1;
            let mut below = 0usize;
            for b in 0..ix.buckets as usize {
                while list.get(below).is_some_and(|&t| ix.bucket(t) < b) {
                    below += 1;
                }
                buckets.push(below as u32);
            }
            buckets.push(list.len() as u32);
            let widest = buckets[first..]
                .windows(2)
                .map(|b| b[1] - b[0])
                .max()
                .unwrap_or(0);
            ix.narrow = widest as usize <= RANK_PAD;
            if ix.narrow || want >= most || ix.scale == 0.0 {
                break ix;
            }
            want = (want * 2).min(most);
        };
        index.push(ix);
    }
    (index, buckets, padded)
}

/// The records of the feature-major kernel for f64 inputs of an f64 model, and the thresholds
/// they rank (see `TreeEnsemble::fm_ranks`): per feature, the distinct non-NaN thresholds
/// `t'` of its internal records, ascending (`-0.0` and `+0.0` are one); a record's threshold
/// becomes the key of its rank `i` in that list (a NaN threshold, leaves included, the key
/// that sends every input right). An input `x` becomes `k(x)`, the number of its feature's
/// thresholds below it: `x <= t_i` exactly when `k(x) <= i`, since the list is strictly
/// increasing. Features and children are those of `fm` (the same nodes laid out as f32
/// records: children are byte offsets of 16-byte records, features byte offsets).
fn rank_records(
    recs: &[Rec<f64>],
    fm: &[Rec<f32>],
    n_features: usize,
) -> (Vec<Rec<f32>>, Vec<Vec<f64>>) {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); n_features];
    for r in recs {
        if !r.thr.is_nan() {
            if let Some(v) = per.get_mut(r.feat as usize) {
                v.push(r.thr);
            }
        }
    }
    for v in &mut per {
        v.sort_by(f64::total_cmp);
        v.dedup_by(|a, b| a == b);
    }
    let ranked = recs
        .iter()
        .zip(fm)
        .map(|(r, f)| {
            let key = match per.get(r.feat as usize) {
                Some(list) if !r.thr.is_nan() => list.partition_point(|&b| b < r.thr) as u32,
                _ => i32::MIN as u32,
            };
            Rec {
                thr: f32::from_bits(key),
                feat: f.feat,
                child: f.child,
            }
        })
        .collect();
    (ranked, per)
}
