//! The `stayos-edge` command line, run as the real binary: init, serve over HTTPS with the
//! property's own CA, configuration errors, graceful shutdown, and the demo.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tests::{OWNER_PASSWORD, edge_binary};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn edge() -> Command {
    let mut cmd = Command::new(edge_binary().expect("stayos-edge binary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STAYOS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

async fn init(dir: &Path, password: &str) -> Output {
    edge()
        .args(["init", "--data-dir"])
        .arg(dir)
        .args(["--property-name", "Seaside Inn", "--admin-email", "it@seaside.example"])
        .env("STAYOS_ADMIN_PASSWORD", password)
        .output()
        .await
        .expect("run init")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `serve` and returns the child, its URL, and its remaining stdout.
async fn serve(
    dir: &Path,
    extra_env: &[(&str, &str)],
) -> (Child, String, Lines<BufReader<ChildStdout>>) {
    let mut cmd = edge();
    cmd.args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve printed its address in time")
        .expect("read stdout")
        .expect("a line");
    let url = line.rsplit(' ').next().expect("url").to_string();
    (child, url, lines)
}

fn terminate(child: &Child) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
}

#[tokio::test]
async fn init_refuses_a_weak_password_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let out = init(&dir, "hotel2024").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    assert!(!dir.exists(), "a refused init must not leave a directory behind");
}

#[tokio::test]
async fn init_without_a_password_or_a_terminal_says_how_to_give_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edge()
        .args(["init", "--data-dir"])
        .arg(tmp.path().join("node"))
        .args(["--property-name", "Seaside Inn", "--admin-email", "it@seaside.example"])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("STAYOS_ADMIN_PASSWORD"), "{}", stderr(&out));
}

#[tokio::test]
async fn init_names_a_bad_argument() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edge()
        .args(["init", "--data-dir"])
        .arg(tmp.path().join("node"))
        .args(["--property-name", "Seaside Inn", "--admin-email", "not-an-email"])
        .env("STAYOS_ADMIN_PASSWORD", OWNER_PASSWORD)
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--admin-email"), "{}", stderr(&out));
}

#[tokio::test]
async fn init_on_an_initialised_directory_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let first = init(&dir, OWNER_PASSWORD).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let before = std::fs::read(dir.join("stayos.db")).expect("db");
    let key_before = std::fs::read(dir.join("keys/jwt.key")).expect("key");
    let second = init(&dir, "another-strong-passphrase-here").await;
    assert!(!second.status.success());
    assert!(stderr(&second).contains("already"), "{}", stderr(&second));
    assert_eq!(std::fs::read(dir.join("stayos.db")).expect("db"), before);
    assert_eq!(std::fs::read(dir.join("keys/jwt.key")).expect("key"), key_before);
}

#[tokio::test]
async fn serve_on_an_uninitialised_directory_says_to_run_init() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edge().args(["serve", "--data-dir"]).arg(tmp.path()).output().await.expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stayos-edge init"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_bad_configuration_key_is_named_whether_in_the_file_or_the_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    assert!(init(&dir, OWNER_PASSWORD).await.status.success());

    std::fs::write(dir.join("stayos.toml"), "[auth]\nsesion_hours = 3\n").expect("write");
    let out = edge().args(["serve", "--data-dir"]).arg(&dir).output().await.expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sesion_hours"), "{}", stderr(&out));

    std::fs::write(dir.join("stayos.toml"), "").expect("write");
    let out = edge()
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .env("STAYOS_RATE_LIMIT__PER_SECOND", "lots")
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).to_lowercase().contains("per_second"), "{}", stderr(&out));
}

#[tokio::test]
async fn serve_speaks_https_to_clients_that_pin_the_property_ca_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    assert!(init(&dir, OWNER_PASSWORD).await.status.success());
    let (mut child, url, _lines) = serve(&dir, &[]).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().expect("port");

    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("tls/ca.pem")).expect("ca"))
        .expect("pem");
    let pinned = reqwest::Client::builder().tls_certs_only([ca]).build().expect("client");
    for host in ["localhost", "127.0.0.1"] {
        let resp = pinned.get(format!("https://{host}:{port}/health")).send().await;
        assert_eq!(resp.expect("TLS with the pinned CA").status().as_u16(), 200, "{host}");
    }
    let other_ca = rcgen_free_ca();
    let stranger = reqwest::Client::builder().tls_certs_only([other_ca]).build().expect("client");
    assert!(stranger.get(format!("https://localhost:{port}/health")).send().await.is_err());

    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success(), "{status}");
    assert!(!dir.join("stayos.db-wal").exists(), "the database was not closed cleanly");
}

/// A CA certificate unrelated to the node: another property's.
fn rcgen_free_ca() -> reqwest::Certificate {
    let tmp = tempfile::tempdir().expect("tempdir");
    tests::init_dir(&tmp.path().join("other")).expect("init other");
    let pem = std::fs::read(tmp.path().join("other/tls/ca.pem")).expect("ca");
    reqwest::Certificate::from_pem(&pem).expect("pem")
}

#[tokio::test]
async fn the_demo_prints_where_to_go_and_its_login_works() {
    let mut child = edge()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut url, mut login) = (None, None);
    while url.is_none() || login.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("demo output in time")
            .expect("read")
            .expect("more output");
        if let Some(rest) = line.split("running at ").nth(1) {
            url = rest.split_whitespace().next().map(|u| u.trim_end_matches('/').to_string());
        }
        if let Some(rest) = line.split("log in as ").nth(1) {
            let parts: Vec<&str> = rest.split(" with password ").collect();
            login = Some((parts[0].trim().to_string(), parts[1].trim().to_string()));
        }
    }
    let (url, (email, password)) = (url.expect("url"), login.expect("login"));
    let client = reqwest::Client::new();
    let page = client.get(format!("{url}/")).send().await.expect("landing page");
    assert_eq!(page.status().as_u16(), 200);
    let resp = client
        .post(format!("{url}/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status().as_u16(), 200);
    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success());
}
