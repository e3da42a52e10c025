//! A physical optimizer rule for `mle sql`: cut scans of local Parquet files at row groups, by
//! row count.
//!
//! DataFusion cuts a file into byte ranges of equal size, one per partition, and reads a row
//! group in the range that holds its first page. With few row groups that can be far from even:
//! a 10-row-group file over 2 partitions gets 4 and 6 row groups, and as each range is one unit
//! of work, one thread scores half again the other's rows and runs alone at the end. Scoring a
//! model costs per row, not per byte. So this rule cuts each scan into units of whole row groups
//! (one per row group, or runs of them when a scan has more than [`UNITS_PER_PARTITION`] per
//! partition), hands each unit its row groups as a [`ParquetAccessPlan`], and deals the units
//! to the partitions contiguously, in order, balanced by row count. DataFusion's partitions take
//! their next unit from a shared queue when they run out (`enable_file_stream_work_stealing`),
//! so small units also even out rows that cost more than others; with stealing off, each
//! partition still gets its share of the rows. The pruning DataFusion does with predicates and
//! page indexes then runs on each unit's row groups as before.
//!
//! It leaves a scan as DataFusion planned it when the scan keeps an order, reads something other
//! than local Parquet files, already carries access plans, has fewer row groups than partitions,
//! or when a footer cannot be read (the scan then reports that error itself).

use std::fs::File;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// At most this many units of work per partition: row groups are merged into runs beyond it.
pub const UNITS_PER_PARTITION: usize = 16;

/// Cuts each local Parquet scan into units of whole row groups, dealt by row count.
#[derive(Debug, Default)]
pub struct BalancedParquetScan;

