//! The executor's operator registry (`mle_exec::ops()`) and `docs/OPS.md` list the same
//! operators, each with the same attributes.
//!
//! OPS.md's operator tables (header `| op | … | attributes | … |`) give, per row, the operator
//! names (backticked, first column) and the attributes (backticked `name: kind` spans of the
//! attributes column). A row whose attributes column says "see below" takes its attributes from
//! the `| attribute | … |` table under the section heading naming that operator.

use std::collections::{BTreeMap, BTreeSet};

const OPS_MD: &str = include_str!("../../docs/OPS.md");

/// The backticked spans of `cell`.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The cells of a table row (`| a | b |`), trimmed.
fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

fn is_separator(line: &str) -> bool {
    line.trim_start().starts_with("|---") || line.trim_start().starts_with("| ---")
}

type Table = BTreeMap<String, BTreeSet<String>>;

/// Operators → attributes, as OPS.md lists them.
fn parse(md: &str) -> Table {
    let mut ops: Table = BTreeMap::new();
    // Operators whose attributes are in a separate table ("see below").
    let mut see_below: BTreeSet<String> = BTreeSet::new();
    // Section heading's operator → attributes of its `| attribute |` table.
    let mut attr_tables: Table = BTreeMap::new();
    let mut heading_op: Option<String> = None;
    // The kind of table being read: Some(attributes column) for an op table, None for an
    // attribute table; outer None outside tables.
    let mut table: Option<Option<usize>> = None;
    for line in md.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('#') {
            heading_op = spans(h).first().map(|s| s.to_string());
            table = None;
            continue;
        }
        if !t.starts_with('|') {
            table = None;
            continue;
        }
        if is_separator(t) {
            continue;
        }
        let row = cells(t);
        match table {
            None => {
                // A header row.
                table = match row.first().copied() {
                    Some("op") => Some(Some(
                        row.iter()
                            .position(|c| *c == "attributes")
                            .expect("an op table has an attributes column"),
                    )),
                    Some("attribute") => Some(None),
                    _ => None,
                };
            }
            Some(Some(col)) => {
                let names = spans(row[0]);
                assert!(!names.is_empty(), "op row without an op name: {t}");
                let cell = row.get(col).copied().unwrap_or("");
                let attrs: BTreeSet<String> = spans(cell)
                    .into_iter()
                    .filter_map(|s| s.split_once(':').map(|(n, _)| n.trim().to_string()))
                    .collect();
                for n in names {
                    assert!(
                        ops.insert(n.to_string(), attrs.clone()).is_none(),
                        "op {n} listed twice in OPS.md"
                    );
                    if cell.contains("see below") {
                        see_below.insert(n.to_string());
                    }
                }
            }
            Some(None) => {
                let op = heading_op
                    .clone()
                    .expect("an attribute table sits under a heading naming its op");
                let entry = attr_tables.entry(op).or_default();
                for n in spans(row[0]) {
                    entry.insert(n.to_string());
                }
            }
        }
    }
    for op in see_below {
        let attrs = attr_tables
            .remove(&op)
            .unwrap_or_else(|| panic!("{op} says \"see below\" but has no attribute table"));
        ops.insert(op, attrs);
    }
    assert!(
        attr_tables.is_empty(),
        "attribute tables for ops whose row does not say \"see below\": {:?}",
        attr_tables.keys().collect::<Vec<_>>()
    );
    ops
}

fn registry() -> Table {
    let mut t: Table = BTreeMap::new();
    for op in mle_exec::ops() {
        let attrs: BTreeSet<String> = op.attributes().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            attrs.len(),
            op.attributes().len(),
            "{} lists an attribute twice",
            op.name()
        );
        assert!(
            t.insert(op.name().to_string(), attrs).is_none(),
            "{} registered twice",
            op.name()
        );
    }
    t
}

#[test]
fn registry_and_ops_md_list_the_same_ops_and_attributes() {
    let doc = parse(OPS_MD);
    let reg = registry();
    let only_doc: Vec<_> = doc.keys().filter(|k| !reg.contains_key(*k)).collect();
    let only_reg: Vec<_> = reg.keys().filter(|k| !doc.contains_key(*k)).collect();
    assert!(
        only_doc.is_empty() && only_reg.is_empty(),
        "ops only in docs/OPS.md: {only_doc:?}; only in the registry: {only_reg:?}"
    );
    for (op, attrs) in &reg {
        let d = &doc[op];
        assert_eq!(
            d, attrs,
            "{op}: attributes in docs/OPS.md (left) and in the registry (right) differ"
        );
    }
}

#[test]
fn the_parser_reads_rows_names_and_attribute_tables() {
    let md = "\
# Ops

| op | inputs | attributes | semantics |
|---|---|---|---|
| `A` `B` | `X` → `Y` | `alpha: f` (0.1), `shape: is`; `none` is not an attribute | x |
| `C` | | | |
| `T` | | see below | |

## `T`

| attribute | kind | meaning |
|---|---|---|
| `left`, `right` | `T: u32` | children |
| `n` | `i` | count |
";
    let t = parse(md);
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(t.len(), 4);
    assert_eq!(t["A"], set(&["alpha", "shape"]));
    assert_eq!(t["B"], set(&["alpha", "shape"]));
    assert_eq!(t["C"], set(&[]));
    assert_eq!(t["T"], set(&["left", "right", "n"]));
}

#[test]
fn every_registered_op_compiles_or_fails_with_a_typed_error_not_unsupported() {
    // A registered name is dispatched to its lowering: a node with no inputs is refused as an
    // invalid graph (not as an unsupported operator), while an unknown name is unsupported.
    use mle_exec::{ExecError, Model};
    use mle_format::{DType, Metadata, ModelBuilder, Node, Task, ValueInfo, WriteOptions};
    let build = |op: &str| {
        let mut b = ModelBuilder::new(Metadata::new(
            "test",
            "registry",
            Task::Regression,
            vec!["a".into()],
            DType::F64,
            &[("y", DType::F64)],
        ));
        b.set_inputs(vec![ValueInfo {
            name: "X".into(),
            dtype: DType::F64,
            shape: vec![-1, 1],
        }]);
        b.push_node(Node::new("n", op, &[], &["y"]));
        b.set_outputs(vec![ValueInfo {
            name: "y".into(),
            dtype: DType::F64,
            shape: vec![-1],
        }]);
        let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
        Model::from_bytes(&bytes, "registry.mle").map(|_| ())
    };
    for op in mle_exec::ops() {
        match build(op.name()) {
            Err(ExecError::InvalidGraph { node, .. }) => assert_eq!(node, "n", "{}", op.name()),
            other => panic!(
                "{}: expected an invalid-graph error, got {other:?}",
                op.name()
            ),
        }
    }
    assert!(matches!(
        build("NoSuchOp"),
        Err(ExecError::UnsupportedOp { .. })
    ));
}
