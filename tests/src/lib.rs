//! Test harness for StayOS: starts real edge nodes — in-process on `127.0.0.1:0` with a fresh
//! data directory, or as the real `stayos-edge` binary — and talks HTTP to them through typed
//! helpers. Used by the test binary in `tests/edge/` and by the `stayos-bench` benchmarks.

pub mod hub;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context as _;
use edge_node::config::Config;
pub use edge_node::demo::seed::{InventorySpec, SeededInventory, TypeSpec};
use edge_node::init::{InitOptions, InitReport};
use edge_node::server::RunningServer;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const OWNER_EMAIL: &str = "owner@grand-test.example";
pub const OWNER_PASSWORD: &str = "plum-ferry-quantum-atlas";
pub const STAFF_PASSWORD: &str = "velvet-orbit-canyon-reed";

/// A response, decoded: status, headers and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.details.field` of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["details"]["field"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn str(&self, key: &str) -> String {
        self.body[key].as_str().unwrap_or_default().to_string()
    }
}

/// A configuration for tests: loopback, an ephemeral port, rate limiting high enough not to
/// interfere unless a test turns it down.
pub fn test_config() -> Config {
    let mut config = Config { listen: "127.0.0.1:0".parse().expect("addr"), ..Config::default() };
    config.rate_limit.per_second = 100_000;
    config.rate_limit.burst = 100_000;
    config
}

/// Initialises `dir` as a node with the test owner.
pub fn init_dir(dir: &Path) -> anyhow::Result<InitReport> {
    Ok(edge_node::init::init(&InitOptions {
        data_dir: dir.to_path_buf(),
        property_name: "Grand Test Hotel".into(),
        admin_email: OWNER_EMAIL.into(),
        admin_name: Some("Olga Owner".into()),
        admin_password: OWNER_PASSWORD.into(),
        tls_names: Vec::new(),
    })?)
}

/// An edge node running in this process.
pub struct TestNode {
    pub url: String,
    pub client: reqwest::Client,
    pub property_id: String,
    pub data_dir: PathBuf,
    server: Option<RunningServer>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub async fn spawn() -> TestNode {
        TestNode::spawn_with(|_| {}).await
    }

    /// Starts a node after letting `configure` change the test configuration.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("node");
        let report = init_dir(&data_dir).expect("init");
        let mut config = test_config();
        configure(&mut config);
        let server = edge_node::server::start(&data_dir, config, false).await.expect("start");
        TestNode {
            url: server.url(),
            client: reqwest::Client::builder().build().expect("client"),
            property_id: report.property_id,
            data_dir,
            server: Some(server),
            _dir: dir,
        }
    }

    /// Stops the server gracefully and closes its database.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops the server gracefully, runs `offline` on the stopped node's data directory (to
    /// change its files as someone with access to the disk would), and starts it again on the
    /// same directory.
    pub async fn restart(&mut self, offline: impl FnOnce(&Path)) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        offline(&self.data_dir);
        let server =
            edge_node::server::start(&self.data_dir, test_config(), false).await.expect("restart");
        self.url = server.url();
        self.server = Some(server);
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.request_with(method, path, token, body, &[]).await
    }

    /// [`Self::request`] with extra request headers (`If-Match`, `If-None-Match`, …).
    pub async fn request_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        into_resp(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::DELETE, path, token, None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post("/auth/login", None, json!({ "email": email, "password": password })).await
    }

    /// Logs in and returns (access token, refresh token); panics unless it succeeds.
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let resp = self.login(email, password).await;
        assert_eq!(resp.status, 200, "login of {email} failed: {}", resp.text);
        (resp.str("access_token"), resp.str("refresh_token"))
    }

    pub async fn owner_token(&self) -> String {
        self.tokens(OWNER_EMAIL, OWNER_PASSWORD).await.0
    }

    /// The running node's database handle.
    pub fn db(&self) -> &edge_node::db::Db {
        self.server.as_ref().expect("running").db()
    }

    /// Seeds room types, rooms, cancellation policies, rate plans (FLEX, NREF) and prices at
    /// the test property, through the node's write path.
    pub async fn seed_inventory(&self, spec: InventorySpec) -> SeededInventory {
        let property = self.property_id.clone();
        self.db()
            .write(move |tx| {
                edge_node::demo::seed::inventory(tx, &property, &spec, edge_node::time::now_ms())
                    .map_err(edge_node::db::DbError::from)
            })
            .await
            .expect("seed inventory")
    }

    /// `seed_inventory(InventorySpec::small(business date))`: 2 doubles (101, 102) and a
    /// suite (201), FLEX at 100.00/250.00 a night and NREF at 85 % of that, 10 % VAT
    /// included, 2.50 city tax per adult-night, priced for 400 nights.
    pub async fn seed_small_hotel(&self) -> SeededInventory {
        let today = self.business_date().await;
        self.seed_inventory(InventorySpec::small(today)).await
    }

    /// The test property's business date.
    pub async fn business_date(&self) -> jiff::civil::Date {
        let property = self.property_id.clone();
        self.db()
            .read(move |conn| {
                Ok::<_, edge_node::db::DbError>(
                    edge_node::property::access::settings(conn, &property)?
                        .expect("property")
                        .business_date,
                )
            })
            .await
            .expect("business date")
    }

    /// Creates a staff account with `STAFF_PASSWORD` as `token`'s holder; panics on failure.
    pub async fn register(&self, token: &str, email: &str, role: &str) -> Value {
        let resp = self
            .post(
                "/auth/register",
                Some(token),
                json!({ "email": email, "name": "Test Person", "password": STAFF_PASSWORD, "role": role }),
            )
            .await;
        assert_eq!(resp.status, 201, "register {email} as {role}: {}", resp.text);
        resp.body
    }
}

