//! Fuzz string and dictionary columns from a host: any bytes become an Arrow-like `Utf8`,
//! `LargeUtf8`, `Utf8View` or dictionary column (offsets, views, keys, validity bitmaps and
//! data all taken from the input, so they may be wrong in every way), then
//! `Batch::from_strided` must accept or refuse it with a typed error, and an accepted batch
//! must score through a model whose `Lookup` reads the column (unknown = missing and unknown =
//! error) and read back slot by slot: no panic, no hang.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mle_exec::{
    Batch, Column, ColumnData, DictColumn, DictKeys, Model, RunOptions, Session, StrColumn,
    StrData, Validity,
};
use mle_format::tree::{Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, Metadata, ModelBuilder, Node, Task, ValueInfo, WriteOptions};

fn model(unknown: &str) -> Arc<Model> {
    let meta = Metadata::new(
        "fuzz",
        "lookup",
        Task::Regression,
        vec!["s".into(), "x".into()],
        DType::F64,
        &[("y", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    b.add_vocabulary(
        "v",
        &["a", "bc", "", "\u{e9}t\u{e9}", "a longer category name"],
    )
    .expect("vocabulary");
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, 2],
    }]);
    b.push_node(
        Node::new("lk", "Lookup", &["X"], &["Y"])
            .with("feature", Attr::Int(0))
            .with("bytes", Attr::Tensor("v.bytes".into()))
            .with("offsets", Attr::Tensor("v.offsets".into()))
            .with("unknown", Attr::Str(unknown.into())),
    );
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let root = s.categorical_split(0, &[0b10110], 1, 2, 0);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(root, 0, 1.0);
    s.write(&mut b, "t", "Y", "y").expect("trees");
    b.set_outputs(vec![ValueInfo {
        name: "y".into(),
        dtype: DType::F64,
        shape: vec![-1, 1],
    }]);
    let bytes = b.to_bytes(&WriteOptions::default()).expect("bytes");
    Arc::new(Model::from_bytes(&bytes, "fuzz.mle").expect("model"))
}

fn models() -> &'static [Arc<Model>; 2] {
    static M: OnceLock<[Arc<Model>; 2]> = OnceLock::new();
    M.get_or_init(|| [model("missing"), model("error")])
}

/// Reads little-endian integers from the input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a.to_vec()
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let layout = r.byte() % 4;
    let len = (r.byte() % 24) as usize;
    let n_rows = (r.byte() % 26) as usize;
    let (offset, stride) = match r.byte() % 4 {
        0 => (0, 0),
        1 => ((r.byte() % 4) as usize, 1),
        2 => ((r.byte() % 4) as usize, 0),
        _ => (0, 1),
    };
    let with_validity = r.byte() % 2 == 0;
    let bits = r.take(4);
    let validity = with_validity.then_some(Validity {
        bits: &bits,
        offset: (r.byte() % 9) as usize,
    });
    // Offsets: mostly small increments (valid), sometimes anything.
    let mut offsets32 = Vec::with_capacity(len + 1);
    let mut at = 0i32;
    for _ in 0..=len + (r.byte() % 2) as usize {
        let b = r.byte();
        at = if b == 0xff {
            r.u32() as i32
        } else {
            at.wrapping_add(i32::from(b % 8))
        };
        offsets32.push(at);
    }
    let offsets64: Vec<i64> = offsets32.iter().map(|&o| i64::from(o)).collect();
    let views: Vec<u128> = (0..len)
        .map(|_| {
            let mut v = [0u8; 16];
            let l = r.byte() % 20;
            v[0] = l;
            for b in v.iter_mut().skip(4) {
                *b = if r.byte() % 2 == 0 { b'a' } else { r.byte() };
            }
            if l > 12 {
                v[8] = r.byte() % 3;
                v[12] = r.byte() % 16;
            }
            u128::from_le_bytes(v)
        })
        .collect();
    let keys: Vec<i16> = (0..len).map(|_| i16::from(r.byte() as i8) % 8).collect();
    let bytes = r.0.to_vec();
    let buffers: [&[u8]; 2] = [&bytes, b"a longer category name, twice"];
    let str_col = |data| StrColumn {
        data,
        validity,
        len,
    };
    let values = StrColumn {
        data: StrData::Utf8 {
            offsets: &offsets32,
            bytes: &bytes,
        },
        validity: None,
        len: len.min(offsets32.len().saturating_sub(1)),
    };
    let data = match layout {
        0 => ColumnData::Str(str_col(StrData::Utf8 {
            offsets: &offsets32,
            bytes: &bytes,
        })),
        1 => ColumnData::Str(str_col(StrData::LargeUtf8 {
            offsets: &offsets64,
            bytes: &bytes,
        })),
        2 => ColumnData::Str(str_col(StrData::View {
            views: &views,
            buffers: &buffers,
        })),
        _ => ColumnData::Dict(DictColumn {
            keys: DictKeys::I16(&keys),
            validity,
            values,
        }),
    };
    let xs = vec![0.5; n_rows];
    let cols = vec![
        Column {
            data,
            offset,
            stride,
        },
        Column {
            data: ColumnData::F64(&xs),
            offset: 0,
            stride: 1,
        },
    ];
    let Ok(batch) = Batch::from_strided(cols, n_rows) else {
        return;
    };
    if let ColumnData::Str(s) = batch.columns()[0].data {
        for i in 0..s.len {
            if let Some(v) = s.get(i) {
                assert!(v.as_str().is_some(), "an accepted column holds valid UTF-8");
            }
        }
    }
    for m in models() {
        let mut session = Session::new(m.clone());
        let _ = session.predict_batch(&batch, RunOptions::default());
    }
});
