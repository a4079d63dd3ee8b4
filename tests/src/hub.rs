//! The cloud hub in tests: a fresh PostgreSQL database per test on the machine's real server
//! (127.0.0.1:5432), the real `stayos-hub` binary serving it, the real `stayos-edge enroll`,
//! and comparisons of what an edge's SQLite and the hub's read tables hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// PostgreSQL on this machine (DESIGN.md: trust auth on every machine of the project).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The `stayos-hub` binary of the current build profile.
pub fn hub_binary() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        let run = escargot::CargoBuild::new()
            .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .bin("stayos-hub")
            .current_release()
            .run()
            .map_err(|e| format!("failed to build stayos-hub: {e}"))?;
        Ok(run.path().to_path_buf())
    })
    .clone()
    .map_err(anyhow::Error::msg)
    .context("building the hub binary")
}

/// A connection to a database, its connection task running on the current runtime.
pub async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.with_context(|| {
            format!("connecting to {url}: is PostgreSQL running on 127.0.0.1:5432?")
        })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A database of its own for one test, dropped (forcibly) when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(prefix: &str) -> anyhow::Result<PgDatabase> {
        let name = format!("stayos_{prefix}_{}", uuid_like());
        let admin = pg_connect(PG_ADMIN_URL).await?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        Ok(PgDatabase { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), name })
    }

    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        pg_connect(&self.url).await
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and psql is on every machine here.
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The real `stayos-hub serve`, on a port of its own that survives restarts (enrolled edges
/// keep the hub's URL).
pub struct Hub {
    pub db: PgDatabase,
    pub port: u16,
    pub url: String,
    pub http: bool,
    child: Option<Child>,
    logs: tempfile::TempDir,
    starts: u32,
}

impl Hub {
    /// Migrates a fresh database and serves it over HTTPS (the hub's own certificate).
    pub async fn start() -> Hub {
        Hub::start_with(false).await
    }

    pub async fn start_with(http: bool) -> Hub {
        let db = PgDatabase::create("hub").await.expect("hub database");
        let port = free_port();
        let scheme = if http { "http" } else { "https" };
        let mut hub = Hub {
            db,
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
            http,
            child: None,
            logs: tempfile::tempdir().expect("tempdir"),
            starts: 0,
        };
        hub.run().await;
        hub
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(hub_binary().expect("stayos-hub binary"));
        for (key, _) in std::env::vars() {
            if key.starts_with("STAYOS_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        // The hub keeps its TLS private key in its state directory, never in the database.
        cmd.env("STAYOS_DATABASE_URL", &self.db.url)
            .env("STAYOS_HUB_STATE_DIR", self.logs.path().join("state"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Starts (again) the serving process and waits until it listens.
    pub async fn run(&mut self) {
        assert!(self.child.is_none(), "the hub is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.logs.path().join(format!("hub-{}.log", self.starts)))
            .expect("log file");
        let mut cmd = self.command();
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)]);
        if self.http {
            cmd.arg("--http");
        }
        cmd.stdout(Stdio::piped()).stderr(log);
        let mut child = cmd.spawn().expect("spawn stayos-hub serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the hub printed its address in time")
            .expect("read stdout");
        assert!(
            line.as_deref().is_some_and(|l| l.starts_with("listening on")),
            "unexpected first line {line:?}; log: {}",
            self.log_tail()
        );
        // Keep draining stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// The end of the newest log file, for failure messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.logs.path().join(format!("hub-{}.log", self.starts)))
                .unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// The serving process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// `kill -9`: no shutdown of any kind.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL the hub");
        }
    }

    /// SIGTERM, and waits for the process to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = i32::try_from(child.id().expect("running")).expect("pid");
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .expect("SIGTERM");
            let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .expect("the hub stops within 20 s of SIGTERM")
                .expect("wait");
            assert!(status.success(), "the hub exited with {status}");
        }
    }

    /// Runs another `stayos-hub` command on this hub's database.
    pub async fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().await.expect("run stayos-hub")
    }

    /// A fresh enrollment token for a property.
    pub async fn enroll_token(&self, property_id: &str) -> String {
        let out = self.cli(&["enroll-token", "--property-id", property_id]).await;
        assert!(out.status.success(), "enroll-token: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.db.client().await.expect("hub database")
    }
}

/// Runs the real `stayos-edge enroll` on a data directory (the node may be running).
pub async fn enroll(data_dir: &Path, hub_url: &str, token: &str) -> Output {
    let mut cmd = Command::new(crate::edge_binary().expect("stayos-edge binary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STAYOS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.args(["enroll", "--data-dir"])
        .arg(data_dir)
        .args(["--hub", hub_url, "--token", token])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run stayos-edge enroll")
}

/// Enrolls a node with a fresh token and checks it worked.
pub async fn enroll_ok(hub: &Hub, data_dir: &Path, property_id: &str) {
    let token = hub.enroll_token(property_id).await;
    let out = enroll(data_dir, &hub.url, &token).await;
    assert!(
        out.status.success(),
        "enroll failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A table's rows as JSON objects keyed by their JSON text, so two stores compare as sets.
pub type Rows = BTreeMap<String, Value>;

/// A row's JSON text with its keys in one order, whatever order the store gave them in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            serde_json::to_string(&sorted).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

fn sqlite_json(v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::from(i),
        V::Real(f) => Value::from(f),
        V::Text(s) => Value::from(s),
        V::Blob(b) => Value::from(format!("\\x{}", hex_lower(&b))),
    }
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The rows of `table` in an edge database (read-only, beside a running node), optionally
/// only those whose `column` equals `value`.
pub fn edge_rows(data_dir: &Path, table: &str, filter: Option<(&str, &str)>) -> Rows {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join(edge_node::db::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the edge database");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    let sql = match filter {
        Some((column, _)) => format!("SELECT * FROM \"{table}\" WHERE \"{column}\" = ?1"),
        None => format!("SELECT * FROM \"{table}\""),
    };
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let params: Vec<&str> = filter.map(|(_, v)| vec![v]).unwrap_or_default();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            let mut obj = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                obj.insert(name.clone(), sqlite_json(r.get(i)?));
            }
            Ok(Value::Object(obj))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    rows.into_iter().map(|v| (canonical(&v), v)).collect()
}

/// The rows of the hub's read table `replica.<table>`, optionally filtered like [`edge_rows`].
pub async fn hub_rows(
    client: &tokio_postgres::Client,
    table: &str,
    filter: Option<(&str, &str)>,
) -> Rows {
    let sql = match filter {
        Some((column, _)) => {
            format!("SELECT to_jsonb(t)::text FROM replica.\"{table}\" t WHERE \"{column}\" = $1")
        }
        None => format!("SELECT to_jsonb(t)::text FROM replica.\"{table}\" t"),
    };
    let rows = match filter {
        Some((_, v)) => client.query(&sql, &[&v]).await,
        None => client.query(&sql, &[]).await,
    }
    .unwrap_or_else(|e| panic!("reading replica.{table}: {e}"));
    rows.iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r.get::<_, &str>(0)).expect("json");
            (canonical(&v), v)
        })
        .collect()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `stayos-edge serve` (plain HTTP on loopback) on a data directory, on a port of its
/// own that survives restarts, so it can be killed and started again.
pub struct EdgeProcess {
    pub data_dir: PathBuf,
    pub port: u16,
    pub url: String,
    child: Option<Child>,
}

impl EdgeProcess {
    pub async fn start(data_dir: &Path) -> EdgeProcess {
        let port = free_port();
        let mut edge = EdgeProcess {
            data_dir: data_dir.to_path_buf(),
            port,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
        };
        edge.run().await;
        edge
    }

    /// Starts (again) and waits until `/health` answers.
    pub async fn run(&mut self) {
        assert!(self.child.is_none(), "the edge is already running");
        let mut cmd = Command::new(crate::edge_binary().expect("stayos-edge binary"));
        for (key, _) in std::env::vars() {
            if key.starts_with("STAYOS_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        // One loopback client stands for a whole front desk here: no per-address limit.
        cmd.env("STAYOS_RATE_LIMIT__PER_SECOND", "0");
        cmd.args(["serve", "--http", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        self.child = Some(cmd.spawn().expect("spawn stayos-edge serve"));
        let client = reqwest::Client::new();
        let health = format!("{}/health", self.url);
        eventually(Duration::from_secs(60), "the edge answers /health", || {
            let (client, health) = (client.clone(), health.clone());
            async move {
                let r = client.get(&health).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
    }

    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL the edge");
        }
    }

    /// The serving process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// An initialised data directory with a seeded inventory, not serving.
pub struct SeededDir {
    pub data_dir: PathBuf,
    pub property_id: String,
    pub inventory: crate::SeededInventory,
    pub business_date: jiff::civil::Date,
    _dir: tempfile::TempDir,
}

/// Initialises a node and seeds the small hotel with `doubles` double rooms.
pub async fn seeded_dir(doubles: usize) -> SeededDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    let report = crate::init_dir(&data_dir).expect("init");
    let db = edge_node::db::Db::open(&data_dir, 1).expect("open");
    let property = report.property_id.clone();
    let (inventory, business_date) = db
        .write(move |tx| {
            let date = edge_node::property::access::settings(tx, &property)?
                .expect("property")
                .business_date;
            let mut spec = crate::InventorySpec::small(date);
            spec.types[0].rooms = doubles;
            let inv =
                edge_node::demo::seed::inventory(tx, &property, &spec, edge_node::time::now_ms())
                    .map_err(edge_node::db::DbError::from)?;
            Ok::<_, edge_node::db::DbError>((inv, date))
        })
        .await
        .expect("seed");
    db.close();
    SeededDir { data_dir, property_id: report.property_id, inventory, business_date, _dir: dir }
}

/// Initialises a node and seeds a demo hotel of `spec` (rooms, guests, reservations in every
/// state) the way a hotel fills up: the inventory and profiles in one transaction, then the
/// reservations one arrival day per transaction, so its changes span many versions.
pub async fn demo_dir(spec: edge_node::demo::seed::HotelSpec) -> SeededDir {
    use edge_node::db::DbError;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    let report = crate::init_dir(&data_dir).expect("init");
    let db = edge_node::db::Db::open(&data_dir, 1).expect("open");
    let property = report.property_id.clone();
    let days_ahead = spec.days_ahead;
    let (mut booker, business_date) = db
        .write(move |tx| {
            let date = edge_node::property::access::settings(tx, &property)?
                .expect("property")
                .business_date;
            let now = edge_node::time::now_ms();
            let booker = edge_node::demo::seed::Booker::setup(tx, &property, date, now, &spec)?;
            Ok::<_, DbError>((booker, date))
        })
        .await
        .expect("seed the demo hotel's inventory");
    let end = business_date.checked_add(jiff::Span::new().days(days_ahead + 1)).expect("date");
    let mut from = booker.start;
    while from < end {
        let to = from.tomorrow().expect("date");
        booker = db
            .write(move |tx| {
                booker.book(tx, from, to)?;
                Ok::<_, DbError>(booker)
            })
            .await
            .expect("book a day");
        from = to;
    }
    let booker = db
        .write(move |tx| {
            let mut booker = booker;
            booker.finish(tx)?;
            Ok::<_, DbError>(booker)
        })
        .await
        .expect("finish the demo hotel");
    let inventory = booker.into_hotel().inventory;
    db.close();
    SeededDir { data_dir, property_id: report.property_id, inventory, business_date, _dir: dir }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The hub credential an enrolled node stores (for tools that act as that node).
pub fn node_credential(data_dir: &Path) -> String {
    let conn = rusqlite::Connection::open(data_dir.join(edge_node::db::DB_FILE)).expect("open");
    conn.query_row("SELECT value FROM node_meta WHERE key = 'hub_credential'", [], |r| r.get(0))
        .expect("the node is enrolled")
}

/// Every batch an enrolled node's agent would push from the start, of at most `rows` rows
/// each (its own writes, without the tables kept on the node).
pub fn outgoing_batches(data_dir: &Path, rows: usize) -> Vec<crdt::protocol::Batch> {
    let conn = rusqlite::Connection::open(data_dir.join(edge_node::db::DB_FILE)).expect("open");
    let site = crdt::site_id(&conn).expect("site id");
    let scopes = edge_node::sync::agent::scopes();
    // As the agent does: versions with nothing to send are stepped over, and the next batch
    // starts where the last one sent ended, so the hub's cursor sees no gap.
    let (mut out, mut since, mut sent) = (Vec::new(), 0, 0);
    loop {
        let mut batch = edge_node::sync::agent::outgoing_batch(&conn, &scopes, &site, since, rows)
            .expect("batch");
        if batch.until <= since {
            return out;
        }
        since = batch.until;
        if !batch.changes.is_empty() {
            batch.since = sent;
            sent = batch.until;
            out.push(batch);
        }
    }
}
