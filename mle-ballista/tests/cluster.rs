//! A real local Ballista cluster: one `mle-scheduler` and two `mle-executor` processes on
//! 127.0.0.1, compared with single-process DataFusion bit for bit.
//!
//! Models: XGBoost fixtures (`tests/fixtures/xgboost`) imported with `mle-import`. Data: a
//! multi-file Parquet dataset written by the test (deterministic, with NULLs).

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use mle_format::WriteOptions;
use mle_testkit::Rng;

/// Cluster tests start several processes each: one cluster at a time (the machine may have
/// few cores). An async mutex: the guard is held across the test's awaits.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Imports an XGBoost fixture into `dir` and returns the `.mle` path.
fn import_fixture(name: &str, dir: &Path, signing_key: Option<mle_format::SecretKey>) -> PathBuf {
    let src = repo()
        .join("tests/fixtures/xgboost")
        .join(format!("{name}.json"));
    let builder = mle_import::import_file(&src, None)
        .unwrap_or_else(|e| panic!("import {}: {e}", src.display()));
    let out = dir.join(format!("{name}.mle"));
    builder
        .write(
            &out,
            &WriteOptions {
                signing_key,
                ..WriteOptions::default()
            },
        )
        .unwrap();
    out
}

/// Writes `files` Parquet files of `rows` rows each: `id` (unique), `f0`..`f9` (floats in
/// [0, 8), about 3% NULL).
fn write_dataset(dir: &Path, files: usize, rows: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    for j in 0..10 {
        fields.push(Field::new(format!("f{j}"), DataType::Float64, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for f in 0..files {
        let base = (f * rows) as i64;
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
            base..base + rows as i64,
        ))];
        for _ in 0..10 {
            let v: Float64Array = (0..rows)
                .map(|_| {
                    let x = rng.unit();
                    (x >= 0.03).then(|| (rng.unit() * 8.0 * 16.0).round() / 16.0)
                })
                .collect();
            cols.push(Arc::new(v));
        }
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let file = File::create(dir.join(format!("part-{f:03}.parquet"))).unwrap();
        let mut w = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not open port {port} within 60 s; log:\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// A child process killed and reaped on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `bin` in `cwd` (`None`: the test's own working directory).
    fn spawn(bin: &str, args: &[String], log: PathBuf, cwd: Option<&Path>) -> Proc {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(bin);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Proc { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Changes the test process's working directory, restoring it on drop. Only inside the
/// `SERIAL` lock, and every other path in these tests is absolute.
struct CwdGuard(PathBuf);

impl CwdGuard {
    fn enter(dir: &Path) -> CwdGuard {
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir).unwrap();
        CwdGuard(old)
    }
}

impl Drop for CwdGuard {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.0);
    }
}

struct Executor {
    proc: Proc,
    work_dir: PathBuf,
}

/// One scheduler and `n` executors on 127.0.0.1, stopped on drop.
struct Cluster {
    port: u16,
    scheduler: Proc,
    executors: Vec<Executor>,
}

impl Cluster {
    fn start(dir: &Path, n: usize, executor_extra: &[String]) -> Cluster {
        let port = free_port();
        let scheduler = Proc::spawn(
            env!("CARGO_BIN_EXE_mle-scheduler"),
            &[
                "--bind-host".into(),
                "127.0.0.1".into(),
                "--bind-port".into(),
                port.to_string(),
                // Notice a killed executor within seconds, not minutes.
                "--executor-timeout-seconds".into(),
                "6".into(),
                "--expire-dead-executor-interval-seconds".into(),
                "1".into(),
            ],
            dir.join("scheduler.log"),
            None,
        );
        wait_for_port(port, "mle-scheduler", &scheduler.log);
        let mut executors = Vec::new();
        for i in 0..n {
            let (flight, grpc) = (free_port(), free_port());
            let work_dir = dir.join(format!("executor-{i}"));
            let mut args: Vec<String> = vec![
                "--bind-host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                flight.to_string(),
                "--grpc-port".into(),
                grpc.to_string(),
                "--scheduler-host".into(),
                "127.0.0.1".into(),
                "--scheduler-port".into(),
                port.to_string(),
                "--work-dir".into(),
                work_dir.display().to_string(),
                "--concurrency".into(),
                "2".into(),
                "--heartbeat-interval-seconds".into(),
                "2".into(),
            ];
            args.extend_from_slice(executor_extra);
            // Each executor runs in its own work dir: relative model paths resolve there, not
            // where the client and the scheduler run (see `client_and_executor_errors_are_clear`).
            std::fs::create_dir_all(&work_dir).unwrap();
            let proc = Proc::spawn(
                env!("CARGO_BIN_EXE_mle-executor"),
                &args,
                dir.join(format!("executor-{i}.log")),
                Some(&work_dir),
            );
            wait_for_port(flight, "mle-executor", &proc.log);
            wait_for_port(grpc, "mle-executor", &proc.log);
            executors.push(Executor { proc, work_dir });
        }
        // Registration follows the ports opening; give the heartbeats a moment.
        std::thread::sleep(Duration::from_secs(2));
        Cluster {
            port,
            scheduler,
            executors,
        }
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    async fn client(&self, partitions: usize) -> SessionContext {
        let config = mle_ballista::default_client_config().with_target_partitions(partitions);
        mle_ballista::connect_with_config(&self.url(), config, mle_sql::UdfOptions::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connect: {e}; scheduler log:\n{}",
                    read_log(&self.scheduler.log)
                )
            })
    }

    /// Process ids of the scheduler and the executors.
    fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.scheduler)
            .chain(self.executors.iter().map(|e| &e.proc))
            .map(|p| p.child.id())
            .collect()
    }

    fn logs(&self) -> String {
        let mut s = format!("--- scheduler\n{}", read_log(&self.scheduler.log));
        for (i, e) in self.executors.iter().enumerate() {
            s.push_str(&format!("--- executor {i}\n{}", read_log(&e.proc.log)));
        }
        s
    }
}

