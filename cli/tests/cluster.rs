//! `mle sql --cluster`: with the `cluster` feature, the `mle` binary runs a query on a Ballista
//! cluster (a scheduler and two executors, run by this test process on 127.0.0.1) and its
//! result equals single-process DataFusion bit for bit; without it, a clear error.
//!
//! `cargo test -p mle-cli --features cluster --test cluster`

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_path_buf()
}

fn mle(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mle"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MLE_TRUSTED_KEYS")
        .output()
        .expect("run mle")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(not(feature = "cluster"))]
#[test]
fn without_the_feature_cluster_is_a_clear_error() {
    let o = mle(
        &["sql", "--cluster", "df://127.0.0.1:50050", "SELECT 1"],
        &repo(),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("this mle was built without cluster support; build with --features cluster"),
        "{e}"
    );
}

#[cfg(feature = "cluster")]
mod with_cluster {
    use std::fs::File;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    use super::*;

    const FEATURES: &str = "age, sex, bmi, bp, s1, s2, s3, s4, s5, s6";
    const FILES: usize = 8;

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait_for_port(port: u16) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "port {port} not open after 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A scheduler and two executors on their own runtime in this process (the `mle` client
    /// is a separate process); shut down on drop, also when the test panics.
    struct Cluster {
        rt: Option<tokio::runtime::Runtime>,
        port: u16,
    }

    impl Cluster {
        fn start(dir: &Path) -> Cluster {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(32 * 1024 * 1024)
                .enable_all()
                .build()
                .unwrap();
            let port = free_port();
            rt.spawn(mle_ballista::run_scheduler(
                mle_ballista::SchedulerOptions {
                    bind_port: port,
                    ..Default::default()
                },
            ));
            wait_for_port(port);
            for i in 0..2 {
                let mut opts = mle_ballista::ExecutorOptions::new(dir.join(format!("e{i}")));
                opts.port = free_port();
                opts.grpc_port = free_port();
                opts.scheduler_port = port;
                opts.concurrency = Some(1);
                opts.heartbeat_interval_seconds = 2;
                let flight = opts.port;
                rt.spawn(mle_ballista::run_executor(opts));
                wait_for_port(flight);
            }
            std::thread::sleep(Duration::from_secs(2));
            Cluster { rt: Some(rt), port }
        }
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            if let Some(rt) = self.rt.take() {
                rt.shutdown_timeout(Duration::from_secs(5));
            }
        }
    }

    /// `FILES` copies of the diabetes features with a unique `id`.
    fn write_dataset(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let file = File::open(repo().join("datasets/diabetes.parquet")).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let src = concat_batches(&batches[0].schema(), &batches).unwrap();
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        fields.extend(src.schema().fields().iter().map(|f| f.as_ref().clone()));
        let schema = Arc::new(Schema::new(fields));
        let n = src.num_rows() as i64;
        for k in 0..FILES as i64 {
            let mut cols = vec![Arc::new(Int64Array::from_iter_values(k * n..(k + 1) * n)) as _];
            cols.extend(src.columns().iter().cloned());
            let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
            let out = File::create(dir.join(format!("part-{k}.parquet"))).unwrap();
            let mut w = ArrowWriter::try_new(out, schema.clone(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
    }

    fn read_parquet(path: &Path) -> RecordBatch {
        let file = File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    #[test]
    fn mle_sql_on_a_cluster_matches_single_process() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        write_dataset(&data);
        let model = repo().join("datasets/models/diabetes.mle");
        let cluster = Cluster::start(tmp.path());
        let url = format!("df://127.0.0.1:{}", cluster.port);
        let query = format!(
            "SELECT id, mle_predict('{}', {FEATURES}) AS y FROM t ORDER BY id",
            model.display()
        );
        let out = tmp.path().join("out.parquet");
        // A relative table path: mle makes it absolute before sending it to the executors.
        let o = mle(
            &[
                "sql",
                "--cluster",
                &url,
                &query,
                "--table",
                "t=data",
                "-o",
                out.to_str().unwrap(),
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let got = read_parquet(&out);

        let rt = tokio::runtime::Runtime::new().unwrap();
        let want = rt.block_on(async {
            let ctx =
                SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
            mle_sql::register(&ctx);
            ctx.register_parquet("t", data.to_str().unwrap(), ParquetReadOptions::default())
                .await
                .unwrap();
            let df = ctx.sql(&query).await.unwrap();
            let schema = Arc::new(df.schema().as_arrow().clone());
            concat_batches(&schema, &df.collect().await.unwrap()).unwrap()
        });
        assert_eq!(want.num_rows(), FILES * 442);
        assert_eq!(got.num_rows(), want.num_rows());
        assert_eq!(got.column(0).to_data(), want.column(0).to_data(), "ids");
        let (g, w) = (
            got.column(1).as_primitive::<Float64Type>(),
            want.column(1).as_primitive::<Float64Type>(),
        );
        assert_eq!(g.nulls(), w.nulls());
        for i in 0..w.len() {
            assert_eq!(
                g.value(i).to_bits(),
                w.value(i).to_bits(),
                "row {i}: {} vs {}",
                g.value(i),
                w.value(i)
            );
        }

        // A GROUP BY over predictions, printed.
        let o = mle(
            &[
                "sql",
                "--cluster",
                &url,
                &format!(
                    "SELECT count(*) AS n, count(DISTINCT mle_predict('{}', {FEATURES})) AS k FROM t",
                    model.display()
                ),
                "--table",
                "t=data",
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        let k = w
            .iter()
            .flatten()
            .map(f64::to_bits)
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert!(
            text.contains(&format!("| {} ", FILES * 442)) && text.contains(&format!("| {k} ")),
            "n = {}, k = {k}:\n{text}",
            FILES * 442
        );

        // A missing table and an unreachable scheduler: clear errors.
        let o = mle(
            &["sql", "--cluster", &url, "SELECT 1", "--table", "t=nope"],
            tmp.path(),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("no such file or directory nope"),
            "{}",
            stderr(&o)
        );
        drop(cluster);
        let o = mle(
            &[
                "sql",
                "--cluster",
                &format!("df://127.0.0.1:{}", free_port()),
                "SELECT 1",
            ],
            tmp.path(),
        );
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("cannot reach the Ballista scheduler"),
            "{}",
            stderr(&o)
        );
    }
}
