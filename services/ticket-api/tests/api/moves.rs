use crate::helpers::{spawn_app, TestApp};
use diesel_async::RunQueryDsl;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::json;

async fn column_of(app: &TestApp, project: &str, titles: &[&str], status: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for title in titles {
        let ticket = app.create_ticket(project, "alice", title, status).await;
        ids.push(ticket["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn after_id_before_id_and_position_place_the_ticket() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ids = column_of(&app, &project, &["a", "b", "c", "d"], "TODO").await;
    let (a, b, c, d) = (
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[3].clone(),
    );

    // d below a
    let reply = app
        .post(
            &format!("/api/tickets/{d}/move"),
            "alice",
            json!({"toStatus": "TODO", "afterId": a}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["ticket"]["position"], 1);
    assert_eq!(
        app.column(&project, "alice", "TODO").await,
        vec![a.clone(), d.clone(), b.clone(), c.clone()]
    );

    // a above c
    app.post(
        &format!("/api/tickets/{a}/move"),
        "alice",
        json!({"toStatus": "TODO", "beforeId": c}),
    )
    .await;
    assert_eq!(
        app.column(&project, "alice", "TODO").await,
        vec![d.clone(), b.clone(), a.clone(), c.clone()]
    );

    // c to the top by index, b past the end (clamped)
    app.post(
        &format!("/api/tickets/{c}/move"),
        "alice",
        json!({"toStatus": "TODO", "position": 0}),
    )
    .await;
    app.post(
        &format!("/api/tickets/{b}/move"),
        "alice",
        json!({"toStatus": "TODO", "position": 99}),
    )
    .await;
    assert_eq!(
        app.column(&project, "alice", "TODO").await,
        vec![c, d, a, b]
    );
}

#[tokio::test]
async fn moving_to_another_column_follows_the_state_machine_and_records_it() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let todo = column_of(&app, &project, &["t"], "TODO").await;
    let doing = column_of(&app, &project, &["x", "y"], "IN_PROGRESS").await;
    let t = &todo[0];

    let reply = app
        .post(
            &format!("/api/tickets/{t}/move"),
            "alice",
            json!({"toStatus": "IN_PROGRESS", "afterId": doing[0]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["fromStatus"], "TODO");
    assert_eq!(reply.body["ticket"]["status"], "IN_PROGRESS");
    assert_eq!(
        app.column(&project, "alice", "IN_PROGRESS").await,
        vec![doing[0].clone(), t.clone(), doing[1].clone()]
    );
    let history = app
        .get(&format!("/api/tickets/{t}/transitions"), "alice")
        .await;
    assert_eq!(history.body.as_array().unwrap().len(), 1);

    let refused = app
        .post(
            &format!("/api/tickets/{t}/move"),
            "alice",
            json!({"toStatus": "READY_TO_RESUME"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "INVALID_TRANSITION");
}

#[tokio::test]
async fn a_neighbour_outside_the_target_column_is_a_validation_error() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ids = column_of(&app, &project, &["a", "b"], "TODO").await;
    let other = column_of(&app, &project, &["z"], "BACKLOG").await;
    for body in [
        json!({"toStatus": "TODO", "afterId": other[0]}),
        json!({"toStatus": "TODO", "afterId": ids[0]}),
        json!({"toStatus": "TODO", "position": -1}),
    ] {
        let reply = app
            .post(
                &format!("/api/tickets/{}/move", ids[0]),
                "alice",
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), "VALIDATION");
    }
}

/// Random moves within and across two columns, each checked against a model of the board.
#[tokio::test]
async fn random_moves_keep_the_board_equal_to_a_model() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let statuses = ["TODO", "BACKLOG"];
    let mut model: Vec<Vec<String>> = vec![
        column_of(&app, &project, &["a", "b", "c", "d", "e"], "TODO").await,
        column_of(&app, &project, &["f", "g", "h"], "BACKLOG").await,
    ];
    let mut rng = StdRng::seed_from_u64(0x6b61_6e62);
    for step in 0..60 {
        let from = if model[1].is_empty() || (!model[0].is_empty() && rng.random_bool(0.5)) {
            0
        } else {
            1
        };
        let index = rng.random_range(0..model[from].len());
        let id = model[from].remove(index);
        let to = if rng.random_bool(0.3) { 1 - from } else { from };
        let position = rng.random_range(0..=model[to].len());
        model[to].insert(position, id.clone());
        let reply = app
            .post(
                &format!("/api/tickets/{id}/move"),
                "alice",
                json!({"toStatus": statuses[to], "position": position}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "step {step}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["ticket"]["position"], position as i64);
    }
    assert_eq!(app.column(&project, "alice", "TODO").await, model[0]);
    assert_eq!(app.column(&project, "alice", "BACKLOG").await, model[1]);
}

#[tokio::test]
async fn keys_that_grow_too_long_rebalance_the_column_in_one_transaction() {
    let app = spawn_app().await;
    let project = app.create_project("alice").await;
    let ids = column_of(&app, &project, &["a", "b", "c"], "TODO").await;
    // Make the gap between a and b as narrow as a long history of splits would.
    let mut conn = app.db.connect().await;
    let long = format!("V{}1", "0".repeat(47));
    diesel::sql_query(format!(
        "UPDATE tickets SET rank = 'V' WHERE id = '{}'",
        ids[0]
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "UPDATE tickets SET rank = '{long}' WHERE id = '{}'",
        ids[1]
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(format!(
        "UPDATE tickets SET rank = 'W' WHERE id = '{}'",
        ids[2]
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let reply = app
        .post(
            &format!("/api/tickets/{}/move", ids[2]),
            "alice",
            json!({"toStatus": "TODO", "position": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let snapshot = app.snapshot(&project, "alice").await;
    let tickets = snapshot["tickets"].as_array().unwrap();
    let order: Vec<&str> = tickets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        vec![ids[0].as_str(), ids[2].as_str(), ids[1].as_str()]
    );
    assert!(
        tickets
            .iter()
            .all(|t| t["rank"].as_str().unwrap().len() <= 4),
        "{tickets:?}"
    );

    let events = app
        .get(&format!("/api/projects/{project}/events?since=3"), "alice")
        .await;
    let names: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["column:rebalanced", "ticket:moved"]);
    let ranks = &events.body["events"][0]["data"]["ranks"];
    assert_eq!(
        ranks.as_array().unwrap().len(),
        3,
        "every ticket of the column gets its new key"
    );
}
