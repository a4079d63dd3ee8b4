//! The edge side of sync without a hub: `GET /sync/status` and the metrics of a node that is
//! not enrolled, and of one whose hub cannot be reached; `stayos-edge enroll` refusing bad
//! input (exit 2) and an unreachable hub (exit 1) without storing anything. Syncing with a
//! real hub is in the other sync modules.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use edge_node::http::error::ApiError;
use edge_node::sync::config::{self, HubLink, Pin};
use edge_node::sync::enroll::{self, EnrollError, EnrollOptions};
use serde_json::{Value, json};
use tests::{TestNode, edge_binary};

/// A loopback address where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

fn token() -> String {
    format!("ST1.{}.", "A".repeat(43))
}

/// Asks `/sync/status` until `done` holds for it, for up to ten seconds (the agent looks
/// for a hub link every two).
async fn status_until(node: &TestNode, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = node.get("/sync/status", Some(token)).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        if done(&resp.body) || Instant::now() > deadline {
            return resp.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn enrolled(node: &TestNode) -> bool {
    node.db()
        .read(|conn| -> Result<_, ApiError> {
            Ok(config::load(conn).map_err(ApiError::internal)?.is_some())
        })
        .await
        .expect("read")
}

#[tokio::test]
async fn a_node_that_is_not_enrolled_reports_sync_disabled() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let status = node.get("/sync/status", Some(&owner)).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(
        status.body,
        json!({
            "state": "disabled", "hub_url": null, "node_id": null, "last_success": null,
            "last_error": null, "pending_push": 0, "pending_pull": 0, "pushed_total": 0,
            "pulled_total": 0, "quarantined": 0, "quarantine_recent": [], "hub_quarantined": 0,
        })
    );
    assert_eq!(node.get("/sync/status", None).await.status, 401);
    let metrics = node.get("/metrics", None).await;
    for name in ["stayos_sync_state{state=\"disabled\"}", "stayos_sync_state{state=\"online\"}"] {
        assert!(metrics.text.contains(name), "{name} in /metrics");
    }
    let openapi = node.get("/openapi.json", None).await;
    assert_eq!(openapi.body["paths"]["/sync/status"]["get"]["tags"], json!(["sync"]));
    node.stop().await;
}

#[tokio::test]
async fn an_unreachable_hub_makes_the_node_offline_and_local_writes_wait_for_it() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let url = closed_port_url();
    let link = HubLink {
        url: url.clone(),
        node_id: "node-1".into(),
        credential: "node-1.secret".into(),
        hub_site_id: vec![0xAB; 16],
        pin: Pin::None(true),
    };
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            config::store(tx, &link).map_err(ApiError::internal)?;
            Ok(())
        })
        .await
        .expect("store the link as enroll would");

    // The running agent picks the link up without a restart.
    let status = status_until(&node, &owner, |s| s["last_error"].is_object()).await;
    assert_eq!(status["state"], "offline", "{status}");
    assert_eq!(status["hub_url"], url.as_str());
    assert_eq!(status["node_id"], "node-1");
    assert_eq!(status["last_success"], Value::Null);
    let message = status["last_error"]["message"].as_str().expect("message");
    assert!(message.contains("unreachable"), "{message}");
    assert!(status["last_error"]["at"].as_str().is_some_and(|at| at.ends_with('Z')));

    // Local work goes on; what it writes waits for the hub.
    let before = status["pending_push"].as_u64().expect("pending_push");
    assert!(before > 0, "init's rows are not acknowledged yet");
    let guest = node
        .post("/guests", Some(&owner), json!({ "first_name": "Ada", "last_name": "Offline" }))
        .await;
    assert_eq!(guest.status, 201, "{}", guest.text);
    let after = node.get("/sync/status", Some(&owner)).await.body;
    assert!(after["pending_push"].as_u64().expect("pending_push") > before, "{after}");
    assert_eq!(after["pushed_total"], 0);

    let metrics = node.get("/metrics", None).await.text;
    assert!(metrics.contains("stayos_sync_errors_total"), "errors are counted");

    // A second enrollment must be asked for.
    let again = enroll::enroll(&EnrollOptions {
        data_dir: node.data_dir.clone(),
        hub_url: url,
        token: token(),
        hub_ca_pem: None,
        force: false,
    })
    .await
    .expect_err("already enrolled");
    assert!(matches!(again, EnrollError::AlreadyEnrolled { .. }), "{again}");
    assert_eq!(again.exit_code(), 2);
    node.stop().await;
}

#[tokio::test]
async fn enrolling_with_an_unreachable_hub_stores_nothing() {
    let node = TestNode::spawn().await;
    let err = enroll::enroll(&EnrollOptions {
        data_dir: node.data_dir.clone(),
        hub_url: closed_port_url(),
        token: token(),
        hub_ca_pem: None,
        force: false,
    })
    .await
    .expect_err("nobody answers");
    assert!(matches!(err, EnrollError::Unreachable(_)), "{err}");
    assert_eq!(err.exit_code(), 1);
    assert!(!enrolled(&node).await, "nothing stored");
    node.stop().await;
}

fn edge(args: &[&str]) -> Output {
    let mut cmd = Command::new(edge_binary().expect("stayos-edge binary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STAYOS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).output().expect("run stayos-edge")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_enroll_command_names_what_is_wrong_and_exits_2_for_bad_input_1_for_the_hub() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    tests::init_dir(&dir).expect("init");
    let d = dir.to_str().expect("utf-8 path");

    let bad_token = edge(&["enroll", "--data-dir", d, "--hub", "https://hub", "--token", "x"]);
    assert_eq!(bad_token.status.code(), Some(2), "{}", stderr(&bad_token));
    assert!(stderr(&bad_token).contains("not a StayOS enrollment token"), "{}", stderr(&bad_token));

    let tok = token();
    let no_pin = edge(&["enroll", "--data-dir", d, "--hub", "https://hub", "--token", &tok]);
    assert_eq!(no_pin.status.code(), Some(2), "{}", stderr(&no_pin));
    assert!(stderr(&no_pin).contains("--hub-ca"), "{}", stderr(&no_pin));

    let bad_ca = tmp.path().join("ca.pem");
    std::fs::write(&bad_ca, "not a certificate").expect("write");
    let ca = bad_ca.to_str().expect("utf-8 path");
    let with_bad_ca =
        edge(&["enroll", "--data-dir", d, "--hub", "https://hub", "--token", &tok, "--hub-ca", ca]);
    assert_eq!(with_bad_ca.status.code(), Some(2), "{}", stderr(&with_bad_ca));

    let url = closed_port_url();
    let unreachable = edge(&["enroll", "--data-dir", d, "--hub", &url, "--token", &tok]);
    assert_eq!(unreachable.status.code(), Some(1), "{}", stderr(&unreachable));
    let text = stderr(&unreachable);
    assert!(text.contains("not encrypted"), "http:// is warned about: {text}");
    assert!(text.contains("unreachable"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("error:")).count(), 1, "one line: {text}");
}
