//! What the API writes to its log: one access line per request, and client errors without
//! the request's or the ticket's contents.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything every test of this binary logs from now on (the servers run on their own
/// threads, so only a global subscriber sees their events).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("info,ticket_api=debug,access=debug")
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a subscriber");
        log
    }))
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines that mention `needle`.
fn lines_with(log: &Mutex<Vec<u8>>, needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&log.lock().unwrap())
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_version_conflict_is_logged_once_at_info_without_the_tickets_contents() {
    let log = captured();
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let reply = app
        .post(
            &format!("/api/projects/{project}/tickets"),
            "alice",
            json!({"title": "Secret merger with Initech", "description": "do not leak me"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["id"].as_str().unwrap();
    let response = app
        .client
        .patch(format!("{}/api/tickets/{id}", app.address))
        .bearer_auth(app.token("alice"))
        .header("X-Request-Id", "conflict-under-test")
        .json(&json!({"title": "Renamed", "expectedVersion": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("Secret merger"),
        "the client gets the ticket: {body}"
    );

    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = lines_with(&log, "conflict-under-test");
        if lines.iter().any(|l| l.contains("status_code=409")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let access: Vec<_> = lines.iter().filter(|l| l.contains(" access:")).collect();
    assert_eq!(access.len(), 1, "one access line: {lines:#?}");
    assert!(access[0].contains(" INFO "), "{}", access[0]);
    assert!(
        access[0].contains("http.route=/api/tickets/{id}"),
        "{}",
        access[0]
    );
    assert!(access[0].contains("http.method=\"PATCH\""), "{}", access[0]);
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(" WARN ") || l.contains(" ERROR ")),
        "{lines:#?}"
    );
    assert!(
        lines_with(&log, "Secret merger").is_empty(),
        "a title was logged"
    );
    assert!(
        lines_with(&log, "do not leak me").is_empty(),
        "a description was logged"
    );
}
