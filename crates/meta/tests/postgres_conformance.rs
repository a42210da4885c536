//! The `MetaStore` conformance suite against PostgreSQL: one test per check, each on a database
//! of its own (created on the server of `ONCE_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, and dropped afterwards).
//!
//! Without a reachable PostgreSQL these tests print `PostgreSQL suite did NOT run: …` and pass,
//! unless `CI` or `ONCE_REQUIRE_POSTGRES=1` is set: then they fail (see `once_meta::testing`).

use std::sync::Arc;

use once_meta::MetaStore;
use once_meta::postgres::PostgresMetaStore;
use once_meta::testing::TestDatabase;

async fn open(check: &str) -> Option<(TestDatabase, Arc<dyn MetaStore>)> {
    let database = TestDatabase::create(check).await?;
    let store = PostgresMetaStore::open(database.url()).await.unwrap();
    Some((database, Arc::new(store)))
}

once_meta::conformance_tests!(open);
once_meta::outbox_conformance_tests!(open);
once_meta::refused_uploads_conformance_tests!(open);

/// Several instances starting at once on an empty database: sqlx's advisory lock serialises
/// the migrations, every instance opens, and the schema is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let Some(database) = TestDatabase::create("instances_starting_together_migrate_once").await
    else {
        return;
    };
    let opened = futures::future::join_all(
        (0..4).map(|_| PostgresMetaStore::open_reporting(database.url())),
    )
    .await;
    let mut applied_by = 0;
    for result in opened {
        let (store, report) = result.expect("every instance opens");
        store.ping().await.unwrap();
        assert_eq!(report.current, PostgresMetaStore::known_migrations());
        if !report.applied_now.is_empty() {
            assert_eq!(report.applied_now, PostgresMetaStore::known_migrations());
            applied_by += 1;
        }
    }
    assert_eq!(applied_by, 1, "exactly one instance applied the migrations");
    // Opening again later has nothing to do.
    let (_, report) = PostgresMetaStore::open_reporting(database.url())
        .await
        .unwrap();
    assert!(report.applied_now.is_empty());
}

/// Sessions of one request completing on two instances (two pools on one database) at once:
/// the request's slot is taken exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sessions_on_two_instances_fulfil_a_request_once() {
    let Some(database) =
        TestDatabase::create("racing_sessions_on_two_instances_fulfil_a_request_once").await
    else {
        return;
    };
    let mut instances: Vec<Arc<dyn MetaStore>> = Vec::new();
    for _ in 0..2 {
        instances.push(Arc::new(
            PostgresMetaStore::open(database.url()).await.unwrap(),
        ));
    }
    once_meta::conformance::racing_sessions_fulfil_a_request_once_on(&instances).await;
}

/// A URL that cannot work fails with the server's own reason, not a bare pool timeout.
#[tokio::test]
async fn a_wrong_database_name_is_reported_clearly() {
    let Some(database) = TestDatabase::create("a_wrong_database_name_is_reported_clearly").await
    else {
        return;
    };
    let url = once_meta::testing::with_database(database.url(), "once_no_such_database");
    let error = match PostgresMetaStore::open(&url).await {
        Ok(_) => panic!("opened a database that does not exist"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("once_no_such_database"), "{error}");
}
