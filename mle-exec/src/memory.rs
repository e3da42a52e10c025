//! The memory planner: buffers with live intervals over the ordered plan are packed into one
//! arena so that buffers whose lifetimes overlap never share bytes.
//!
//! Sizes are in bytes *per row* (multiples of 8); a chunk of `n` rows scales every offset and
//! size by `n`, so one plan serves every batch size and offsets stay 8-byte aligned.

/// Above this many buffers the planner stops sharing memory (its search is quadratic).
const MAX_SHARED: usize = 4096;

/// One buffer to place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buffer {
    /// Bytes per row (a multiple of 8).
    pub size: usize,
    /// First time step it is live (`usize::MAX`: never used).
    pub first: usize,
    /// Last time step it is live.
    pub last: usize,
}

/// Greedy best-fit by decreasing size: each buffer takes the lowest offset that does not
/// overlap a placed buffer live at the same time. Returns the offsets (bytes per row; `None`
/// for unused buffers) and the arena size (bytes per row).
pub(crate) fn plan_offsets(buffers: &[Buffer]) -> (Vec<Option<usize>>, usize) {
    let mut order: Vec<usize> = (0..buffers.len())
        .filter(|&i| buffers[i].first != usize::MAX && buffers[i].size > 0)
        .collect();
    order.sort_by(|&a, &b| {
        buffers[b]
            .size
            .cmp(&buffers[a].size)
            .then(buffers[a].first.cmp(&buffers[b].first))
    });
    let mut offsets: Vec<Option<usize>> = vec![None; buffers.len()];
    if order.len() > MAX_SHARED {
        // Very large graphs: no sharing (linear time) rather than a quadratic search.
        let mut total = 0usize;
        for (i, b) in buffers.iter().enumerate() {
            if b.first != usize::MAX {
                offsets[i] = Some(total);
                total = total.saturating_add(b.size);
            }
        }
        return (offsets, total);
    }
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new(); // (off, size, first, last)
    let mut total = 0usize;
    for i in order {
        let b = buffers[i];
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|p| p.2 <= b.last && b.first <= p.3)
            .map(|p| (p.0, p.1))
            .collect();
        conflicts.sort_unstable();
        let mut off = 0usize;
        for (o, s) in conflicts {
            if off + b.size <= o {
                break;
            }
            off = off.max(o + s);
        }
        placed.push((off, b.size, b.first, b.last));
        offsets[i] = Some(off);
        total = total.max(off + b.size);
    }
    // Zero-sized but used buffers sit at offset 0.
    for (i, b) in buffers.iter().enumerate() {
        if b.first != usize::MAX && b.size == 0 {
            offsets[i] = Some(0);
        }
    }
    (offsets, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        let bufs = [
            Buffer {
                size: 64,
                first: 0,
                last: 1,
            },
            Buffer {
                size: 64,
                first: 1,
                last: 2,
            },
            Buffer {
                size: 64,
                first: 2,
                last: 3,
            },
            Buffer {
                size: 8,
                first: usize::MAX,
                last: 0,
            },
        ];
        let (off, total) = plan_offsets(&bufs);
        assert_eq!(off[3], None);
        // 0 and 2 do not overlap in time: they may share; 1 overlaps both.
        assert_eq!(total, 128);
        let (a, b, c) = (off[0].unwrap(), off[1].unwrap(), off[2].unwrap());
        assert!(a + 64 <= b || b + 64 <= a);
        assert!(c + 64 <= b || b + 64 <= c);
    }

    #[test]
    fn no_two_live_buffers_overlap_randomized() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = (next() % 20) as usize + 1;
            let bufs: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = (next() % 10) as usize;
                    Buffer {
                        size: 8 * (next() % 8) as usize,
                        first,
                        last: first + (next() % 5) as usize,
                    }
                })
                .collect();
            let (off, total) = plan_offsets(&bufs);
            for i in 0..n {
                let oi = off[i].unwrap();
                assert!(oi + bufs[i].size <= total);
                for j in 0..i {
                    let oj = off[j].unwrap();
                    let live = bufs[i].first <= bufs[j].last && bufs[j].first <= bufs[i].last;
                    let mem = oi < oj + bufs[j].size && oj < oi + bufs[i].size;
                    assert!(!(live && mem), "buffers {i} and {j} overlap");
                }
            }
        }
    }
}
