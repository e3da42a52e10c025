//! String and dictionary columns: `Batch::from_strided` accepts Arrow's layouts (Utf8,
//! LargeUtf8, Utf8View, dictionaries, validity bitmaps) and refuses everything a host could
//! get wrong with an `ExecError::Input` naming the column, never a panic; strings are read
//! in place. A string column for a numeric feature (no Lookup) is refused by the session,
//! naming the feature.

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::{
    Batch, Column, ColumnData, DictColumn, DictKeys, ExecError, RunOptions, Session, StrColumn,
    StrData, Validity,
};
use mle_format::{DType, Node};

fn utf8<'a>(offsets: &'a [i32], bytes: &'a [u8], len: usize) -> StrColumn<'a> {
    StrColumn {
        data: StrData::Utf8 { offsets, bytes },
        validity: None,
        len,
    }
}

fn col(data: ColumnData<'_>, offset: usize, stride: usize) -> Column<'_> {
    Column {
        data,
        offset,
        stride,
    }
}

/// The error of building a one-column batch of `n` rows from `c`.
fn refused(c: Column<'_>, n: usize) -> String {
    match Batch::from_strided(vec![col(ColumnData::F64(&[0.0; 4]), 0, 0), c], n) {
        Err(ExecError::Input(m)) => m,
        Err(e) => panic!("expected an input error, got {e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// An Arrow view of a string of at most 12 bytes.
fn inline_view(s: &str) -> u128 {
    assert!(s.len() <= 12);
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&(s.len() as u32).to_le_bytes());
    b[4..4 + s.len()].copy_from_slice(s.as_bytes());
    u128::from_le_bytes(b)
}

/// An Arrow view of a longer string at `offset` of buffer `buf`.
fn long_view(s: &[u8], buf: u32, offset: u32) -> u128 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&(s.len() as u32).to_le_bytes());
    b[4..8].copy_from_slice(&s[..4]);
    b[8..12].copy_from_slice(&buf.to_le_bytes());
    b[12..16].copy_from_slice(&offset.to_le_bytes());
    u128::from_le_bytes(b)
}

fn read_all(s: &StrColumn<'_>) -> Vec<Option<String>> {
    (0..s.len)
        .map(|i| s.get(i).map(|v| v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn utf8_large_and_view_layouts_read_in_place() {
    let bytes = "ParisZürich".as_bytes();
    let offs = [0, 5, 12, 12];
    let valid = [0b101u8];
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes,
        },
        validity: Some(Validity {
            bits: &valid,
            offset: 0,
        }),
        len: 3,
    };
    let b = Batch::from_columns(vec![ColumnData::Str(s)]).unwrap();
    assert_eq!(b.n_rows(), 3);
    assert_eq!(
        read_all(&s),
        [Some("Paris".to_string()), None, Some(String::new())]
    );
    // A borrowed value points into the buffer.
    let v = s.get(0).unwrap();
    assert_eq!(v.as_bytes().as_ptr(), bytes.as_ptr());

    let loffs = [3i64, 5, 12];
    let l = StrColumn {
        data: StrData::LargeUtf8 {
            offsets: &loffs,
            bytes,
        },
        validity: None,
        len: 2,
    };
    Batch::from_columns(vec![ColumnData::Str(l)]).unwrap();
    assert_eq!(
        read_all(&l),
        [Some("is".to_string()), Some("Zürich".to_string())]
    );

    let long = b"a rather long category";
    let buf0: &[u8] = b"xx";
    let mut buf1 = b"--".to_vec();
    buf1.extend_from_slice(long);
    let buffers: [&[u8]; 2] = [buf0, &buf1];
    let views = [inline_view("short"), long_view(long, 1, 2), inline_view("")];
    let v = StrColumn {
        data: StrData::View {
            views: &views,
            buffers: &buffers,
        },
        validity: None,
        len: 3,
    };
    Batch::from_columns(vec![ColumnData::Str(v)]).unwrap();
    assert_eq!(
        read_all(&v),
        [
            Some("short".to_string()),
            Some("a rather long category".to_string()),
            Some(String::new())
        ]
    );
}

#[test]
fn offsets_are_checked() {
    let bytes = b"abcdef";
    let m = refused(col(ColumnData::Str(utf8(&[0, 2], bytes, 2)), 0, 1), 2);
    assert!(
        m.contains("column 1") && m.contains("offsets hold 2 entries, 3 needed"),
        "{m}"
    );
    let m = refused(col(ColumnData::Str(utf8(&[0, 4, 2], bytes, 2)), 0, 1), 2);
    assert!(m.contains("offset 2 is 2, below offset 1"), "{m}");
    let m = refused(col(ColumnData::Str(utf8(&[0, 4, 7], bytes, 2)), 0, 1), 2);
    assert!(m.contains("offset 2 is 7, outside the 6 bytes"), "{m}");
    let m = refused(col(ColumnData::Str(utf8(&[-1, 4, 6], bytes, 2)), 0, 1), 2);
    assert!(m.contains("offset 0 is -1"), "{m}");
    let loffs = [0i64, i64::MAX];
    let large = StrColumn {
        data: StrData::LargeUtf8 {
            offsets: &loffs,
            bytes,
        },
        validity: None,
        len: 1,
    };
    let m = refused(col(ColumnData::Str(large), 0, 1), 1);
    assert!(m.contains("outside the 6 bytes"), "{m}");
}

#[test]
fn utf8_is_checked_per_valid_string() {
    // "é" is c3 a9: an offset between its two bytes splits it.
    let bytes = "aé".as_bytes();
    let m = refused(col(ColumnData::Str(utf8(&[0, 2, 3], bytes, 2)), 0, 1), 2);
    assert!(m.contains("string 0 is not valid UTF-8"), "{m}");
    let bad = [b'o', b'k', 0xff, 0xfe];
    let m = refused(col(ColumnData::Str(utf8(&[0, 2, 4], &bad, 2)), 0, 1), 2);
    assert!(m.contains("string 1 is not valid UTF-8"), "{m}");
    // The same garbage in a NULL slot is never read: accepted.
    let valid = [0b01u8];
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &[0, 2, 4],
            bytes: &bad,
        },
        validity: Some(Validity {
            bits: &valid,
            offset: 0,
        }),
        len: 2,
    };
    Batch::from_columns(vec![ColumnData::Str(s)]).unwrap();
    assert_eq!(read_all(&s), [Some("ok".to_string()), None]);
}

