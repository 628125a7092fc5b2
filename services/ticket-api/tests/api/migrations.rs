use kanban_test_support::TestDatabase;

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() {
    let db = TestDatabase::empty().await;
    let applied = ticket_api::db::run_migrations(&db.url).await.unwrap();
    assert!(!applied.is_empty(), "the first run applies every migration");
    let again = ticket_api::db::run_migrations(&db.url).await.unwrap();
    assert!(again.is_empty(), "a second run applies nothing: {again:?}");
}

#[tokio::test]
async fn replicas_starting_together_migrate_once_without_error() {
    let db = TestDatabase::empty().await;
    let (a, b) = tokio::join!(
        ticket_api::db::run_migrations(&db.url),
        ticket_api::db::run_migrations(&db.url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.is_empty() != b.is_empty(),
        "exactly one runner applies the migrations: {a:?} {b:?}"
    );
}
