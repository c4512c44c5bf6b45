//! One contract for both stores: every test here runs against SQLite and a real PostgreSQL,
//! so the shared SQL in `store::sql` cannot drift from what either backend accepts.

use crate::support::Postgres;
use ocicert::finding::Severity;
use ocicert::store::postgres::Postgres as PgStore;
use ocicert::store::sql::MIGRATIONS;
use ocicert::store::sqlite::Sqlite;
use ocicert::store::{
    CertificateQuery, CertificateRow, Enqueued, FindingQuery, FindingRow, ImageQuery, Kind, NewJob,
    Retry, ScanResult, State, Store,
};
use std::future::Future;

const RETRY: Retry = Retry {
    max_attempts: 2,
    backoff_ms: 1000,
    max_backoff_ms: 60_000,
};

fn new_job(digest: &str, tag: Option<&str>) -> NewJob {
    NewJob {
        registry: "r.example".into(),
        repository: "team/app".into(),
        digest: digest.into(),
        tag: tag.map(str::to_string),
        source: "distribution".into(),
        callback_url: None,
    }
}

/// Runs `contract` on a fresh SQLite store and on a fresh PostgreSQL database.
fn on_both<F, Fut>(contract: F)
where
    F: Fn(Store, &'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::Sqlite(Sqlite::open(dir.path()).expect("open sqlite"));
    runtime.block_on(contract(sqlite, "sqlite"));
    let postgres = Postgres::start();
    runtime.block_on(async {
        let store = Store::Postgres(
            PgStore::connect(&postgres.url(), 4)
                .await
                .expect("connect postgres"),
        );
        contract(store, "postgres").await;
    });
}

#[test]
fn store_contract_schema_is_migrated_to_the_latest_version_and_answers_pings() {
    on_both(|store, backend| async move {
        let latest = MIGRATIONS.last().map(|m| m.version);
        assert!(latest >= Some(2), "the schema has versioned migrations");
        assert_eq!(store.schema_version().await.unwrap(), latest, "{backend}");
        store.ping().await.unwrap();
    });
}

#[test]
fn store_contract_enqueue_is_idempotent_and_claims_are_exclusive() {
    on_both(|store, backend| async move {
        let first = store
            .enqueue(&new_job("sha256:a", Some("v1")), 10)
            .await
            .unwrap();
        let again = store
            .enqueue(&new_job("sha256:a", Some("v2")), 11)
            .await
            .unwrap();
        let Enqueued::New(id) = first else {
            panic!("{backend}: {first:?}")
        };
        assert_eq!(again, Enqueued::Duplicate(id), "{backend}");

        let job = store.claim("w1", 20, 100).await.unwrap().unwrap();
        assert_eq!(
            (job.id, job.attempts, job.tag.as_deref()),
            (id, 1, Some("v2")),
            "{backend}: the later tag wins"
        );
        assert!(
            store.claim("w2", 20, 100).await.unwrap().is_none(),
            "{backend}"
        );
        assert!(store.extend(id, "w1", 150).await.unwrap(), "{backend}");
        assert!(!store.extend(id, "w2", 150).await.unwrap(), "{backend}");

        // The lease runs out: requeued, and the old owner can no longer complete.
        assert_eq!(
            store.requeue_expired(RETRY, 151).await.unwrap(),
            1,
            "{backend}"
        );
        let again = store.claim("w2", 151, 300).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2, "{backend}");
        assert!(
            !store.complete(id, "w1", None, 160).await.unwrap(),
            "{backend}"
        );
        assert!(
            store.complete(id, "w2", None, 160).await.unwrap(),
            "{backend}"
        );
        assert!(
            !store.complete(id, "w2", None, 161).await.unwrap(),
            "{backend}: completes once"
        );
        let counts = store.counts().await.unwrap();
        assert_eq!(counts, [(Kind::Scan, State::Done, 1)], "{backend}");
        let jobs = store.jobs(Some("sha256:a"), 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "{backend}");
        assert_eq!(jobs[0].state, State::Done, "{backend}");
    });
}