pub async fn into_resp(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, body, text }
}

/// The current TOTP code for a base32 secret, `offset_secs` from now.
pub fn totp_code(secret_base32: &str, offset_secs: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).build().expect("totp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    totp.generate(u64::try_from(now + offset_secs).expect("time")).to_string()
}

/// Path of the `stayos-edge` binary, built on first use.
pub fn edge_binary() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        // Built as part of the whole workspace, so dependency features match the test build's
        // and nothing is compiled twice.
        let run = escargot::CargoBuild::new()
            .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .bin("stayos-edge")
            .current_release()
            .run()
            .map_err(|e| format!("failed to build stayos-edge: {e}"))?;
        Ok(run.path().to_path_buf())
    })
    .clone()
    .map_err(anyhow::Error::msg)
    .context("building the edge binary")
}

/// The directory of the cr-sqlite reference peer, its npm package installed (on first use,
/// if `tests/run.sh` has not).
fn crsqlite_dir() -> anyhow::Result<PathBuf> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crsqlite");
    INSTALLED
        .get_or_init(|| {
            if dir.join("node_modules/@vlcn.io/crsqlite-wasm").exists() {
                return Ok(());
            }
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .map_err(|e| format!("npm is needed for the cr-sqlite reference peer: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("npm ci in {} failed", dir.display()))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(dir)
}

/// Starts a reference peer process: `tests/crsqlite/peer.mjs` under Node, stdin and stdout
/// piped, stderr shown.
fn spawn_crsqlite() -> anyhow::Result<std::process::Child> {
    let dir = crsqlite_dir()?;
    std::process::Command::new("node")
        .arg(dir.join("peer.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("node is needed for the cr-sqlite reference peer")
}

/// One answer line of the reference peer: a statement's rows, or its error message.
fn crsqlite_answer(line: &str) -> anyhow::Result<Result<Vec<Vec<Value>>, String>> {
    let v: Value = serde_json::from_str(line)
        .with_context(|| format!("the reference peer answered {line:?}"))?;
    Ok(match v.get("ok") {
        Some(rows) => Ok(serde_json::from_value(rows.clone())?),
        None => Err(v["error"].as_str().unwrap_or("unknown error").to_string()),
    })
}

/// Runs SQL statements (one per line, no newlines inside) in the real cr-sqlite 0.16, as
/// WebAssembly under Node (`tests/crsqlite/peer.mjs`), and returns each statement's rows, or
/// its error message. Installs the npm package on first use if `tests/run.sh` has not.
pub fn crsqlite(statements: &[String]) -> anyhow::Result<Vec<Result<Vec<Vec<Value>>, String>>> {
    use std::io::Write as _;
    let mut child = spawn_crsqlite()?;
    let mut input = statements.join("\n");
    input.push('\n');
    // Written from a thread of its own while this one reads the answers: the peer answers as
    // it reads, and once both pipes are full a writer that waits to read would wait forever.
    let mut stdin = child.stdin.take().context("stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("the writer to the reference peer panicked"))??;
    anyhow::ensure!(
        out.status.success(),
        "the reference peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?.lines().map(crsqlite_answer).collect()
}

/// A long-lived cr-sqlite 0.16 database (the reference peer, one Node process): statements
/// run one at a time, each answered before the next is sent, so a test can interleave it
/// with other databases over many rounds. Its site id is random and fixed for its life; the
/// in-memory database goes away when this is dropped. Several peers are several values.
pub struct CrSqlite {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl CrSqlite {
    /// Starts a fresh, empty database.
    pub fn spawn() -> anyhow::Result<CrSqlite> {
        let mut child = spawn_crsqlite()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
        Ok(CrSqlite { child, stdin, stdout })
    }

    /// Runs one SQL text (it may hold several statements separated by `;`, but no newline)
    /// and returns the rows it produced, each an array of column values, or SQLite's error
    /// message. Panics if the peer process itself fails: that is a broken harness, not an
    /// answer.
    pub fn exec(&mut self, sql: &str) -> Result<Vec<Vec<Value>>, String> {
        use std::io::{BufRead as _, Write as _};
        assert!(!sql.contains(['\n', '\r']), "one line per statement: {sql:?}");
        assert!(!sql.trim().is_empty(), "an empty statement gets no answer");
        let sent = writeln!(self.stdin, "{sql}").and_then(|()| self.stdin.flush());
        let mut line = String::new();
        let read = sent.and_then(|()| self.stdout.read_line(&mut line));
        match read {
            Ok(n) if n > 0 => crsqlite_answer(&line).unwrap_or_else(|e| panic!("{e:#}")),
            outcome => {
                let status = self.child.try_wait();
                panic!(
                    "the reference peer stopped answering ({outcome:?}, exit {status:?}) at {sql}"
                )
            }
        }
    }

    /// Like [`CrSqlite::exec`], panicking with the statement and the message on an error.
    pub fn run(&mut self, sql: &str) -> Vec<Vec<Value>> {
        self.exec(sql).unwrap_or_else(|e| panic!("cr-sqlite refused {sql}: {e}"))
    }
}

impl Drop for CrSqlite {
    fn drop(&mut self) {
        // Closing its input ends the peer; killing it covers a peer stuck in a statement.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