impl PhysicalOptimizerRule for BalancedParquetScan {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(exec) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some((config, _)) = exec.downcast_to_file_source::<ParquetSource>() else {
                return Ok(Transformed::no(node));
            };
            match balanced(config) {
                Some(groups) => {
                    let mut config = config.clone();
                    config.file_groups = groups;
                    Ok(Transformed::yes(DataSourceExec::from_data_source(config)))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "balanced_parquet_scan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One row group of the scan: its file (index into the scan's files) and row count.
#[derive(Debug, Clone, Copy)]
struct RowGroup {
    file: usize,
    index: usize,
    rows: i64,
}

/// A scan's layout: its files (each once, in order, with its row group count) and all their
/// row groups.
struct Layout {
    files: Vec<(PartitionedFile, usize)>,
    row_groups: Vec<RowGroup>,
}

/// The new file groups of `config`, or `None` to leave it as planned.
fn balanced(config: &FileScanConfig) -> Option<Vec<FileGroup>> {
    let partitions = config.file_groups.len();
    if partitions < 2
        || config.preserve_order
        || !config.output_ordering.is_empty()
        || config.object_store_url.as_str() != "file:///"
    {
        return None;
    }
    let Layout { files, row_groups } = layout(config)?;
    if row_groups.len() < partitions {
        return None;
    }
    // Units: each row group, or runs of them (balanced by rows) beyond the cap; never across
    // files.
    let cap = partitions.saturating_mul(UNITS_PER_PARTITION);
    let runs: Vec<usize> = if row_groups.len() <= cap {
        (0..row_groups.len()).collect()
    } else {
        assign(&row_groups.iter().map(|g| g.rows).collect::<Vec<_>>(), cap)
    };
    // Row counts come from the footers: a unit's total saturates (`assign` clamps at 0).
    let mut units: Vec<Vec<RowGroup>> = Vec::new();
    let mut last: Option<(usize, usize)> = None;
    for (g, run) in row_groups.iter().zip(runs) {
        match units.last_mut() {
            Some(unit) if last == Some((g.file, run)) => unit.push(*g),
            _ => units.push(vec![*g]),
        }
        last = Some((g.file, run));
    }
    let unit_rows: Vec<i64> = units
        .iter()
        .map(|u| u.iter().map(|g| g.rows.max(0)).fold(0, i64::saturating_add))
        .collect();
    let owner = assign(&unit_rows, partitions);
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    for (unit, p) in units.iter().zip(owner) {
        let first = unit.first()?;
        let (file, count) = files.get(first.file)?;
        let mut plan = ParquetAccessPlan::new_none(*count);
        for g in unit {
            plan.scan(g.index);
        }
        let mut piece = file.clone();
        piece.range = None;
        piece.statistics = None; // they describe the whole file
        groups.get_mut(p)?.push(piece.with_extension(plan));
    }
    if groups.iter().any(Vec::is_empty) {
        return None;
    }
    Some(groups.into_iter().map(FileGroup::new).collect())
}

/// The scan's layout, from the footers; `None` when one cannot be read or a file already has
/// an access plan.
fn layout(config: &FileScanConfig) -> Option<Layout> {
    let mut files: Vec<(PartitionedFile, usize)> = Vec::new();
    let mut row_groups = Vec::new();
    for file in config.file_groups.iter().flat_map(|g| g.files()) {
        if file.extension::<ParquetAccessPlan>().is_some() {
            return None;
        }
        if files
            .iter()
            .any(|(f, _)| f.object_meta.location == file.object_meta.location)
        {
            continue; // another byte range of a file already read
        }
        let path = format!("/{}", file.object_meta.location);
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&File::open(path).ok()?)
            .ok()?;
        for (index, rg) in meta.row_groups().iter().enumerate() {
            row_groups.push(RowGroup {
                file: files.len(),
                index,
                rows: rg.num_rows(),
            });
        }
        files.push((file.clone(), meta.num_row_groups()));
    }
    Some(Layout { files, row_groups })
}

/// The part (of `parts`) each item of `rows` row counts goes to, in order: contiguous runs, the
/// run of part `p` holding the items whose middle row falls in `p`'s `1/parts` share of all
/// rows. A part may get no item.
fn assign(rows: &[i64], parts: usize) -> Vec<usize> {
    let total: i128 = rows.iter().map(|&r| i128::from(r.max(0))).sum();
    let n = parts.max(1) as i128;
    let mut before: i128 = 0;
    rows.iter()
        .map(|&r| {
            let r = i128::from(r.max(0));
            let middle = 2 * before + r; // twice the middle row, to stay in integers
            before += r;
            if total == 0 {
                return 0;
            }
            let p = middle * n / (2 * total);
            usize::try_from(p.min(n - 1)).unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::physical_plan::ExecutionPlanProperties;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use futures::StreamExt;

    /// A Parquet file of `groups` row groups of `per_group` rows: `x` counts from `first`, and a
    /// string column grows with `x`, so later row groups take more bytes for the same rows.
    fn write_file(path: &std::path::Path, first: i64, groups: usize, per_group: usize) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .set_dictionary_enabled(false)
            .build();
        let file = File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        for g in 0..groups {
            let start = first + (g * per_group) as i64;
            let x: Vec<i64> = (start..start + per_group as i64).collect();
            let s: Vec<String> = x
                .iter()
                .map(|v| "ab".repeat(1 + (*v as usize) / 50))
                .collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(x)),
                    Arc::new(StringArray::from(s)),
                ],
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
    }

    /// A session of `partitions` partitions, with the rule or without, and with DataFusion's
    /// work stealing between scan partitions on or off (off: each reads its own units only).
    fn context(partitions: usize, balanced: bool, stealing: bool) -> SessionContext {
        let mut config = SessionConfig::new().with_target_partitions(partitions);
        // The test files are small: let DataFusion split them as it does large ones.
        config.options_mut().optimizer.repartition_file_min_size = 0;
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = stealing;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if balanced {
            state = state.with_physical_optimizer_rule(Arc::new(BalancedParquetScan));
        }
        SessionContext::new_with_state(state.build()).enable_url_table()
    }

    /// The query's result, a single integer.
    async fn result(ctx: &SessionContext, sql: &str) -> i64 {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let v = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        assert_eq!(v.len(), 1);
        assert!(v.is_valid(0), "{sql}");
        v.value(0)
    }

    /// The scan's units of work (files) in each partition, and the rows each partition reads
    /// (with work stealing off, so that each reads its own).
    async fn partitions(ctx: &SessionContext, sql: &str) -> (Vec<usize>, Vec<usize>) {
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut scan = None;
        plan.transform_down(|n| {
            if n.is::<DataSourceExec>() {
                scan = Some(n.clone());
            }
            Ok(Transformed::no(n))
        })
        .unwrap();
        let scan = scan.expect("a DataSourceExec");
        let exec = scan.downcast_ref::<DataSourceExec>().unwrap();
        let (config, _) = exec.downcast_to_file_source::<ParquetSource>().unwrap();
        let units = config.file_groups.iter().map(|g| g.len()).collect();
        let mut rows = Vec::new();
        for p in 0..scan.output_partitioning().partition_count() {
            let mut stream = scan.execute(p, ctx.task_ctx()).unwrap();
            let mut n = 0;
            while let Some(b) = stream.next().await {
                n += b.unwrap().num_rows();
            }
            rows.push(n);
        }
        (units, rows)
    }

    #[tokio::test]
    async fn one_file_of_ten_row_groups_splits_five_and_five() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_file(&path, 0, 10, 1000);
        let sql = format!("SELECT SUM(x) FROM '{}'", path.display());
        let expected: i64 = (0..10_000).sum();

        // DataFusion's byte ranges: the small early row groups all go to the first partition.
        let (units, plain) = partitions(&context(2, false, false), &sql).await;
        assert_eq!(units, [1, 1]);
        assert_eq!(plain.iter().sum::<usize>(), 10_000);
        assert_ne!(
            plain,
            [5000, 5000],
            "the test data no longer shows the uneven split"
        );

        let (units, rows) = partitions(&context(2, true, false), &sql).await;
        assert_eq!(units, [5, 5], "one unit per row group");
        assert_eq!(rows, [5000, 5000]);
        for stealing in [false, true] {
            assert_eq!(result(&context(2, true, stealing), &sql).await, expected);
        }

        // A predicate's row-group pruning still applies inside each unit's row groups.
        let sql = format!("SELECT SUM(x) FROM '{}' WHERE x >= 7500", path.display());
        for stealing in [false, true] {
            let ctx = context(2, true, stealing);
            assert_eq!(result(&ctx, &sql).await, (7500..10_000).sum::<i64>());
        }
    }

    #[tokio::test]
    async fn files_of_different_sizes_share_three_partitions() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("a.parquet"), 0, 6, 1000);
        write_file(&dir.path().join("b.parquet"), 6000, 2, 3000);
        let sql = format!("SELECT SUM(x) FROM '{}/'", dir.path().display());
        let (units, rows) = partitions(&context(3, true, false), &sql).await;
        assert_eq!(units.iter().sum::<usize>(), 8);
        assert_eq!(rows.iter().sum::<usize>(), 12_000);
        // Row groups are not cut: each partition is within half the largest group of 4,000.
        for r in &rows {
            assert!(r.abs_diff(4000) <= 1500, "{rows:?}");
        }
        for stealing in [false, true] {
            let sum = result(&context(3, true, stealing), &sql).await;
            assert_eq!(sum, (0..12_000).sum::<i64>());
        }
    }

    #[tokio::test]
    async fn many_row_groups_are_merged_into_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        // (More rows than a batch: DataFusion does not split a scan of fewer.)
        write_file(&path, 0, 40, 250);
        let sql = format!("SELECT SUM(x) FROM '{}'", path.display());
        let (units, rows) = partitions(&context(2, true, false), &sql).await;
        assert_eq!(units, [UNITS_PER_PARTITION, UNITS_PER_PARTITION]);
        assert_eq!(rows, [5000, 5000]);
        let expected = (0..10_000).sum::<i64>();
        assert_eq!(result(&context(2, true, true), &sql).await, expected);
    }

    #[tokio::test]
    async fn fewer_row_groups_than_partitions_are_left_as_planned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_file(&path, 0, 1, 5000);
        let sql = format!("SELECT SUM(x) FROM '{}'", path.display());
        let plain = partitions(&context(4, false, false), &sql).await;
        assert_eq!(partitions(&context(4, true, false), &sql).await, plain);
        assert_eq!(
            result(&context(4, true, true), &sql).await,
            (0..5000).sum::<i64>()
        );
    }

    #[test]
    fn equal_row_groups_split_evenly() {
        assert_eq!(assign(&[10; 10], 2), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(assign(&[10; 4], 4), [0, 1, 2, 3]);
        assert_eq!(assign(&[10; 7], 3), [0, 0, 1, 1, 1, 2, 2]);
    }

    #[test]
    fn a_large_row_group_takes_its_share() {
        // 130 rows: the big group's middle row (60) is in the first half; 110 and 20 rows
        // (splitting after it would give 10 and 120).
        assert_eq!(assign(&[10, 100, 10, 10], 2), [0, 0, 1, 1]);
        assert_eq!(assign(&[100, 1, 1, 1], 2), [0, 1, 1, 1]);
        assert_eq!(assign(&[0, 0, 5, 5], 2), [0, 0, 0, 1]);
        assert_eq!(assign(&[0, 0], 2), [0, 0]);
    }
}