#[test]
fn views_are_checked() {
    let buf: &[u8] = b"0123456789abcdefghij";
    let buffers = [buf];
    let cases: [(u128, &str); 4] = [
        (
            long_view(b"0123456789abcd", 1, 0),
            "names buffer 1, but there are 1",
        ),
        (long_view(b"0123456789abcd", 0, 10), "spans bytes 10..10+14"),
        (long_view(b"0123456789abcd", 0, u32::MAX), "spans bytes"),
        (inline_view("ok"), ""),
    ];
    for (v, want) in cases {
        let views = [v];
        let s = StrColumn {
            data: StrData::View {
                views: &views,
                buffers: &buffers,
            },
            validity: None,
            len: 1,
        };
        let r = Batch::from_columns(vec![ColumnData::Str(s)]);
        if want.is_empty() {
            r.unwrap();
        } else {
            let m = r.unwrap_err().to_string();
            assert!(m.contains("column 0") && m.contains(want), "{m}");
        }
    }
    let mut inline_bad = inline_view("ab").to_le_bytes();
    inline_bad[4] = 0xff;
    let views = [u128::from_le_bytes(inline_bad)];
    let s = StrColumn {
        data: StrData::View {
            views: &views,
            buffers: &buffers,
        },
        validity: None,
        len: 1,
    };
    let m = refused(col(ColumnData::Str(s), 0, 1), 1);
    assert!(m.contains("not valid UTF-8"), "{m}");
    let s = StrColumn {
        data: StrData::View {
            views: &views,
            buffers: &buffers,
        },
        validity: None,
        len: 2,
    };
    let m = refused(col(ColumnData::Str(s), 0, 1), 1);
    assert!(m.contains("views hold 1 entries, 2 needed"), "{m}");
}