#[test]
fn store_contract_failures_back_off_then_fail_for_good() {
    on_both(|store, backend| async move {
        store.enqueue(&new_job("sha256:b", None), 0).await.unwrap();
        let job = store.claim("w", 0, 100).await.unwrap().unwrap();
        let retry_at = RETRY.next_attempt(job.attempts, 10);
        assert!(
            store.fail(job.id, "w", "boom", retry_at, 10).await.unwrap(),
            "{backend}"
        );
        assert!(
            store.claim("w", 500, 600).await.unwrap().is_none(),
            "{backend}: backing off"
        );
        let job = store.claim("w", 1010, 2000).await.unwrap().unwrap();
        assert_eq!(job.last_error.as_deref(), Some("boom"), "{backend}");
        let retry_at = RETRY.next_attempt(job.attempts, 1020);
        assert_eq!(retry_at, None, "{backend}");
        store
            .fail(job.id, "w", "boom again", retry_at, 1020)
            .await
            .unwrap();
        let (job, report) = store.report("sha256:b").await.unwrap().unwrap();
        assert_eq!((job.state, report), (State::Failed, None), "{backend}");
    });
}

fn scan_result() -> ScanResult {
    ScanResult {
        report: "{}".into(),
        highest_severity: Some("critical".into()),
        findings: vec![FindingRow {
            rule: "private-key".into(),
            severity: "critical".into(),
            message: "a key".into(),
            path: "/etc/Secret.key".into(),
            fingerprint: "sha256:k".into(),
            in_final_image: true,
            owner: Some("dpkg:acme 1.0 (modified)".into()),
        }],
        certificates: vec![CertificateRow {
            fingerprint: "sha256:cert".into(),
            subject: "CN=Leaf".into(),
            issuer: "CN=CA".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            not_after_unix: 1_893_456_000,
            is_ca: false,
            self_signed: false,
            trust_anchor: false,
            key_algorithm: "ec".into(),
            paths: "/etc/leaf.pem".into(),
        }],
        notify: true,
    }
}

#[test]
fn store_contract_results_are_stored_queried_and_notified() {
    on_both(|store, backend| async move {
        store
            .enqueue(&new_job("sha256:c", Some("v1")), 0)
            .await
            .unwrap();
        let job = store.claim("w", 0, 100).await.unwrap().unwrap();
        let result = scan_result();
        assert!(
            store.complete(job.id, "w", Some(&result), 5).await.unwrap(),
            "{backend}"
        );
        let (_, report) = store.report("sha256:c").await.unwrap().unwrap();
        assert_eq!(report.as_deref(), Some("{}"), "{backend}");
        assert_eq!(
            store.job_findings(job.id).await.unwrap(),
            result.findings,
            "{backend}"
        );
        let search = |text: &str| ImageQuery {
            text: text.into(),
            limit: 10,
            offset: 0,
        };
        for (text, hits) in [("secret", 1), ("cn=leaf", 1), ("nothing", 0)] {
            let images = store.images(&search(text)).await.unwrap();
            assert_eq!(images.len(), hits, "{backend}: images matching {text:?}");
        }
        let findings = |min_severity| FindingQuery {
            min_severity: Some(min_severity),
            limit: 10,
            ..FindingQuery::default()
        };
        let high = store.findings(&findings(Severity::High)).await.unwrap();
        assert_eq!(high.len(), 1, "{backend}");
        assert_eq!(high[0].finding.path, "/etc/Secret.key", "{backend}");
        let certificates = |text: &str, expiring_before| CertificateQuery {
            text: text.into(),
            expiring_before,
            limit: 10,
            offset: 0,
        };
        let leaf = store
            .certificates(&certificates("leaf", None))
            .await
            .unwrap();
        assert_eq!(leaf.len(), 1, "{backend}");
        assert_eq!(leaf[0].images[0].paths, ["/etc/leaf.pem"], "{backend}");
        let soon = store
            .certificates(&certificates("", Some(1_000)))
            .await
            .unwrap();
        assert!(soon.is_empty(), "{backend}: nothing expires before 1970");
        assert_eq!(
            store.severity_counts().await.unwrap(),
            [("critical".to_string(), 1)],
            "{backend}"
        );
        // A finished scan with `notify` queues its notification as a job of its own.
        let notify = store.claim("w", 6, 100).await.unwrap().unwrap();
        assert_eq!(
            (notify.kind, notify.digest.as_str()),
            (Kind::Notify, "sha256:c"),
            "{backend}"
        );
    });
}