/// Files under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

fn local_ctx(partitions: usize) -> SessionContext {
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    mle_sql::register(&ctx);
    ctx
}

async fn run(ctx: &SessionContext, q: &str) -> datafusion::error::Result<RecordBatch> {
    let df = ctx.sql(q).await?;
    let schema: Arc<Schema> = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema, &batches,
    )?)
}

/// Equal bit for bit: same types, same validity, and float values with the same bits.
fn assert_same_bits(a: &dyn Array, b: &dyn Array, what: &str) {
    assert_eq!(a.data_type(), b.data_type(), "{what}: types differ");
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    assert_eq!(a.nulls(), b.nulls(), "{what}: NULLs differ");
    match a.data_type() {
        DataType::Float64 => {
            let (x, y) = (
                a.as_primitive::<Float64Type>(),
                b.as_primitive::<Float64Type>(),
            );
            for i in 0..x.len() {
                assert_eq!(
                    x.value(i).to_bits(),
                    y.value(i).to_bits(),
                    "{what}: row {i}: {} vs {}",
                    x.value(i),
                    y.value(i)
                );
            }
        }
        DataType::Float32 => {
            let (x, y) = (
                a.as_primitive::<Float32Type>(),
                b.as_primitive::<Float32Type>(),
            );
            for i in 0..x.len() {
                assert_eq!(
                    x.value(i).to_bits(),
                    y.value(i).to_bits(),
                    "{what}: row {i}: {} vs {}",
                    x.value(i),
                    y.value(i)
                );
            }
        }
        DataType::FixedSizeList(_, _) => {
            let x: &FixedSizeListArray = a.as_fixed_size_list();
            let y: &FixedSizeListArray = b.as_fixed_size_list();
            assert_same_bits(x.values().as_ref(), y.values().as_ref(), what);
        }
        _ => assert_eq!(a.to_data(), b.to_data(), "{what}: values differ"),
    }
}

fn assert_same_batches(cluster: &RecordBatch, local: &RecordBatch, q: &str) {
    assert_eq!(cluster.num_columns(), local.num_columns(), "{q}");
    assert_eq!(
        cluster.num_rows(),
        local.num_rows(),
        "{q}: row counts differ"
    );
    for (i, f) in local.schema().fields().iter().enumerate() {
        assert_same_bits(
            cluster.column(i).as_ref(),
            local.column(i).as_ref(),
            &format!("{q}: column {}", f.name()),
        );
    }
}

fn cls_args(m: &Path) -> String {
    format!("'{}', f0, f1, f2, f3", m.display())
}

