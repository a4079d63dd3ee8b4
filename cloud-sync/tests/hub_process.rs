//! The real `stayos-hub` binary against a fresh PostgreSQL database per test: its command
//! line, HTTPS with the certificate an enrollment token pins, enrollment, node
//! authentication and revocation, ownership refusals with their audit, long-polls, export and
//! import by file, and a prompt clean exit on SIGTERM.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crdt::protocol::{
    self, Batch, CONTENT_ENCODING, CONTENT_TYPE, EnrollResponse, EnrollToken, Hello, Pull, PushAck,
    WireChange, WireValue,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const P1: &str = "0195f2a0-0000-7000-8000-000000000001";
const P2: &str = "0195f2a0-0000-7000-8000-000000000002";

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url} (is PostgreSQL running?): {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database of its own, dropped with the test.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Database {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("stayos_h2_{}_{}_{}", std::process::id(), nanos, rand::random::<u32>());
        pg(PG_ADMIN_URL).await.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("db");
        Database { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Synchronous: Drop cannot await, and psql is on every machine of the project.
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A hub database and, once `serve`d, the serving process.
struct Hub {
    db: Database,
    child: Option<Child>,
    addr: String,
    log: PathBuf,
    /// The hub's state directory (`STAYOS_HUB_STATE_DIR` of every command): its TLS key.
    state: PathBuf,
}

impl Hub {
    async fn new() -> Hub {
        let db = Database::create().await;
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let log = tmp.join(format!("{}.log", db.name));
        let state = tmp.join(format!("{}-state", db.name));
        Hub { db, child: None, addr: String::new(), log, state }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stayos-hub"));
        for (key, _) in std::env::vars() {
            if key.starts_with("STAYOS_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.env("STAYOS_DATABASE_URL", &self.db.url)
            .env("STAYOS_HUB_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().await.expect("run stayos-hub")
    }

    /// A command run with another state directory, or none: another hub machine.
    async fn cli_with_state(&self, state: Option<&std::path::Path>, args: &[&str]) -> Output {
        let mut cmd = self.command();
        match state {
            Some(dir) => cmd.env("STAYOS_HUB_STATE_DIR", dir),
            None => cmd.env_remove("STAYOS_HUB_STATE_DIR"),
        };
        cmd.args(args).output().await.expect("run stayos-hub")
    }

    async fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args).await;
        assert!(out.status.success(), "stayos-hub {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `serve --listen 127.0.0.1:0`, waiting for its `listening on` line.
    async fn serve(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the hub printed its address in time")
            .expect("stdout")
            .unwrap_or_else(|| panic!("the hub exited: {}", self.log_text()));
        self.addr = line.strip_prefix("listening on ").expect("listening on <addr>").to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    async fn token(&self, property_id: &str) -> String {
        self.cli_ok(&["enroll-token", "--property-id", property_id]).await.trim().to_string()
    }

    /// SIGTERM; returns how long the process took to exit and whether it exited 0.
    async fn terminate(&mut self) -> (Duration, bool) {
        let mut child = self.child.take().expect("serving");
        let pid = child.id().expect("running").to_string();
        let started = Instant::now();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the hub exits after SIGTERM")
            .expect("wait");
        (started.elapsed(), status.success())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An HTTPS client that trusts only the certificate with this fingerprint: the edge's own
/// pinning (`edge_node::sync::client`), as a node uses it on first contact.
fn pinned_client(sha256: &str) -> reqwest::Client {
    let pin = edge_node::sync::config::Pin::CertSha256(sha256.to_string());
    let mut config = edge_node::sync::client::tls_config(&pin)
        .expect("a pinned TLS configuration")
        .expect("https");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn fingerprint(token: &str) -> String {
    EnrollToken::parse(token).expect("token").cert_sha256.expect("the token pins a certificate")
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    (status, serde_json::from_str(&body).unwrap_or_else(|_| json!({ "raw": body })))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn enroll(
    client: &reqwest::Client,
    hub: &Hub,
    token: &str,
    site: [u8; 16],
    property_id: &str,
) -> (u16, Value) {
    let body = json!({
        "token": token, "site_id": hex::encode(site), "property_id": property_id, "name": "desk-1",
    });
    json_of(client.post(hub.url("/v1/enroll")).json(&body).send().await.expect("enroll")).await
}

async fn enroll_ok(
    client: &reqwest::Client,
    hub: &Hub,
    site: [u8; 16],
    property_id: &str,
) -> EnrollResponse {
    let token = hub.token(property_id).await;
    let (status, body) = enroll(client, hub, &token, site, property_id).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("EnrollResponse")
}

/// One change of a `properties` row: the row's name.
fn property_name_change(property_id: &str, site: [u8; 16], db_version: i64) -> WireChange {
    WireChange {
        table: "properties".into(),
        pk: crdt::pack(&[crdt::Value::Text(property_id.into())]).expect("pk"),
        cid: "name".into(),
        val: WireValue::Text(format!("Hotel {db_version}")),
        col_version: db_version,
        db_version,
        site_id: site.to_vec(),
        cl: 1,
        seq: 0,
    }
}

async fn push(
    client: &reqwest::Client,
    hub: &Hub,
    credential: &str,
    batch: &Batch,
) -> reqwest::Response {
    client
        .post(hub.url("/v1/sync/push"))
        .bearer_auth(credential)
        .header("content-type", CONTENT_TYPE)
        .header("content-encoding", CONTENT_ENCODING)
        .body(protocol::encode(batch))
        .send()
        .await
        .expect("push")
}

async fn pull(
    client: &reqwest::Client,
    hub: &Hub,
    credential: &str,
    since: i64,
    wait: u64,
) -> Pull {
    let resp = client
        .get(hub.url(&format!("/v1/sync/pull?since={since}&limit=100&wait={wait}")))
        .bearer_auth(credential)
        .send()
        .await
        .expect("pull");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], CONTENT_TYPE);
    assert_eq!(resp.headers()["content-encoding"], CONTENT_ENCODING);
    protocol::decode(&resp.bytes().await.expect("body"), protocol::MAX_DECODED_BYTES)
        .expect("a Pull")
}

#[tokio::test]
async fn migrating_twice_then_serving_over_the_pinned_certificate_answers_health_ready_and_metrics()
{
    let mut hub = Hub::new().await;
    let first = hub.cli_ok(&["migrate"]).await;
    let second = hub.cli_ok(&["migrate"]).await;
    assert_eq!(first, second, "a second migrate changes nothing, not even the certificate");
    hub.serve(&[]).await;
    let token = hub.token(P1).await;
    let sha = fingerprint(&token);
    assert!(first.contains(&sha), "migrate reports the fingerprint tokens carry: {first}");
    let client = pinned_client(&sha);

    let (status, body) =
        json_of(client.get(hub.url("/health")).send().await.expect("health")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = json_of(client.get(hub.url("/ready")).send().await.expect("ready")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    let (status, body) = json_of(client.get(hub.url("/nope")).send().await.expect("404")).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));

    let metrics = client.get(hub.url("/metrics")).send().await.expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.expect("text");
    for series in [
        "http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "stayos_hub_push_batches_total",
        "stayos_hub_changes_merged_total",
        "stayos_hub_head_version",
        "stayos_hub_nodes_connected",
    ] {
        assert!(metrics.contains(series), "/metrics has {series}:\n{metrics}");
    }

    // A client pinned to another certificate cannot even connect.
    let wrong = pinned_client(&"00".repeat(32));
    assert!(wrong.get(hub.url("/health")).send().await.is_err());

    let (took, ok) = hub.terminate().await;
    assert!(ok, "exit code 0 after SIGTERM; log: {}", hub.log_text());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
}

#[tokio::test]
async fn a_token_enrolls_once_and_used_expired_garbage_or_mismatched_tokens_are_refused() {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let token = hub.token(P1).await;
    let client = pinned_client(&fingerprint(&token));
    let site = [1u8; 16];

    // Refusals that must not burn the token.
    let (status, body) = enroll(&client, &hub, &token, site, P2).await;
    assert_eq!((status, error_code(&body)), (422, "property_mismatch"), "{body}");
    let bad_site = json!({ "token": token, "site_id": "abc", "property_id": P1 });
    let resp = client.post(hub.url("/v1/enroll")).json(&bad_site).send().await.expect("send");
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "site_id");

    let (status, body) = enroll(&client, &hub, &token, site, P1).await;
    assert_eq!(status, 200, "{body}");
    let enrolled: EnrollResponse = serde_json::from_value(body).expect("EnrollResponse");
    assert_eq!(enrolled.property_id, P1);
    assert!(enrolled.credential.starts_with(&format!("{}.", enrolled.node_id)));

    let (status, body) = enroll(&client, &hub, &token, [2; 16], P1).await;
    assert_eq!((status, error_code(&body)), (401, "token_used"));

    let (status, body) = enroll(&client, &hub, "ST1.not-a-real-secret.", [2; 16], P1).await;
    assert_eq!((status, error_code(&body)), (401, "token_invalid"));
    let (status, body) = enroll(&client, &hub, "garbage", [2; 16], P1).await;
    assert_eq!((status, error_code(&body)), (401, "token_invalid"));

    let expired = hub.token(P1).await;
    pg(&hub.db.url)
        .await
        .execute("UPDATE enroll_tokens SET expires_at = now() - interval '1 second' WHERE used_at IS NULL", &[])
        .await
        .expect("age the token");
    let (status, body) = enroll(&client, &hub, &expired, [2; 16], P1).await;
    assert_eq!((status, error_code(&body)), (401, "token_expired"));

    // The same site twice: 409, and the token stays usable for another site.
    let again = hub.token(P1).await;
    let (status, body) = enroll(&client, &hub, &again, site, P1).await;
    assert_eq!((status, error_code(&body)), (409, "site_enrolled"));
    let (status, body) = enroll(&client, &hub, &again, [3; 16], P1).await;
    assert_eq!(status, 200, "{body}");

    let resp = client.post(hub.url("/v1/enroll")).body("{").send().await.expect("send");
    let (status, body) = json_of(resp).await;
    assert!(status == 400 || status == 415 || status == 422, "{status} {body}");
    assert!(!error_code(&body).is_empty(), "JSON error shape: {body}");

    let listed = hub.cli_ok(&["nodes"]).await;
    assert!(listed.contains(&enrolled.node_id) && listed.contains(&hex::encode(site)), "{listed}");
    let audited: i64 = pg(&hub.db.url)
        .await
        .query_one("SELECT count(*) FROM hub_audit WHERE event = 'node_enrolled'", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 2);

    assert!(hub.terminate().await.1);
}

#[tokio::test]
async fn sync_calls_need_a_valid_credential_and_a_revoked_node_is_refused_and_audited() {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let client = pinned_client(&fingerprint(&hub.token(P1).await));
    let site = [4u8; 16];
    let node = enroll_ok(&client, &hub, site, P1).await;

    let hello = |credential: Option<String>| {
        let mut req = client.get(hub.url("/v1/sync/hello"));
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        async move { json_of(req.send().await.expect("hello")).await }
    };
    let (status, body) = hello(None).await;
    assert_eq!((status, error_code(&body)), (401, "unauthenticated"));
    let wrong_secret = format!("{}.{}", node.node_id, "A".repeat(43));
    let (status, body) = hello(Some(wrong_secret)).await;
    assert_eq!((status, error_code(&body)), (401, "unauthenticated"));
    let (status, body) = hello(Some("no-dot".into())).await;
    assert_eq!((status, error_code(&body)), (401, "unauthenticated"));

    let (status, body) = hello(Some(node.credential.clone())).await;
    assert_eq!(status, 200, "{body}");
    let h: Hello = serde_json::from_value(body).expect("Hello");
    assert_eq!(
        (h.node_id.as_str(), h.property_id.as_str(), h.received),
        (node.node_id.as_str(), P1, 0)
    );
    assert_eq!(h.hub_site_id, node.hub_site_id);

    let out = hub.cli(&["revoke-node", "--node-id", "no-such-node"]).await;
    assert_eq!(out.status.code(), Some(2), "unknown node: exit 2");
    assert!(text(&out.stderr).contains("no-such-node"));
    hub.cli_ok(&["revoke-node", "--node-id", &node.node_id]).await;

    // `revoke-node` is another process: the serving hub hears of it by NOTIFY, which it
    // receives on its listening connection a moment after the command commits. Until then it
    // may still answer from the credential it remembered for the hello above; after that,
    // never again. The wait is bounded: a revocation that never lands fails the test.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = hello(Some(node.credential.clone())).await;
        if status == 403 {
            assert_eq!(error_code(&body), "node_revoked");
            break;
        }
        assert_eq!(status, 200, "before the revocation lands the node is still served: {body}");
        assert!(Instant::now() < deadline, "the revocation did not reach the serving hub in 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let (status, body) = hello(Some(node.credential.clone())).await;
        assert_eq!((status, error_code(&body)), (403, "node_revoked"));
    }
    let batch = Batch {
        site_id: site.to_vec(),
        schema_version: 1,
        since: 0,
        until: 1,
        changes: vec![property_name_change(P1, site, 1)],
    };
    let resp = push(&client, &hub, &node.credential, &batch).await;
    assert_eq!(resp.status().as_u16(), 403);

    let db = pg(&hub.db.url).await;
    let events: Vec<String> = db
        .query("SELECT event FROM hub_audit WHERE node_id = $1 ORDER BY id", &[&node.node_id])
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        events,
        ["node_enrolled", "node_revoked", "revoked_node_refused"],
        "a retrying revoked node is audited once a minute, not per request"
    );
    let listed = hub.cli_ok(&["nodes"]).await;
    assert!(listed.lines().any(|l| l.starts_with(&node.node_id) && !l.ends_with('-')), "{listed}");

    // The site may enroll again after the revocation.
    enroll_ok(&client, &hub, site, P1).await;
    assert!(hub.terminate().await.1);
}

#[tokio::test]
async fn a_push_is_merged_for_its_own_property_and_another_propertys_change_quarantined_and_audited()
 {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let client = pinned_client(&fingerprint(&hub.token(P1).await));
    let (site_a, site_b) = ([0xA1u8; 16], [0xB2u8; 16]);
    let a = enroll_ok(&client, &hub, site_a, P1).await;
    let b = enroll_ok(&client, &hub, site_b, P1).await;

    // Node B long-polls before anything exists; A's push wakes it.
    let waiting = {
        let client = client.clone();
        let url = hub.url("/v1/sync/pull?since=0&wait=20");
        let credential = b.credential.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = client.get(url).bearer_auth(credential).send().await.expect("pull");
            let body = resp.bytes().await.expect("body");
            (started.elapsed(), protocol::decode::<Pull>(&body, 1 << 30).expect("Pull"))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let own = Batch {
        site_id: site_a.to_vec(),
        schema_version: 2,
        since: 0,
        until: 1,
        changes: vec![property_name_change(P1, site_a, 1)],
    };
    let resp = push(&client, &hub, &a.credential, &own).await;
    assert_eq!(resp.status().as_u16(), 200);
    let ack: PushAck = resp.json().await.expect("PushAck");
    assert_eq!(ack.received, 1);
    let (waited, pulled) = waiting.await.expect("long-poll");
    assert!(waited < Duration::from_secs(10), "the push woke the long-poll ({waited:?})");
    assert_eq!(pulled.batch.changes.len(), 1, "{pulled:?}");
    assert_eq!(pulled.batch.changes[0].site_id, site_a.to_vec());
    // A does not get its own change back.
    assert!(pull(&client, &hub, &a.credential, 0, 0).await.batch.changes.is_empty());

    // Another property's row rides with one of A's own: the bad change is quarantined with
    // its reason, A's change is merged, A's cursor moves on, and the refusal is audited.
    let foreign = Batch {
        site_id: site_a.to_vec(),
        schema_version: 2,
        since: 1,
        until: 2,
        changes: vec![property_name_change(P1, site_a, 2), property_name_change(P2, site_a, 2)],
    };
    let resp = push(&client, &hub, &a.credential, &foreign).await;
    assert_eq!(resp.status().as_u16(), 200);
    let ack: PushAck = resp.json().await.expect("PushAck");
    assert_eq!((ack.received, ack.applied, ack.quarantined), (2, 1, 1), "{ack:?}");
    let db = pg(&hub.db.url).await;
    let names: Vec<String> = db
        .query("SELECT id FROM replica.properties ORDER BY id", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, vec![P1.to_string()], "nothing of P2 was stored");
    let (kind, reason): (String, String) = db
        .query_one(
            "SELECT kind, reason FROM sync_quarantine WHERE node_id = $1 AND tbl = 'properties'",
            &[&a.node_id],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("one quarantined change");
    assert_eq!(kind, "other_property");
    assert!(reason.contains("own property"), "{reason}");
    let refused = db
        .query_one(
            "SELECT details::text FROM hub_audit WHERE event = 'push_refused' AND node_id = $1",
            &[&a.node_id],
        )
        .await
        .expect("one push_refused audit row");
    assert!(refused.get::<_, String>(0).contains("quarantined"));

    // A batch of another site's changes from A: refused.
    let wrong_site = Batch { site_id: site_b.to_vec(), ..own.clone() };
    let (status, body) = json_of(push(&client, &hub, &a.credential, &wrong_site).await).await;
    assert_eq!((status, error_code(&body)), (403, "wrong_site"));

    // The wire is checked before anything else.
    let resp = client
        .post(hub.url("/v1/sync/push"))
        .bearer_auth(&a.credential)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 415);
    let resp = client
        .post(hub.url("/v1/sync/push"))
        .bearer_auth(&a.credential)
        .header("content-type", CONTENT_TYPE)
        .header("content-encoding", CONTENT_ENCODING)
        .body("not zstd")
        .send()
        .await
        .expect("send");
    let (status, body) = json_of(resp).await;
    assert_eq!((status, error_code(&body)), (422, "invalid_body"));
    let resp = client
        .get(hub.url("/v1/sync/pull?limit=0"))
        .bearer_auth(&a.credential)
        .send()
        .await
        .expect("send");
    let (status, body) = json_of(resp).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("limit")));

    let metrics = client.get(hub.url("/metrics")).send().await.expect("m").text().await.expect("t");
    assert!(
        metrics.contains("stayos_hub_quarantined_total{kind=\"other_property\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stayos_hub_push_batches_total{result=\"ok\"} 1"), "{metrics}");
    assert!(
        metrics.contains("stayos_hub_push_batches_total{result=\"partly_quarantined\"} 1"),
        "{metrics}"
    );
    assert!(hub.terminate().await.1);
}

#[tokio::test]
async fn sigterm_answers_waiting_long_polls_at_once_and_exits_zero() {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let client = pinned_client(&fingerprint(&hub.token(P1).await));
    let node = enroll_ok(&client, &hub, [9; 16], P1).await;
    let polls: Vec<_> = (0..20)
        .map(|_| {
            let req = client
                .get(hub.url("/v1/sync/pull?since=0&wait=30"))
                .bearer_auth(&node.credential)
                .send();
            tokio::spawn(async move { req.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = client.get(hub.url("/metrics")).send().await.expect("m").text().await.expect("t");
    assert!(metrics.contains("stayos_hub_nodes_connected 20"), "{metrics}");

    let (took, ok) = hub.terminate().await;
    assert!(ok, "exit 0; log: {}", hub.log_text());
    assert!(took < Duration::from_secs(5), "long-polls did not hold the shutdown: {took:?}");
    for poll in polls {
        assert_eq!(poll.await.expect("task").expect("answered, not cut off"), 200);
    }
}

/// A merge by another process on the same database — here `changes import` while the hub
/// serves — wakes the serving hub's long-polls through its notification, and they answer it
/// (from the database: the serving process never saw that version).
#[tokio::test]
async fn a_change_imported_by_another_process_wakes_long_polls_and_is_pulled() {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let client = pinned_client(&fingerprint(&hub.token(P1).await));
    let node = enroll_ok(&client, &hub, [5; 16], P1).await;
    let waiting = {
        let (client, url, credential) =
            (client.clone(), hub.url("/v1/sync/pull?since=0&limit=100&wait=30"), node.credential);
        tokio::spawn(async move {
            let resp = client.get(url).bearer_auth(credential).send().await.expect("pull");
            assert_eq!(resp.status().as_u16(), 200);
            let body = resp.bytes().await.expect("body");
            protocol::decode::<Pull>(&body, protocol::MAX_DECODED_BYTES).expect("a Pull")
        })
    };

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&hub.db.name);
    std::fs::create_dir_all(&dir).expect("dir");
    let change: crdt::Change = property_name_change(P1, [7; 16], 1).into();
    let file = dir.join("import.jsonl");
    std::fs::write(&file, format!("{}\n", crdt::wire::change_line(&change))).expect("write");
    let path = file.to_str().expect("path");
    hub.cli_ok(&["changes", "import", "--property-id", P1, path]).await;

    let pull = waiting.await.expect("the long-poll answered");
    assert_eq!(pull.batch.changes.len(), 1, "the imported change, not a timed-out empty answer");
    assert_eq!(pull.batch.changes[0].val, WireValue::Text("Hotel 1".into()));
    assert_eq!(pull.batch.until, pull.batch.changes[0].db_version);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(hub.terminate().await.1);
}

#[tokio::test]
async fn changes_travel_by_file_and_bad_files_are_refused_with_the_line_and_exit_code_two() {
    let hub = Hub::new().await;
    hub.cli_ok(&["migrate"]).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&hub.db.name);
    std::fs::create_dir_all(&dir).expect("dir");
    let site = [7u8; 16];
    let change: crdt::Change = property_name_change(P1, site, 1).into();
    let good = dir.join("good.jsonl");
    std::fs::write(&good, format!("{}\n", crdt::wire::change_line(&change))).expect("write");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, format!("{}\nnot json\n", crdt::wire::change_line(&change)))
        .expect("write");

    let out = hub.cli(&["changes", "import", "--property-id", P1, bad.to_str().expect("p")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("line 2"), "{}", text(&out.stderr));

    let out = hub.cli(&["changes", "import", "--property-id", P2, good.to_str().expect("p")]).await;
    assert_eq!(out.status.code(), Some(2), "another property's row: {}", text(&out.stderr));

    let imported =
        hub.cli_ok(&["changes", "import", "--property-id", P1, good.to_str().expect("p")]).await;
    assert!(imported.contains("1 applied"), "{imported}");

    let exported = dir.join("to-edge.jsonl");
    let path = exported.to_str().expect("p");
    hub.cli_ok(&["changes", "export", "--property-id", P1, path]).await;
    let lines: Vec<(crdt::Change, Option<i64>)> = std::fs::read_to_string(&exported)
        .expect("read")
        .lines()
        .map(|l| crdt::wire::parse_line(l).expect("a change line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].0.val.clone(), lines[0].0.site_id.clone()), (change.val, site.to_vec()));
    assert!(lines[0].1.is_some(), "export carries the schema version");

    let out = hub.cli(&["changes", "export", "--property-id", P1, path]).await;
    assert_eq!(out.status.code(), Some(2), "never overwrites: {}", text(&out.stderr));

    let audited: i64 = pg(&hub.db.url)
        .await
        .query_one("SELECT count(*) FROM hub_audit WHERE event = 'changes_imported'", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_stayos-hub"))
        .args(["nodes", "--database-url", "postgres://hub:s3cret@127.0.0.1:1/none"])
        .env_remove("STAYOS_DATABASE_URL")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("postgres://hub@127.0.0.1:1/none")
            && err.contains("PostgreSQL must be running"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[tokio::test]
async fn serving_certificate_files_serves_them_and_tokens_then_pin_nothing() {
    let mut hub = Hub::new().await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-tls", hub.db.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    hub.serve(&[
        "--tls-cert",
        cert_file.to_str().expect("p"),
        "--tls-key",
        key_file.to_str().expect("p"),
    ])
    .await;

    let token = hub.token(P1).await;
    assert_eq!(EnrollToken::parse(&token).expect("token").cert_sha256, None, "{token}");
    let client = pinned_client(&hex::encode(Sha256::digest(cert.der().as_ref())));
    let resp = client.get(hub.url("/health")).send().await.expect("the file certificate");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(hub.terminate().await.1);
    let _ = std::fs::remove_dir_all(&dir);

    let out = hub
        .cli(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/c.pem",
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/c.pem"));
}

/// A zstd stream of `n` zero bytes, written in pieces so the test never holds them.
fn zeros_compressed(n: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        enc.write_all(&chunk[..k]).expect("write");
        left -= k;
    }
    enc.finish().expect("finish")
}

/// The peak resident memory of a process so far (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("KiB")
}

#[tokio::test]
async fn a_zstd_bomb_is_refused_with_413_before_the_hub_holds_what_it_expands_to() {
    let mut hub = Hub::new().await;
    hub.serve(&[]).await;
    let client = pinned_client(&fingerprint(&hub.token(P1).await));
    let site = [0x5Au8; 16];
    let node = enroll_ok(&client, &hub, site, P1).await;
    let pid = hub.child.as_ref().and_then(Child::id).expect("serving");

    // 256 MiB of zeros in a body of a few kilobytes.
    let bomb = zeros_compressed(256 << 20);
    assert!(bomb.len() < 40 * 1024, "{} bytes", bomb.len());
    let before = peak_rss_kib(pid);
    for _ in 0..3 {
        let resp = client
            .post(hub.url("/v1/sync/push"))
            .bearer_auth(&node.credential)
            .header("content-type", CONTENT_TYPE)
            .header("content-encoding", CONTENT_ENCODING)
            .body(bomb.clone())
            .send()
            .await
            .expect("push");
        let (status, body) = json_of(resp).await;
        assert_eq!((status, error_code(&body)), (413, "batch_too_large"), "{body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("64 times"), "the answer says why: {message}");
    }
    let after = peak_rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "the hub's peak RSS grew from {before} KiB to {after} KiB refusing the bomb"
    );

    // The node's honest batch is merged as before.
    let batch = Batch {
        site_id: site.to_vec(),
        schema_version: 2,
        since: 0,
        until: 1,
        changes: vec![property_name_change(P1, site, 1)],
    };
    let resp = push(&client, &hub, &node.credential, &batch).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(hub.terminate().await.1, "{}", hub.log_text());
}

/// A push sent up to half its body over plain HTTP: the hub has admitted it (slot and
/// memory) and waits for the rest.
struct HeldPush {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl HeldPush {
    async fn start(addr: &str, credential: &str, body: &[u8]) -> HeldPush {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/sync/push HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {credential}\r\n\
             content-type: {CONTENT_TYPE}\r\ncontent-encoding: {CONTENT_ENCODING}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let half = body.len() / 2;
        stream.write_all(&body[..half]).await.expect("half the body");
        stream.flush().await.expect("flush");
        HeldPush { stream, rest: body[half..].to_vec() }
    }

    /// Sends the rest of the body; the answer's status.
    async fn finish(mut self) -> u16 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        self.stream.write_all(&self.rest).await.expect("the rest");
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.expect("answer");
        let answer = String::from_utf8_lossy(&answer);
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
    }
}

/// Waits until the hub's gauge `name` reads `value` (the hub got that far), failing after a
/// minute.
async fn until_gauge(client: &reqwest::Client, base: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < deadline {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        seen = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        if seen == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} never read {value} (last {seen:?})");
}

#[tokio::test]
async fn pushes_over_a_nodes_cap_or_the_hubs_are_told_to_retry_and_memory_is_waited_for() {
    let mut hub = Hub::new().await;
    hub.serve(&[
        "--http",
        "--pushes-per-node",
        "2",
        "--pushes-in-flight",
        "3",
        "--push-memory-mib",
        "16",
    ])
    .await;
    let base = format!("http://{}", hub.addr);
    let client = reqwest::Client::new();
    let enroll_http = async |site: [u8; 16]| {
        let body = json!({
            "token": hub.token(P1).await, "site_id": hex::encode(site), "property_id": P1,
        });
        let resp =
            client.post(format!("{base}/v1/enroll")).json(&body).send().await.expect("enroll");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json::<EnrollResponse>().await.expect("EnrollResponse")
    };
    let (site_a, site_b) = ([0xC1u8; 16], [0xC2u8; 16]);
    let a = enroll_http(site_a).await;
    let b = enroll_http(site_b).await;
    let push_http = |credential: String, site: [u8; 16], version: i64| {
        let batch = Batch {
            site_id: site.to_vec(),
            schema_version: 2,
            since: version - 1,
            until: version,
            changes: vec![property_name_change(P1, site, version)],
        };
        client
            .post(format!("{base}/v1/sync/push"))
            .bearer_auth(credential)
            .header("content-type", CONTENT_TYPE)
            .header("content-encoding", CONTENT_ENCODING)
            .body(protocol::encode(&batch))
            .send()
    };
    let garbage = vec![7u8; 1000];

    // Node A has two pushes running: its third is told to come back.
    let a1 = HeldPush::start(&hub.addr, &a.credential, &garbage).await;
    let a2 = HeldPush::start(&hub.addr, &a.credential, &garbage).await;
    until_gauge(&client, &base, "stayos_hub_pushes_in_flight", 2.0).await;
    let resp = push_http(a.credential.clone(), site_a, 1).await.expect("push");
    assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    let (status, body) = json_of(resp).await;
    assert_eq!((status, error_code(&body)), (429, "too_many_pushes"), "{body}");

    // With B's push the hub is at its three: B's second is refused as busy, not as B's.
    let b1 = HeldPush::start(&hub.addr, &b.credential, &garbage).await;
    until_gauge(&client, &base, "stayos_hub_pushes_in_flight", 3.0).await;
    let resp = push_http(b.credential.clone(), site_b, 1).await.expect("push");
    assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"2"[..]));
    let (status, body) = json_of(resp).await;
    assert_eq!((status, error_code(&body)), (503, "hub_busy"), "{body}");

    // The held pushes were admitted all along: each is answered once its body is complete.
    for held in [a1, a2, b1] {
        assert_eq!(held.finish().await, 422, "garbage is not a batch");
    }
    until_gauge(&client, &base, "stayos_hub_pushes_in_flight", 0.0).await;

    // A body that may decode to more than the 16 MiB budget takes all of it; B's push waits
    // for the memory and is merged once A's is answered.
    let big = HeldPush::start(&hub.addr, &a.credential, &vec![7u8; 300_000]).await;
    until_gauge(&client, &base, "stayos_hub_push_memory_reserved_kib", 16_384.0).await;
    let waiting = tokio::spawn(push_http(b.credential.clone(), site_b, 1));
    until_gauge(&client, &base, "stayos_hub_pushes_waiting_for_memory", 1.0).await;
    assert_eq!(big.finish().await, 422);
    let resp = waiting.await.expect("task").expect("push");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<PushAck>().await.expect("ack").received, 1);
    until_gauge(&client, &base, "stayos_hub_push_memory_reserved_kib", 0.0).await;
    assert!(hub.terminate().await.1, "{}", hub.log_text());
}

#[tokio::test]
async fn migrate_moves_the_tls_key_out_of_the_database_and_nodes_keep_their_pinned_hub() {
    let mut hub = Hub::new().await;
    let out = hub.cli_with_state(None, &["migrate"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no TLS certificate yet"), "{}", text(&out.stdout));

    // The database as an older hub left it: its certificate and, in clear, its key. From
    // migration 0004 on nothing writes a key there; an old binary's row is put back by hand.
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let sha = hex::encode(Sha256::digest(cert.der().as_ref()));
    let pg = pg(&hub.db.url).await;
    let refused = pg
        .execute(
            "INSERT INTO hub_meta (key, value) VALUES ('tls_key_pem', $1)",
            &[&key.serialize_pem().as_bytes()],
        )
        .await;
    assert!(refused.is_err(), "hub_meta refuses a private key");
    pg.batch_execute("SET session_replication_role = replica").await.expect("bypass triggers");
    pg.execute(
        "INSERT INTO hub_meta (key, value) VALUES ('tls_cert_pem', $1), ('tls_key_pem', $2)",
        &[&cert.pem().as_bytes(), &key.serialize_pem().as_bytes()],
    )
    .await
    .expect("an older hub's rows");
    let token = hub.token(P1).await;
    assert_eq!(fingerprint(&token), sha, "the token pins the certificate nodes know");
    let keys_in_db = async || -> i64 {
        pg.query_one(
            "SELECT count(*) FROM hub_meta WHERE position('PRIVATE KEY'::bytea IN value) > 0",
            &[],
        )
        .await
        .expect("count")
        .get(0)
    };

    // Without a state directory there is nowhere to put it: refused, the key left in place.
    let out = hub.cli_with_state(None, &["migrate"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--state-dir"), "{}", text(&out.stderr));
    assert_eq!(keys_in_db().await, 1, "nothing lost");

    // With one: the key moves into its file, owner-only, and leaves the database.
    let first = hub.cli_ok(&["migrate"]).await;
    assert!(first.contains(&sha), "the same certificate: {first}");
    let key_file = hub.state.join("tls-key.pem");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key_file).expect("key file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&key_file).expect("read"), key.serialize_pem());
    assert_eq!(keys_in_db().await, 0);
    let dump = std::process::Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "--data-only", &hub.db.name])
        .output()
        .expect("pg_dump");
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    assert!(!text(&dump.stdout).contains("PRIVATE KEY"), "no table of the hub holds a key");
    assert_eq!(hub.cli_ok(&["migrate"]).await, first, "moving it again changes nothing");

    // The hub serves the certificate nodes pinned, and the token made before still enrolls.
    hub.serve(&[]).await;
    let client = pinned_client(&sha);
    let (status, body) = enroll(&client, &hub, &token, [0xD1; 16], P1).await;
    assert_eq!(status, 200, "{body}");
    assert!(hub.terminate().await.1, "{}", hub.log_text());

    // Another hub machine without the key file cannot serve, and says what to copy; one
    // without any state directory is told it needs one.
    let elsewhere = hub.state.with_extension("elsewhere");
    let out = hub.cli_with_state(Some(&elsewhere), &["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("copy tls-key.pem") && stderr.contains(&sha), "{stderr}");
    let out = hub.cli_with_state(None, &["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--state-dir"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&hub.state);
    let _ = std::fs::remove_dir_all(&elsewhere);
}
