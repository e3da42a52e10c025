//! The SQL front end's trust policy (`mle_sql::register_trusted`): with a public key, an
//! unsigned, wrongly signed or tampered model is refused with an error naming the file and the
//! reason; a correctly signed one runs. Without a key, every valid file runs.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use mle_format::{generate_key, sign_bytes, write_atomic, PublicKey};
use mle_hardening::swap::models;

fn context(key: Option<PublicKey>) -> SessionContext {
    let ctx = SessionContext::new();
    mle_sql::register_trusted(&ctx, key);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
            Arc::new(Float64Array::from(vec![10.0, 20.0])),
        ],
    )
    .unwrap();
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    ctx
}

async fn run(ctx: &SessionContext, path: &Path) -> Result<Vec<f64>, String> {
    let q = format!("SELECT mle_predict('{}', a, b) FROM t", path.display());
    let batches = async { ctx.sql(&q).await?.collect().await }
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
        .collect())
}

/// Flips one byte of the weights (the model's intercept) and repairs every checksum, as an
/// attacker who edits a signed file would: only the signature can notice.
fn tamper(signed: &[u8]) -> Vec<u8> {
    let h = mle_format::Header::parse(signed, "t").unwrap();
    let mut b = signed.to_vec();
    let (off, size) = h.sections[2];
    let at = (off + size - 8) as usize; // the intercept's f64
    b[at..at + 8].copy_from_slice(&7.0f64.to_le_bytes());
    let mut h2 = h;
    h2.crcs[2] = crc32fast::hash(&b[off as usize..(off + size) as usize]);
    let hb = h2.to_bytes();
    b[..100].copy_from_slice(&hb[..100]);
    b[104..128].copy_from_slice(&hb[104..128]);
    // The header CRC covers bytes 0..124 including the signature CRC at 100..104 (kept).
    let crc = crc32fast::hash(&b[..124]);
    b[124..128].copy_from_slice(&crc.to_le_bytes());
    b
}

#[tokio::test]
async fn sql_signature_policy_four_cases() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = generate_key().unwrap();
    let other = generate_key().unwrap();
    let model = &models()[0];
    let files = [
        ("unsigned.mle", model.clone()),
        ("wrong_key.mle", sign_bytes(model, &other, "m").unwrap()),
        (
            "tampered.mle",
            tamper(&sign_bytes(model, &trusted, "m").unwrap()),
        ),
        ("signed.mle", sign_bytes(model, &trusted, "m").unwrap()),
    ];
    for (name, bytes) in &files {
        write_atomic(&dir.path().join(name), bytes).unwrap();
    }
    let p = |n: &str| dir.path().join(n);

    // Policy set: only the correctly signed file runs.
    let ctx = context(Some(trusted.verifying_key()));
    for (name, why) in [
        ("unsigned.mle", "not signed"),
        ("wrong_key.mle", "invalid signature"),
        ("tampered.mle", "invalid signature"),
    ] {
        let e = run(&ctx, &p(name)).await.unwrap_err();
        assert!(e.contains(name), "error does not name the file: {e}");
        assert!(
            e.contains(why),
            "error for {name} does not say {why:?}: {e}"
        );
    }
    assert_eq!(run(&ctx, &p("signed.mle")).await.unwrap(), vec![11.0, 22.0]);

    // No policy: all four parse; the tampered one computes with its edited intercept.
    let open = context(None);
    assert_eq!(
        run(&open, &p("unsigned.mle")).await.unwrap(),
        vec![11.0, 22.0]
    );
    assert_eq!(
        run(&open, &p("wrong_key.mle")).await.unwrap(),
        vec![11.0, 22.0]
    );
    assert_eq!(
        run(&open, &p("tampered.mle")).await.unwrap(),
        vec![18.0, 29.0]
    );
}

#[tokio::test]
async fn sql_trusted_and_open_registrations_do_not_share_cached_models() {
    // The cache key includes the policy: a model loaded without a key must not satisfy a
    // trusted session.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    write_atomic(&path, &models()[0]).unwrap();
    let open = context(None);
    assert_eq!(run(&open, &path).await.unwrap(), vec![11.0, 22.0]);
    let trusted = context(Some(generate_key().unwrap().verifying_key()));
    let e = run(&trusted, &path).await.unwrap_err();
    assert!(e.contains("m.mle") && e.contains("not signed"), "{e}");
}