fn reg_args(m: &Path) -> String {
    let cols: Vec<String> = (0..10).map(|j| format!("f{j}")).collect();
    format!("'{}', {}", m.display(), cols.join(", "))
}

const FILES: usize = 10;
const ROWS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_matches_single_process_bit_for_bit() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, FILES, ROWS);
    let cls = import_fixture("multi_softprob", tmp.path(), None);
    let reg = import_fixture("reg_squarederror", tmp.path(), None);
    let cluster = Cluster::start(tmp.path(), 2, &[]);

    let remote = cluster.client(FILES).await;
    let local = local_ctx(FILES);
    for ctx in [&remote, &local] {
        ctx.register_parquet("t", data.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }

    let queries = [
        // Per-row predictions, labels and probabilities.
        format!(
            "SELECT id, mle_predict({c}) AS label, mle_predict_proba({c}) AS proba, \
             mle_predict({r}) AS y FROM t ORDER BY id",
            c = cls_args(&cls),
            r = reg_args(&reg)
        ),
        // A shuffle: GROUP BY over predictions (order-independent aggregates).
        format!(
            "SELECT id % 7 AS g, mle_predict({c}) AS label, count(*) AS n, min(id) AS lo, \
             max(id) AS hi, min(mle_predict({r})) AS ymin, max(mle_predict({r})) AS ymax \
             FROM t GROUP BY id % 7, mle_predict({c}) ORDER BY g, label",
            c = cls_args(&cls),
            r = reg_args(&reg)
        ),
        // A shuffle keyed by a prediction: rows per label and the largest probability.
        format!(
            "SELECT label, count(*) AS n, max(p0) AS p0max FROM ( \
               SELECT mle_predict({c}) AS label, mle_predict_proba({c})[1] AS p0 FROM t) \
             GROUP BY label ORDER BY label",
            c = cls_args(&cls)
        ),
    ];
    for q in &queries {
        let want = run(&local, q).await.unwrap();
        let got = run(&remote, q)
            .await
            .unwrap_or_else(|e| panic!("cluster query failed: {e}\n{q}\n{}", cluster.logs()));
        assert!(want.num_rows() > 0, "{q}");
        assert_same_batches(&got, &want, q);
    }
    // The first query returns every row.
    assert_eq!(
        run(&local, &queries[0]).await.unwrap().num_rows(),
        FILES * ROWS
    );
    // Both executors ran tasks (each wrote shuffle or result files into its work dir).
    for (i, e) in cluster.executors.iter().enumerate() {
        assert!(
            count_files(&e.work_dir) > 0,
            "executor {i} ran no task\n{}",
            cluster.logs()
        );
    }
    // Dropping the cluster stops every process (also when a test panics: `Proc::drop`).
    let pids = cluster.pids();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || cfg!(not(target_os = "linux")),
            "process {pid} still running after the cluster was dropped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_executor_errors_are_clear() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, 2, 1000);
    // Executors require models signed by this key; the client and scheduler accept any.
    let key = mle_format::generate_key().unwrap();
    let key_file = tmp.path().join("trusted.pub");
    std::fs::write(
        &key_file,
        mle_format::sign::key_to_hex(&key.verifying_key().to_bytes()),
    )
    .unwrap();
    let unsigned = import_fixture("multi_softprob", tmp.path(), None);
    let signed_dir = tmp.path().join("signed");
    std::fs::create_dir_all(&signed_dir).unwrap();
    let signed = import_fixture("multi_softprob", &signed_dir, Some(key));
    // The client (this process) and the scheduler run in `tmp`, the executors in their work
    // dirs: a relative model path then names a file only the client and scheduler can read.
    let _cwd = CwdGuard::enter(tmp.path());
    let cluster = Cluster::start(
        tmp.path(),
        1,
        &["--public-key".into(), key_file.display().to_string()],
    );
    let remote = cluster.client(2).await;
    remote
        .register_parquet("t", data.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();

    // A signed model runs.
    let q = format!(
        "SELECT id, mle_predict({}) FROM t ORDER BY id",
        cls_args(&signed)
    );
    let got = run(&remote, &q)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(got.num_rows(), 2000);

    // An unsigned one is refused by the executor: the job error says which executor and why.
    let q = format!("SELECT id, mle_predict({}) FROM t", cls_args(&unsigned));
    let err = run(&remote, &q)
        .await
        .expect_err("unsigned model accepted")
        .to_string();
    assert!(err.contains("executor 127.0.0.1:"), "{err}");
    assert!(err.contains("multi_softprob.mle"), "{err}");
    assert!(err.to_lowercase().contains("sign"), "{err}");
    assert!(!err.contains("could not be prepared"), "{err}");

    // A model the client and the scheduler read but the executor cannot: the job fails with
    // the executor's error (which executor, which file, why), not Ballista's vague
    // "task could not be prepared".
    let q = "SELECT id, mle_predict('signed/multi_softprob.mle', f0, f1, f2, f3) FROM t";
    let err = run(&remote, q)
        .await
        .expect_err("a model the executor cannot read gave a result")
        .to_string();
    assert!(err.contains("executor 127.0.0.1:"), "{err}");
    assert!(err.contains("signed/multi_softprob.mle"), "{err}");
    assert!(err.contains("cannot open model file"), "{err}");
    assert!(!err.contains("could not be prepared"), "{err}");

    // A model the client cannot read fails on the client, naming the file.
    let q = format!(
        "SELECT mle_predict('{}/missing.mle', f0) FROM t",
        tmp.path().display()
    );
    let err = run(&remote, &q)
        .await
        .expect_err("missing model accepted")
        .to_string();
    assert!(err.contains("missing.mle"), "{err}");
    assert!(err.contains("cannot open model file"), "{err}");

    // A wrong address fails at connect, naming it.
    let err = match mle_ballista::connect(
        &format!("df://127.0.0.1:{}", free_port()),
        Default::default(),
    )
    .await
    {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cannot reach the Ballista scheduler"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_executor_never_gives_a_wrong_result() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Enough rows that the query is still running when the executor is killed.
    write_dataset(&data, 16, 60_000);
    let reg = import_fixture("reg_squarederror", tmp.path(), None);
    let cls = import_fixture("multi_softprob", tmp.path(), None);
    let mut cluster = Cluster::start(tmp.path(), 2, &[]);
    let remote = cluster.client(16).await;
    let local = local_ctx(16);
    for ctx in [&remote, &local] {
        ctx.register_parquet("t", data.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
    let q = format!(
        "SELECT mle_predict({c}) AS label, count(*) AS n, min(mle_predict({r})) AS ymin, \
         max(mle_predict({r})) AS ymax, sum(id) AS ids FROM t GROUP BY mle_predict({c}) \
         ORDER BY label",
        c = cls_args(&cls),
        r = reg_args(&reg)
    );
    let want = run(&local, &q).await.unwrap();

    let started = Instant::now();
    let task = tokio::spawn({
        let remote = remote.clone();
        let q = q.clone();
        async move { run(&remote, &q).await }
    });
    // Kill the second executor once it has started working on the job.
    let victim = &cluster.executors[1];
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_files(&victim.work_dir) == 0 && !task.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_while_running = !task.is_finished();
    cluster.executors[1].proc.kill();
    assert!(
        killed_while_running,
        "the query ended before the executor was killed: make it longer\n{}",
        cluster.logs()
    );
    let result = tokio::time::timeout(Duration::from_secs(300), task)
        .await
        .unwrap_or_else(|_| panic!("query hung after the kill\n{}", cluster.logs()))
        .unwrap();
    eprintln!(
        "killed while running: {killed_while_running}; query took {:?}: {}",
        started.elapsed(),
        match &result {
            Ok(_) => "completed".to_string(),
            Err(e) => format!("failed: {e}"),
        }
    );
    match result {
        Ok(got) => assert_same_batches(&got, &want, &q),
        Err(e) => {
            // A clear error: a failed job or task, or the lost executor (never an empty one).
            let msg = e.to_string().to_lowercase();
            assert!(
                ["failed", "executor", "lost"]
                    .iter()
                    .any(|w| msg.contains(w)),
                "unclear error: {msg}"
            );
        }
    }
    // The cluster still answers correctly with one executor left.
    let again = run(&remote, &q)
        .await
        .unwrap_or_else(|e| panic!("query after the kill failed: {e}\n{}", cluster.logs()));
    assert_same_batches(&again, &want, &q);
}
