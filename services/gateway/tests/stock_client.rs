//! Runs the Node test-suite in `tests/node/` (the stock `socket.io-client` package) against
//! a real ticket API and two gateways started here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gateway/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_socket_io_client_works_through_two_gateways() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    let installed = std::path::Path::new(dir)
        .join("node_modules/socket.io-client")
        .exists();
    assert!(
        installed,
        "run `npm ci` in {dir} first (scripts/test.sh does)"
    );
    let stack = helpers::stack(2).await;
    let project = stack.create_project("alice", &["bob"]).await;
    let urls = format!("{},{}", stack.gw(0), stack.gw(1));
    let (api, alice, bob, mallory) = (
        stack.api.clone(),
        stack.token("alice"),
        stack.token("bob"),
        stack.token("mallory"),
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "--test-reporter=spec", "."])
            .current_dir(dir)
            .env("GATEWAY_URLS", urls)
            .env("API_URL", api)
            .env("TOKEN_ALICE", alice)
            .env("TOKEN_BOB", bob)
            .env("TOKEN_MALLORY", mallory)
            .env("PROJECT_ID", project)
            .output()
            .expect("node must be installed (scripts/test.sh installs it)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Node suite failed");
    assert!(
        stdout.contains("skipped 0"),
        "no Node test may be skipped here"
    );
}
