//! Runs the Node test-suite in `tests/node/` (the stock `socket.io-client` package) against
//! a real ticket API and two gateways started here: once talking to each gateway directly,
//! once through nginx balancing the two round-robin (with the project's own local config).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gateway/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");

/// Runs `node --test` in the suite's folder with the stack's addresses and tokens.
async fn run_node_suite(
    stack: &helpers::Stack,
    gateway_urls: String,
    api_url: String,
    instance_ids: &str,
) {
    let installed = Path::new(NODE_DIR)
        .join("node_modules/socket.io-client")
        .exists();
    assert!(
        installed,
        "run `npm ci` in {NODE_DIR} first (scripts/test.sh does)"
    );
    let project = stack.create_project("alice", &["bob"]).await;
    let instance_ids = instance_ids.to_owned();
    let (alice, bob, mallory) = (
        stack.token("alice"),
        stack.token("bob"),
        stack.token("mallory"),
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "--test-reporter=spec"])
            .current_dir(NODE_DIR)
            .env("GATEWAY_URLS", gateway_urls)
            .env("API_URL", api_url)
            .env("TOKEN_ALICE", alice)
            .env("TOKEN_BOB", bob)
            .env("TOKEN_MALLORY", mallory)
            .env("PROJECT_ID", project)
            .env("GATEWAY_INSTANCE_IDS", instance_ids)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_socket_io_client_works_through_two_gateways() {
    let stack = helpers::stack(2).await;
    let urls = format!("{},{}", stack.gw(0), stack.gw(1));
    let api = stack.api.clone();
    run_node_suite(&stack, urls, api, "").await;
}

/// nginx of this test's own, on a free port, from `deploy/local/nginx.conf.template`.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers too (SIGKILL would orphan them);
    /// SIGKILL only if it has not exited after a while.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_owned()
}

fn start_nginx(api: &str, gw1: &str, gw2: &str) -> Nginx {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("kanban-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("nginx-tmp")).unwrap();
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/nginx.conf.template"
    ))
    .unwrap();
    let state = dir.to_string_lossy().to_string();
    let config = template
        .replace("@STATE@", &state)
        .replace("@API_PORT@", &port_of(api))
        .replace("@GW1_PORT@", &port_of(gw1))
        .replace("@GW2_PORT@", &port_of(gw2))
        .replace("@PORT@", &port.to_string())
        .replace("@WEB_ROOT@", &format!("{state}/www"));
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&dir)
        // Never the test's own output: a process left holding it would keep the test
        // runner's pipe open.
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx must be installed (scripts/test.sh installs it)");
    Nginx { child, dir, port }
}

/// The README's stack shape: two gateways behind a round-robin balancer. Every Node socket
/// and REST call goes through nginx; long-polling sessions stay on their gateway because
/// nginx routes by the sid's instance prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_socket_io_client_works_through_nginx_balancing_two_gateways() {
    let mut stack = helpers::stack(0).await;
    stack
        .add_gateway(&|s: &mut gateway::Settings| s.gateway.instance_id = "gw1".into())
        .await;
    stack
        .add_gateway(&|s: &mut gateway::Settings| s.gateway.instance_id = "gw2".into())
        .await;
    let nginx = start_nginx(&stack.api, stack.gw(0), stack.gw(1));
    let base = format!("http://127.0.0.1:{}", nginx.port);
    // nginx starts in the background: wait (under a deadline) until it answers.
    let deadline = std::time::Instant::now() + helpers::WAIT;
    loop {
        if let Ok(response) = kanban_test_support::http()
            .get(format!("{base}/api/openapi.json"))
            .send()
            .await
        {
            if response.status().is_success() {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "nginx never answered");
        tokio::time::sleep(helpers::POLL).await;
    }
    // Both "gateways" are nginx: the suite proves by the sid prefix that its
    // cross-gateway sockets were balanced onto different replicas.
    run_node_suite(&stack, format!("{base},{base}"), base.clone(), "gw1,gw2").await;
    // Both gateways served sessions: the balancer spread them.
    for gw in [stack.gw(0), stack.gw(1)] {
        assert!(
            helpers::metric(gw, "kanban_gateway_connections_total").await >= 1.0,
            "{gw} got no session"
        );
    }
}