#[test]
fn dictionary_keys_are_checked_except_null_slots() {
    let bytes = b"redgreenblue";
    let offs = [0, 3, 8, 12];
    let values = utf8(&offs, bytes, 3);
    let keys = [2i8, 0, -1, 1];
    // Slot 2 (key -1) is NULL: its key is not checked.
    let valid = [0b1011u8];
    let d = DictColumn {
        keys: DictKeys::I8(&keys),
        validity: Some(Validity {
            bits: &valid,
            offset: 0,
        }),
        values,
    };
    Batch::from_columns(vec![ColumnData::Dict(d)]).unwrap();
    let d = DictColumn {
        keys: DictKeys::I8(&keys),
        validity: None,
        values,
    };
    let m = refused(col(ColumnData::Dict(d), 0, 1), 4);
    assert!(
        m.contains("key 2 is -1, outside the dictionary of 3 values"),
        "{m}"
    );
    let ukeys = [0u64, 3];
    let d = DictColumn {
        keys: DictKeys::U64(&ukeys),
        validity: None,
        values,
    };
    let m = refused(col(ColumnData::Dict(d), 0, 1), 2);
    assert!(m.contains("key 1 is 3"), "{m}");
    // Only the slots a batch reads are checked: rows 0..1 of the same column are fine.
    Batch::from_strided(vec![col(ColumnData::Dict(d), 0, 1)], 1).unwrap();
    // The dictionary itself is checked as a string column.
    let bad_values = utf8(&[0, 3, 2, 12], bytes, 3);
    let d = DictColumn {
        keys: DictKeys::U8(&[0]),
        validity: None,
        values: bad_values,
    };
    let m = refused(col(ColumnData::Dict(d), 0, 1), 1);
    assert!(m.contains("dictionary offset 2 is 2"), "{m}");
}

#[test]
fn lengths_strides_and_bitmaps_are_checked() {
    let bytes = b"abc";
    let s = utf8(&[0, 1, 2, 3], bytes, 3);
    let m = refused(col(ColumnData::Str(s), 0, 1), 4);
    assert!(m.contains("holds 3 values, too few for 4 rows"), "{m}");
    let m = refused(col(ColumnData::Str(s), 1, 1), 3);
    assert!(m.contains("too few for 3 rows (offset 1"), "{m}");
    let m = refused(col(ColumnData::Str(s), 0, 2), 1);
    assert!(m.contains("stride 1 or 0"), "{m}");
    let m = refused(col(ColumnData::Str(s), usize::MAX, 0), 2);
    assert!(m.contains("too few"), "{m}");
    // A broadcast literal: one slot for any number of rows.
    Batch::from_strided(
        vec![
            col(ColumnData::F64(&[0.0; 4]), 0, 1),
            col(ColumnData::Str(s), 2, 0),
        ],
        4,
    )
    .unwrap();
    let bits = [0xffu8];
    let s = StrColumn {
        validity: Some(Validity {
            bits: &bits,
            offset: 6,
        }),
        ..s
    };
    let m = refused(col(ColumnData::Str(s), 0, 1), 3);
    assert!(
        m.contains("validity bitmap holds 1 bytes, too few for 3 slots from bit 6"),
        "{m}"
    );
    let s = StrColumn {
        validity: Some(Validity {
            bits: &bits,
            offset: usize::MAX,
        }),
        ..s
    };
    refused(col(ColumnData::Str(s), 0, 1), 3);
    // Empty batches read nothing.
    Batch::from_strided(vec![col(ColumnData::Str(utf8(&[0], b"", 0)), 0, 1)], 0).unwrap();
}

/// A one-tree model over two numeric features.
fn numeric_model() -> Arc<mle_exec::Model> {
    use mle_format::tree::{Comparison, Precision, TreeEnsembleSpec};
    let mut b = builder(
        2,
        DType::F64,
        vec![],
        vec![],
        vec![vi("y", DType::F64, &[-1, 1])],
    );
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let root = s.split(1, 0.5, 1, 2, 0);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(root, 0, 1.0);
    s.write(&mut b, "t", "X", "y").unwrap();
    b.push_node(Node::new("id", "Identity", &["y"], &["unused"]));
    let bytes = b.to_bytes(&Default::default()).unwrap();
    Arc::new(mle_exec::Model::from_bytes(&bytes, "num.mle").unwrap())
}

#[test]
fn a_string_column_for_a_numeric_feature_is_refused_naming_it() {
    let model = numeric_model();
    let a = [1.0, 2.0];
    let s = utf8(&[0, 1, 2], b"ab", 2);
    let batch = Batch::from_columns(vec![ColumnData::F64(&a), ColumnData::Str(s)]).unwrap();
    let mut session = Session::new(model);
    let e = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, ExecError::Input(_)), "{m}");
    assert!(
        m.contains("feature \"f1\" (column 1)") && m.contains("string column"),
        "{m}"
    );
}
