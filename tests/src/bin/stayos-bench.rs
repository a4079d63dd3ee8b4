//! `stayos-bench`: the benchmarks behind BENCHMARKS.md, as a command anyone can run.
//!
//! `cargo run --release -p tests --bin stayos-bench -- foundation` builds the release
//! `stayos-edge`, initialises a data directory, and measures: cold start of `serve` to a 200
//! from `/health` (HTTPS, the default), resident memory of an idle node, login latency with
//! argon2id (known account, wrong password, unknown e-mail), what throttling does to a
//! 1,000-attempt brute force, and authenticated `GET /auth/me` throughput with `wrk`.
//!
//! `cargo run --release -p tests --bin stayos-bench -- crdt` measures the `crdt` crate against
//! its bars (write overhead of replicated tables, merge rate, rate of reading changes out) and
//! runs the same workload in the real cr-sqlite 0.16 as WebAssembly under Node
//! (`tests/crsqlite/bench.mjs`). Options: `--rows N`, `--updates N`, `--reps N` (ours),
//! `--wasm-reps N`, `--no-wasm`, `--only file|memory`, `--pragma name=value` (for the file
//! databases; repeatable), `--merge-batch N`, `--floors` (instead: what inserts cost with
//! triggers doing parts of what capture does).
//!
//! `cargo run --release -p tests --bin stayos-bench -- hotel` seeds a 300-room hotel and
//! measures the hotel core over HTTP against the release `stayos-edge serve`: availability
//! (30 and 365 nights), reservation creation by 32 concurrent clients (then checks for double
//! bookings), guest search among 100,000 profiles, and, with a million reservations, the same
//! availability, the arrivals list and the server's resident memory. Options: `--rooms N`,
//! `--guests N`, `--reservations N` (the large part; 0 skips it), `--seconds N`,
//! `--clients N`.
//!
//! `cargo run --release -p tests --bin stayos-bench -- sync [ingest|backlog|fleet|all]`
//! measures the cloud hub and the sync agents against PostgreSQL (see `../bench/sync.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use edge_node::auth::throttle;
use serde_json::json;

#[path = "../bench/sync.rs"]
mod sync_bench;

const PASSWORD: &str = "plum-ferry-quantum-atlas";
const EMAIL: &str = "owner@bench.example";

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "foundation".into());
    match which.as_str() {
        "foundation" => foundation(),
        "crdt" => crdt_bench::run(std::env::args().skip(2).collect()),
        "hotel" => hotel_bench::run(std::env::args().skip(2).collect()),
        "sync" => sync_bench::run(std::env::args().skip(2).collect()),
        other => bail!("unknown benchmark {other:?}; known: foundation, crdt, hotel, sync"),
    }
}

fn release_binary() -> anyhow::Result<PathBuf> {
    let run = escargot::CargoBuild::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .bin("stayos-edge")
        .release()
        .current_target()
        .run()
        .context("failed to build stayos-edge --release")?;
    Ok(run.path().to_path_buf())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(
        bin: &Path,
        dir: &Path,
        http: bool,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Node, Instant)> {
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--data-dir"]).arg(dir).args(["--listen", &format!("127.0.0.1:{port}")]);
        if http {
            cmd.arg("--http");
        }
        cmd.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::null());
        let started = Instant::now();
        let child = cmd.spawn().context("spawn serve")?;
        Ok((Node { child, port }, started))
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        self.child.wait()?;
        Ok(())
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
        Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        ms.last().copied().unwrap_or_default()
    );
}

fn foundation() -> anyhow::Result<()> {
    let bin = release_binary()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("node");
    let init = Command::new(&bin)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--property-name", "Bench Hotel", "--admin-email", EMAIL])
        .env("STAYOS_ADMIN_PASSWORD", PASSWORD)
        .output()?;
    if !init.status.success() {
        bail!("init failed: {}", String::from_utf8_lossy(&init.stderr));
    }
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("tls/ca.pem"))?)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;

    println!("## stayos-bench foundation\n");
    println!("binary: {}\n", bin.display());

    // Cold start: spawn to the first 200 from /health over HTTPS, a new connection per try.
    let mut cold = Vec::new();
    for _ in 0..20 {
        let (node, started) = Node::start(&bin, &dir, false, &[])?;
        let client = fresh_conn_client(ca.clone())?;
        let url = format!("https://localhost:{}/health", node.port);
        let elapsed = runtime.block_on(async {
            loop {
                if let Ok(resp) = client.get(&url).send().await
                    && resp.status().is_success()
                {
                    return Ok::<_, anyhow::Error>(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(10) {
                    bail!("serve did not answer /health within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })?;
        cold.push(elapsed.as_secs_f64() * 1000.0);
        node.stop()?;
    }
    println!("| measurement | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|");
    summary("cold start of `serve` to 200 from /health (HTTPS)", cold);

    // Logins and idle memory, on one running node (HTTP on loopback; TLS is measured above).
    let (node, _) = Node::start(&bin, &dir, true, &[("STAYOS_RATE_LIMIT__PER_SECOND", "0")])?;
    let base = format!("http://127.0.0.1:{}", node.port);
    let client = reqwest::Client::new();
    let token = runtime.block_on(async {
        wait_healthy(&client, &base).await?;
        let mut ok = Vec::new();
        let mut token = String::new();
        for _ in 0..20 {
            let t = Instant::now();
            let resp = client.post(format!("{base}/auth/login")).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await?;
            ok.push(t.elapsed().as_secs_f64() * 1000.0);
            let body: serde_json::Value = resp.json().await?;
            token = body["access_token"].as_str().context("no token")?.to_string();
        }
        // Below the throttle's free attempts, so every one is a full password check.
        let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
        for i in 0..4 {
            let t = Instant::now();
            client.post(format!("{base}/auth/login")).json(&json!({"email": EMAIL, "password": "wrong-password-guess"})).send().await?;
            wrong.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            client.post(format!("{base}/auth/login")).json(&json!({"email": format!("nobody{i}@bench.example"), "password": "wrong-password-guess"})).send().await?;
            unknown.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        summary("login, right password (argon2id m=19456 KiB, t=2, p=1)", ok);
        summary("login, wrong password", wrong);
        summary("login, unknown e-mail (dummy hash)", unknown);
        Ok::<_, anyhow::Error>(token)
    })?;
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "\nidle resident memory after start-up and 28 logins: {:.1} MiB",
        node.rss_kib()? as f64 / 1024.0
    );

    // Brute force against one account, from the throttle policy itself.
    let mut total_ms: i64 = 0;
    for failures in 1..1000u32 {
        total_ms += throttle::lock_ms(throttle::ACCOUNT, failures);
    }
    println!(
        "1,000 password guesses against one account must wait out the locks: {:.1} hours ({:.1} days)",
        total_ms as f64 / 3_600_000.0,
        total_ms as f64 / 86_400_000.0
    );

    // Throughput of an authenticated request, over plain HTTP and over HTTPS.
    if Command::new("wrk").arg("--version").output().is_err() {
        println!(
            "\nwrk is not installed (apt-get install wrk); skipped the /auth/me throughput run"
        );
        return node.stop();
    }
    wrk("HTTP", &format!("http://127.0.0.1:{}/auth/me", node.port), &token)?;
    node.stop()?;
    let (tls_node, _) = Node::start(&bin, &dir, false, &[("STAYOS_RATE_LIMIT__PER_SECOND", "0")])?;
    runtime.block_on(wait_healthy(
        &fresh_conn_client(ca)?,
        &format!("https://localhost:{}", tls_node.port),
    ))?;
    wrk("HTTPS", &format!("https://127.0.0.1:{}/auth/me", tls_node.port), &token)?;
    tls_node.stop()
}

fn wrk(label: &str, url: &str, token: &str) -> anyhow::Result<()> {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()?;
    println!(
        "\n`wrk -t2 -c32 -d10s --latency` GET /auth/me over {label}:\n```\n{}```",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// A client that trusts only `ca` and opens a new connection for every request.
fn fresh_conn_client(ca: reqwest::Certificate) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().tls_certs_only([ca]).pool_max_idle_per_host(0).build()?)
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(resp) = client.get(format!("{base}/health")).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("node at {base} did not become healthy")
}

/// `stayos-bench crdt`: the `crdt` crate against its bars, and the real cr-sqlite 0.16
/// (WebAssembly, `tests/crsqlite/bench.mjs`) on the same workload.
///
/// The workload: a table of 8 columns (`id TEXT PRIMARY KEY NOT NULL` holding UUID-shaped
/// text, then integers, text and reals), 100,000 rows whose values both sides compute with the
/// same formulas (`row`).
///
/// - Inserts, in transactions of 1,000 rows, into a plain table and into a replicated one:
///   row by row (a prepared `INSERT ... VALUES`, as the edge node's write path does), and, in
///   memory, staged (`INSERT ... SELECT` from an attached staging database, one statement per
///   transaction), which is how the cr-sqlite side runs, so that JavaScript's per-call cost is
///   not counted.
/// - 10,000 single-row update transactions (two columns each) on the plain and on the
///   replicated table.
/// - Reading every change out (`for_each_change_since(0)`; in cr-sqlite, a query over every
///   column of `crsql_changes`), and collecting them (`changes_since(0)`).
/// - Merging all of replica A's changes into an empty replica B, 10,000 changes per
///   transaction; then three columns of every row of A change in one transaction, and those
///   changes are merged into B, which has the rows already. B must end with A's rows.
///
/// Ours runs on a file database (WAL, `synchronous=NORMAL`, as the edge node opens its own)
/// and in memory; cr-sqlite's WebAssembly build has no file system in Node, so it runs in
/// memory only. Each measurement is the median of the repetitions.
mod crdt_bench {
    use std::collections::BTreeMap;
    use std::hint::black_box;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Instant;

    use anyhow::{Context as _, bail, ensure};
    use crdt::{Change, Replica};
    use rusqlite::{Connection, params};

    const DDL: &str = "CREATE TABLE bookings (
        id TEXT PRIMARY KEY NOT NULL, room INTEGER, guest TEXT, rate REAL, nights INTEGER,
        status TEXT, balance REAL, updated_at INTEGER)";
    const COLUMNS: &str = "id, room, guest, rate, nights, status, balance, updated_at";
    const STATUSES: [&str; 4] = ["booked", "checked_in", "checked_out", "cancelled"];
    const INSERT_BATCH: u32 = 1_000;
    /// The rows of a replica, in a form cr-sqlite's side prints the same way.
    const FINGERPRINT: &str = "SELECT printf('%d rows, room %d, nights %d, updated_at %d, \
        rate %.2f, balance %.2f, guest %d, status %d/%d, ids %s..%s', count(*), sum(room), \
        sum(nights), sum(updated_at), total(rate), total(balance), sum(length(guest)), \
        sum(length(status)), sum(unicode(status)), min(id), max(id)) FROM bookings";

    struct Options {
        rows: u32,
        updates: u32,
        reps: usize,
        wasm_reps: usize,
        stores: Vec<Store>,
        /// Extra `PRAGMA`s (`name=value`) for every file database, to try other settings.
        pragmas: Vec<(String, String)>,
        /// Measure what inserts cost with capture-like triggers instead (`floors`).
        floors: bool,
        /// Changes per merge transaction.
        merge_batch: usize,
    }

    fn options(args: Vec<String>) -> anyhow::Result<Options> {
        let mut o = Options {
            rows: 100_000,
            updates: 10_000,
            reps: 3,
            wasm_reps: 1,
            stores: vec![Store::File, Store::Memory],
            pragmas: Vec::new(),
            floors: false,
            merge_batch: 10_000,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--rows" => o.rows = value()?.parse()?,
                "--updates" => o.updates = value()?.parse()?,
                "--reps" => o.reps = value()?.parse()?,
                "--wasm-reps" => o.wasm_reps = value()?.parse()?,
                "--no-wasm" => o.wasm_reps = 0,
                "--floors" => o.floors = true,
                "--merge-batch" => o.merge_batch = value()?.parse()?,
                "--pragma" => {
                    let v = value()?;
                    let (name, value) = v.split_once('=').context("--pragma name=value")?;
                    o.pragmas.push((name.into(), value.into()));
                }
                "--only" => {
                    o.stores = match value()?.as_str() {
                        "file" => vec![Store::File],
                        "memory" => vec![Store::Memory],
                        other => bail!("--only file|memory, not {other:?}"),
                    }
                }
                other => bail!("unknown option {other:?}"),
            }
        }
        ensure!(o.updates <= o.rows, "--updates cannot exceed --rows");
        Ok(o)
    }

    /// murmur3's 32-bit finaliser: a bijection, so distinct inputs give distinct outputs.
    fn hash(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x85eb_ca6b);
        x ^= x >> 13;
        x = x.wrapping_mul(0xc2b2_ae35);
        x ^ (x >> 16)
    }

    struct Row {
        id: String,
        room: i64,
        guest: String,
        rate: f64,
        nights: i64,
        status: &'static str,
        balance: f64,
        updated_at: i64,
    }

    /// Row `i` of the workload; `row()` in bench.mjs is the same. No real is a whole number,
    /// so JavaScript binds them as reals.
    fn row(i: u32) -> Row {
        let [a, b, c, d] = [0, 1, 2, 3].map(|k| hash(4 * i + k));
        let n = i64::from(i);
        Row {
            id: format!(
                "{a:08x}-{:04x}-{:04x}-{:04x}-{:04x}{d:08x}",
                b >> 16,
                b & 0xffff,
                c >> 16,
                c & 0xffff
            ),
            room: 100 + n % 400,
            guest: format!("guest-{}", b % 100_000),
            rate: 80.25 + (n % 200) as f64 * 0.5,
            nights: 1 + n % 14,
            status: STATUSES[(i % 4) as usize],
            balance: (n % 1000) as f64 * 1.5 + 0.25,
            updated_at: 1_700_000_000 + n,
        }
    }

    /// The row the k-th single-row update transaction changes: 7919 is prime, so no row is
    /// updated twice (for row counts it does not divide).
    fn update_row(k: u32, rows: u32) -> u32 {
        u32::try_from(u64::from(k) * 7919 % u64::from(rows)).expect("below rows")
    }

    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
    enum Store {
        File,
        Memory,
    }

    /// Where a measurement was taken: a column of the table printed at the end.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
    enum Side {
        Ours(Store),
        /// The cr-sqlite build the npm package ships (as peer.mjs loads it).
        Wasm,
        /// The synchronous build of the same cr-sqlite, without Asyncify.
        WasmSync,
    }

    #[derive(Default)]
    struct Results {
        /// (side, step) → seconds of each repetition, and the number of rows or changes.
        secs: BTreeMap<(Side, String), Vec<f64>>,
        count: BTreeMap<(Side, String), u64>,
        fingerprints: Vec<(String, String)>,
    }

    impl Results {
        fn add(&mut self, side: Side, step: &str, secs: f64, count: u64) {
            self.secs.entry((side, step.to_string())).or_default().push(secs);
            self.count.insert((side, step.to_string()), count);
        }

        fn median(&self, side: Side, step: &str) -> Option<f64> {
            let mut v = self.secs.get(&(side, step.to_string()))?.clone();
            v.sort_by(f64::total_cmp);
            let mid = v.len() / 2;
            Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
        }

        /// Seconds per row or change.
        fn per_item(&self, side: Side, step: &str) -> Option<f64> {
            let count = *self.count.get(&(side, step.to_string()))?;
            Some(self.median(side, step)? / count as f64)
        }
    }

    fn timed<T>(
        results: &mut Results,
        side: Side,
        step: &str,
        count: u64,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let out = f()?;
        results.add(side, step, started.elapsed().as_secs_f64(), count);
        Ok(out)
    }

    fn open(
        o: &Options,
        store: Store,
        dir: &Path,
        name: &str,
        stage: &Path,
    ) -> anyhow::Result<Connection> {
        let conn = match store {
            Store::File => {
                let conn = Connection::open(dir.join(format!("{name}.db")))?;
                // As the edge node opens its writer (edge-node/src/db/mod.rs).
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn.pragma_update(None, "temp_store", "MEMORY")?;
                for (name, value) in &o.pragmas {
                    conn.pragma_update(None, name, value)?;
                }
                conn
            }
            Store::Memory => Connection::open_in_memory()?,
        };
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute("ATTACH ?1 AS s", [stage.to_str().context("stage path")?])?;
        Ok(conn)
    }

    /// Creates the table; replicated if `replicated`.
    fn setup(conn: &Connection, replicated: bool) -> anyhow::Result<Option<Replica>> {
        if !replicated {
            conn.execute_batch(DDL)?;
            return Ok(None);
        }
        let replica = Replica::install(conn)?;
        conn.execute_batch(DDL)?;
        replica.make_replicated(conn, "bookings")?;
        Ok(Some(replica))
    }

    /// One write transaction, flushed before `COMMIT` as the write path does.
    fn tx(
        conn: &Connection,
        replica: Option<&Replica>,
        f: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        f()?;
        if let Some(replica) = replica {
            replica.flush(conn)?;
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    fn insert_rows(conn: &Connection, replica: Option<&Replica>, rows: u32) -> anyhow::Result<()> {
        for start in (0..rows).step_by(INSERT_BATCH as usize) {
            tx(conn, replica, || {
                let mut stmt = conn.prepare_cached(&format!(
                    "INSERT INTO bookings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))?;
                for i in start..rows.min(start + INSERT_BATCH) {
                    execute_row(&mut stmt, &row(i))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn insert_staged(
        conn: &Connection,
        replica: Option<&Replica>,
        rows: u32,
    ) -> anyhow::Result<()> {
        for start in (0..rows).step_by(INSERT_BATCH as usize) {
            tx(conn, replica, || {
                conn.prepare_cached(&format!(
                    "INSERT INTO bookings ({COLUMNS}) SELECT {COLUMNS} FROM s.src \
                     WHERE rowid > ?1 AND rowid <= ?2"
                ))?
                .execute([start, rows.min(start + INSERT_BATCH)])?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn update_txs(
        conn: &Connection,
        replica: Option<&Replica>,
        rows: u32,
        updates: u32,
    ) -> anyhow::Result<()> {
        for k in 0..updates {
            let i = update_row(k, rows);
            let r = row(i);
            tx(conn, replica, || {
                let changed = conn
                    .prepare_cached("UPDATE bookings SET status = ?1, balance = ?2 WHERE id = ?3")?
                    .execute(params![STATUSES[((i + 1) % 4) as usize], r.balance + 1000.0, r.id])?;
                ensure!(changed == 1, "update {k} changed {changed} rows");
                Ok(())
            })?;
        }
        Ok(())
    }

    fn merge(
        conn: &Connection,
        replica: &Replica,
        changes: &[Change],
        batch: usize,
    ) -> anyhow::Result<()> {
        for batch in changes.chunks(batch) {
            conn.prepare_cached("BEGIN")?.execute([])?;
            let report = replica.merge_changes(conn, batch, |_| None)?;
            ensure!(report.applied == batch.len(), "merge applied only {report:?}");
            conn.prepare_cached("COMMIT")?.execute([])?;
        }
        Ok(())
    }

    fn fingerprint(conn: &Connection) -> anyhow::Result<String> {
        Ok(conn.query_row(FINGERPRINT, [], |r| r.get(0))?)
    }

    /// One repetition of our side in `store`.
    fn ours(o: &Options, store: Store, stage: &Path, results: &mut Results) -> anyhow::Result<()> {
        let side = Side::Ours(store);
        let dir = tempfile::tempdir()?;
        let (rows, n) = (o.rows, u64::from(o.rows));
        let db = |name: &str| open(o, store, dir.path(), name, stage);

        let plain = db("plain")?;
        setup(&plain, false)?;
        let a = db("a")?;
        let ra = setup(&a, true)?.context("replica")?;
        timed(results, side, "insert_plain_rows", n, || insert_rows(&plain, None, rows))?;
        timed(results, side, "insert_crr_rows", n, || insert_rows(&a, Some(&ra), rows))?;
        // Staged inserts are for the comparison with cr-sqlite, which runs in memory only.
        if store == Store::Memory {
            let plain = db("plain_staged")?;
            setup(&plain, false)?;
            let crr = db("crr_staged")?;
            let replica = setup(&crr, true)?;
            timed(results, side, "insert_plain", n, || insert_staged(&plain, None, rows))?;
            timed(results, side, "insert_crr", n, || insert_staged(&crr, replica.as_ref(), rows))?;
        }
        let u = u64::from(o.updates);
        timed(results, side, "update_plain", u, || update_txs(&plain, None, rows, o.updates))?;
        timed(results, side, "update_crr", u, || update_txs(&a, Some(&ra), rows, o.updates))?;
        drop(plain);

        // Every row has 7 non-key columns: 7 changes per row.
        let total = n * 7;
        let all = timed(results, side, "collect_changes", total, || {
            Ok(crdt::changes_since(&a, 0, None)?)
        })?;
        ensure!(all.len() as u64 == total, "{} changes for {n} rows of 7 columns", all.len());
        timed(results, side, "read_changes", total, || {
            let mut seen = 0u64;
            crdt::for_each_change_since(&a, 0, None, |c| {
                black_box(&c);
                seen += 1;
                Ok(())
            })?;
            ensure!(seen == total, "read {seen} of {total} changes");
            Ok(())
        })?;
        let v1 = all.iter().map(|c| c.db_version).max().unwrap_or(0);
        // Three columns of every row change, in one transaction.
        tx(&a, Some(&ra), || {
            a.execute_batch(
                "UPDATE bookings SET guest = guest || ' (vip)', balance = balance + 1, \
                 updated_at = updated_at + 1",
            )?;
            Ok(())
        })?;
        let updates = crdt::changes_since(&a, v1, None)?;
        ensure!(updates.len() as u64 == n * 3, "{} update changes", updates.len());

        let b = db("b")?;
        let rb = setup(&b, true)?.context("replica")?;
        timed(results, side, "merge_new_rows", total, || merge(&b, &rb, &all, o.merge_batch))?;
        let count = updates.len() as u64;
        timed(results, side, "merge_updates", count, || merge(&b, &rb, &updates, o.merge_batch))?;
        let (source, merged) = (fingerprint(&a)?, fingerprint(&b)?);
        ensure!(source == merged, "B does not have A's rows:\n A {source}\n B {merged}");
        results.fingerprints.push((format!("{side:?}"), source));
        Ok(())
    }

    /// Runs an 8-parameter insert of `r` in column order.
    fn execute_row(stmt: &mut rusqlite::Statement<'_>, r: &Row) -> rusqlite::Result<usize> {
        stmt.execute(params![
            r.id,
            r.room,
            r.guest,
            r.rate,
            r.nights,
            r.status,
            r.balance,
            r.updated_at
        ])
    }

    /// The rows to insert, in a database every benchmark database attaches as `s`.
    fn stage(dir: &Path, rows: u32) -> anyhow::Result<PathBuf> {
        let path = dir.join("stage.db");
        let conn = Connection::open(&path)?;
        conn.execute_batch(&format!("CREATE TABLE src ({COLUMNS}); BEGIN"))?;
        {
            let mut stmt =
                conn.prepare(&format!("INSERT INTO src VALUES ({})", ["?"; 8].join(", ")))?;
            for i in 0..rows {
                execute_row(&mut stmt, &row(i))?;
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(path)
    }

    /// Runs tests/crsqlite/bench.mjs with `build` and records its measurements.
    fn wasm(o: &Options, side: Side, build: &str, results: &mut Results) -> anyhow::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crsqlite");
        if !dir.join("node_modules/@vlcn.io/crsqlite-wasm").exists() {
            // Installs the npm package, as the interoperability tests do.
            tests::crsqlite(&["SELECT 1".to_string()])?;
        }
        let out = Command::new("node")
            .arg(dir.join("bench.mjs"))
            .args(["--build", build, "--rows", &o.rows.to_string()])
            .args(["--updates", &o.updates.to_string(), "--reps", &o.wasm_reps.to_string()])
            .args(["--merge-batch", &o.merge_batch.to_string()])
            .output()
            .context("node is needed for the cr-sqlite side")?;
        ensure!(
            out.status.success(),
            "bench.mjs --build {build} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            if let Some(f) = v.get("fingerprint") {
                let (source, merged) = (&f["source"], &f["merged"]);
                ensure!(source == merged, "cr-sqlite's B does not have A's rows: {f}");
                results
                    .fingerprints
                    .push((format!("{side:?}"), source.as_str().unwrap_or_default().into()));
                continue;
            }
            let step = v["step"].as_str().context("step")?;
            let secs = v["secs"].as_f64().context("secs")?;
            let count = v["count"].as_u64().context("count")?;
            results.add(side, step, secs, count);
        }
        Ok(())
    }

    /// The row-by-row inserts of the workload into a plain table with triggers that do part of
    /// what capture does, to show what each part costs by itself: a trigger that writes
    /// nothing; a trigger that writes a 50-byte blob per row into a side table keyed by the
    /// primary key (as the clock is); the same keyed by the row's rowid; and the replicated
    /// table itself. Medians of `--reps`, each against a fresh database.
    const FLOORS: [(&str, &str); 4] = [
        ("plain + trigger that writes nothing", "SELECT 1;"),
        (
            "plain + trigger writing 50 bytes to a side table keyed by the primary key",
            "INSERT INTO side VALUES (NEW.id, zeroblob(50));",
        ),
        (
            "plain + trigger writing 50 bytes to a side table keyed by rowid",
            "INSERT INTO side_by_rowid VALUES (NEW.rowid, zeroblob(50));",
        ),
        ("replicated (crdt)", ""),
    ];

    fn floors(o: &Options, stage: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        let load_before = loadavg();
        println!("## stayos-bench crdt --floors\n");
        println!(
            "{} rows inserted row by row in transactions of {INSERT_BATCH}; medians of {} \
             repetition(s).\n",
            o.rows, o.reps
        );
        print!("| insert into |");
        for store in &o.stores {
            print!(" {store:?}: s | ÷ plain |");
        }
        println!("\n|---|{}", "---|---|".repeat(o.stores.len()));
        let mut medians: BTreeMap<(usize, Store), f64> = BTreeMap::new();
        let mut clock_bytes = None;
        for &store in &o.stores {
            let mut secs: Vec<Vec<f64>> = vec![Vec::new(); FLOORS.len() + 1];
            for _ in 0..o.reps {
                for (i, secs) in secs.iter_mut().enumerate() {
                    let dir = tempfile::tempdir()?;
                    let conn = open(o, store, dir.path(), "floor", stage)?;
                    let replica = setup(&conn, i == FLOORS.len())?;
                    if (1..FLOORS.len()).contains(&i) {
                        conn.execute_batch(&format!(
                            "CREATE TABLE side (id TEXT PRIMARY KEY NOT NULL, clock BLOB NOT NULL) \
                             WITHOUT ROWID;
                             CREATE TABLE side_by_rowid (id INTEGER PRIMARY KEY, clock BLOB NOT NULL);
                             CREATE TRIGGER floor AFTER INSERT ON bookings BEGIN {} END",
                            FLOORS[i - 1].1
                        ))?;
                    }
                    let t = Instant::now();
                    insert_rows(&conn, replica.as_ref(), o.rows)?;
                    secs.push(t.elapsed().as_secs_f64());
                    if replica.is_some() {
                        clock_bytes = Some(conn.query_row(
                            "SELECT avg(length(clock)) FROM bookings__crdt_clock",
                            [],
                            |r| r.get::<_, f64>(0),
                        )?);
                    }
                }
            }
            for (i, mut v) in secs.into_iter().enumerate() {
                v.sort_by(f64::total_cmp);
                medians.insert((i, store), v[v.len() / 2]);
            }
        }
        let names = std::iter::once("plain").chain(FLOORS.iter().map(|(name, _)| *name));
        for (i, name) in names.enumerate() {
            print!("| {name} |");
            for &store in &o.stores {
                let (secs, plain) = (medians[&(i, store)], medians[&(0, store)]);
                print!(" {secs:.3} | {:.2} |", secs / plain);
            }
            println!();
        }
        println!(
            "\nA replicated row's clock blob: {:.1} bytes on average. Total {:.0} s. Load \
             average before: {load_before}, after: {}.",
            clock_bytes.unwrap_or_default(),
            started.elapsed().as_secs_f64(),
            loadavg()
        );
        Ok(())
    }

    /// The 1, 5 and 15 minute load averages: other work on the machine skews the numbers.
    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    }

    fn command_line(program: &str, args: &[&str]) -> String {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".into())
    }

    pub fn run(args: Vec<String>) -> anyhow::Result<()> {
        let o = options(args)?;
        let started = Instant::now();
        let load_before = loadavg();
        // The code measured: the commit, and whether crdt/ differs from it. `cargo run` builds
        // from this tree just before.
        let git = format!(
            "{}{}",
            command_line("git", &["describe", "--always"]),
            match command_line("git", &["status", "--porcelain", "--", "crdt"]).as_str() {
                "" => ", crdt/ unmodified",
                _ => ", crdt/ modified",
            }
        );
        let tmp = tempfile::tempdir()?;
        let stage = stage(tmp.path(), o.rows)?;
        if o.floors {
            return floors(&o, &stage);
        }
        let mut results = Results::default();
        for rep in 0..o.reps {
            for &store in &o.stores {
                eprintln!("ours, {store:?}, repetition {}", rep + 1);
                ours(&o, store, &stage, &mut results)?;
            }
        }
        if o.wasm_reps > 0 {
            for (side, build) in [(Side::Wasm, "crsqlite"), (Side::WasmSync, "crsqlite-sync")] {
                eprintln!("cr-sqlite, {build}, {} repetition(s)", o.wasm_reps);
                wasm(&o, side, build, &mut results)?;
            }
        }
        let fingerprints: std::collections::BTreeSet<&str> =
            results.fingerprints.iter().map(|(_, f)| f.as_str()).collect();
        ensure!(
            fingerprints.len() == 1,
            "the sides disagree on the rows: {:#?}",
            results.fingerprints
        );

        println!("## stayos-bench crdt\n");
        println!(
            "{} rows of 8 columns; inserts in transactions of {INSERT_BATCH} rows; {} single-row \
             update transactions; merges in transactions of {} changes. Ours: {} \
             repetition(s) per store, SQLite {}, git {}. cr-sqlite 0.16 wasm (in memory): {} \
             repetition(s) per build, node {}. Medians. Total {:.0} s. Load average before: \
             {load_before}, after: {}.\n",
            o.rows,
            o.updates,
            o.merge_batch,
            o.reps,
            rusqlite::version(),
            git,
            o.wasm_reps,
            command_line("node", &["--version"]),
            started.elapsed().as_secs_f64(),
            loadavg(),
        );
        println!("Every replica ended with the same rows: {}\n", results.fingerprints[0].1);
        table(&o, &results);
        Ok(())
    }

    enum Line {
        /// Median seconds of a step.
        Time(&'static str),
        /// Items per second of a step.
        Rate(&'static str),
        /// Ratio of two steps' medians.
        Ratio(&'static str, &'static str),
        /// Ratio of two steps' medians, each less a third (the JavaScript call floor).
        NetRatio(&'static str, &'static str, &'static str),
    }

    fn table(o: &Options, r: &Results) {
        let sides: Vec<(Side, &str)> = o
            .stores
            .iter()
            .map(|&s| {
                (Side::Ours(s), if s == Store::File { "ours, file (WAL)" } else { "ours, memory" })
            })
            .chain(
                (o.wasm_reps > 0)
                    .then_some([
                        (Side::Wasm, "cr-sqlite wasm"),
                        (Side::WasmSync, "cr-sqlite wasm, sync build"),
                    ])
                    .into_iter()
                    .flatten(),
            )
            .collect();
        let k = |n: u32| thousands(f64::from(n));
        let (rows, updates) = (k(o.rows), k(o.updates));
        let lines: Vec<(String, &str, Line)> = vec![
            (format!("insert {rows} rows, plain, row by row"), "", Line::Time("insert_plain_rows")),
            (
                format!("insert {rows} rows, replicated, row by row"),
                "",
                Line::Time("insert_crr_rows"),
            ),
            (
                "→ replicated ÷ plain, row by row".into(),
                "≤ 1.5",
                Line::Ratio("insert_crr_rows", "insert_plain_rows"),
            ),
            (format!("insert {rows} rows, plain, staged"), "", Line::Time("insert_plain")),
            (format!("insert {rows} rows, replicated, staged"), "", Line::Time("insert_crr")),
            (
                "→ replicated ÷ plain, staged".into(),
                "≤ 1.5",
                Line::Ratio("insert_crr", "insert_plain"),
            ),
            (format!("{updates} single-row update txs, plain"), "", Line::Time("update_plain")),
            (format!("{updates} single-row update txs, replicated"), "", Line::Time("update_crr")),
            ("→ replicated ÷ plain".into(), "≤ 1.3", Line::Ratio("update_crr", "update_plain")),
            (
                format!("{updates} txs of a no-op statement (JS call floor)"),
                "",
                Line::Time("update_floor"),
            ),
            (
                "→ replicated ÷ plain, less the floor".into(),
                "",
                Line::NetRatio("update_crr", "update_plain", "update_floor"),
            ),
            ("read every change out, changes/s".into(), "≥ 500,000", Line::Rate("read_changes")),
            (
                "collect every change (`changes_since`), changes/s".into(),
                "",
                Line::Rate("collect_changes"),
            ),
            (
                "merge into an empty replica, changes/s".into(),
                "≥ 100,000",
                Line::Rate("merge_new_rows"),
            ),
            (
                "merge updates of existing rows, changes/s".into(),
                "≥ 100,000",
                Line::Rate("merge_updates"),
            ),
        ];
        let wasm: Vec<&(Side, &str)> =
            sides.iter().filter(|(s, _)| matches!(s, Side::Wasm | Side::WasmSync)).collect();
        let ours_mem = o.stores.contains(&Store::Memory).then_some(Side::Ours(Store::Memory));
        print!("| measurement | bar |");
        for (_, name) in &sides {
            print!(" {name} |");
        }
        for (_, name) in &wasm {
            if ours_mem.is_some() {
                print!(" ours memory ÷ {name}, time |");
            }
        }
        println!();
        println!(
            "|---|---|{}",
            "---|".repeat(sides.len() + if ours_mem.is_some() { wasm.len() } else { 0 })
        );
        for (label, bar, line) in &lines {
            print!("| {label} | {bar} |");
            for &(side, _) in &sides {
                let cell = match *line {
                    Line::Time(step) => r.median(side, step).map(|s| format!("{s:.3} s")),
                    Line::Rate(step) => r.per_item(side, step).map(|s| thousands(1.0 / s) + "/s"),
                    Line::Ratio(a, b) => r
                        .median(side, a)
                        .zip(r.median(side, b))
                        .map(|(a, b)| format!("{:.2}", a / b)),
                    Line::NetRatio(a, b, floor) => r
                        .median(side, a)
                        .zip(r.median(side, b))
                        .zip(r.median(side, floor))
                        .map(|((a, b), f)| format!("{:.2}", (a - f) / (b - f))),
                };
                print!(" {} |", cell.unwrap_or_else(|| "—".into()));
            }
            if let Some(ours) = ours_mem {
                for &&(theirs, _) in &wasm {
                    let cell = match *line {
                        Line::Time(step) | Line::Rate(step) => r
                            .per_item(ours, step)
                            .zip(r.per_item(theirs, step))
                            .map(|(a, b)| format!("{:.2}", a / b)),
                        _ => None,
                    };
                    print!(" {} |", cell.unwrap_or_else(|| "—".into()));
                }
            }
            println!();
        }
    }

    /// `1234567.8` as `1,234,568`.
    fn thousands(x: f64) -> String {
        let digits = format!("{:.0}", x);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    }
}

/// `stayos-bench hotel`: the hotel core over HTTP on a seeded 300-room hotel.
///
/// Each node is initialised with the release `stayos-edge init`, seeded in this process with
/// `edge_node::demo::seed` through the node's own write path (`Db::write`, change capture
/// included), closed, and then served by the release `stayos-edge serve --http` as a child
/// process, so timings and resident memory are the server's alone. Every request is a real
/// HTTP request with a logged-in owner's bearer token, one at a time from one client, except
/// the reservation run (32 concurrent clients).
mod hotel_bench {
    use std::path::Path;
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, bail};
    use edge_node::demo::seed::{Booker, HotelSpec, Rng};
    use jiff::civil::Date;
    use serde_json::{Value, json};

    use super::{EMAIL, Node, PASSWORD, percentile, release_binary, wait_healthy};

    struct Options {
        rooms: usize,
        guests: usize,
        reservations: usize,
        seconds: u64,
        clients: usize,
    }

    fn options(args: Vec<String>) -> anyhow::Result<Options> {
        let mut o = Options {
            rooms: 300,
            guests: 100_000,
            reservations: 1_000_000,
            seconds: 10,
            clients: 32,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--rooms" => o.rooms = value()?.parse()?,
                "--guests" => o.guests = value()?.parse()?,
                "--reservations" => o.reservations = value()?.parse()?,
                "--seconds" => o.seconds = value()?.parse()?,
                "--clients" => o.clients = value()?.parse()?,
                other => bail!("unknown option {other}"),
            }
        }
        Ok(o)
    }

    struct Seeded {
        property_id: String,
        business_date: Date,
        room_types: Vec<String>,
        flexible_rate_id: String,
        guest_ids: Vec<String>,
        reservations: usize,
        seconds: f64,
    }

    fn init(bin: &Path, dir: &Path) -> anyhow::Result<()> {
        let out = Command::new(bin)
            .args(["init", "--data-dir"])
            .arg(dir)
            .args(["--property-name", "Bench Hotel", "--admin-email", EMAIL])
            .env("STAYOS_ADMIN_PASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Seeds the hotel: inventory, guests, and reservations arriving over `days_back` days
    /// before the business date to `days_ahead` after, in windows of about `batch`
    /// reservations per transaction.
    async fn seed(dir: &Path, spec: HotelSpec, batch: usize) -> anyhow::Result<Seeded> {
        let started = Instant::now();
        let db = edge_node::db::Db::open(dir, 1)?;
        let property_id: String = db
            .read(|conn| {
                conn.query_row("SELECT id FROM properties LIMIT 1", [], |r| r.get(0))
                    .map_err(edge_node::db::DbError::from)
            })
            .await?;
        let pid = property_id.clone();
        let business_date = db
            .read(move |conn| {
                Ok::<_, edge_node::db::DbError>(
                    edge_node::property::access::settings(conn, &pid)?
                        .context_free()?
                        .business_date,
                )
            })
            .await?;
        let (pid, s) = (property_id.clone(), spec.clone());
        let now = edge_node::time::now_ms();
        let mut booker = db
            .write(move |tx| {
                Booker::setup(tx, &pid, business_date, now, &s)
                    .map_err(edge_node::db::DbError::from)
            })
            .await?;
        let per_day = (spec.rooms as u64 * spec.occupancy_percent / 100).max(1) as usize;
        let window = (batch / per_day).max(1) as i64;
        let end = business_date.checked_add(jiff::Span::new().days(spec.days_ahead + 1))?;
        let mut from = booker.start;
        while from < end {
            let to = from.checked_add(jiff::Span::new().days(window))?.min(end);
            booker = db
                .write(move |tx| {
                    booker.book(tx, from, to)?;
                    Ok::<_, edge_node::db::DbError>(booker)
                })
                .await?;
            from = to;
        }
        let booker = db
            .write(move |tx| {
                let mut booker = booker;
                booker.finish(tx)?;
                Ok::<_, edge_node::db::DbError>(booker)
            })
            .await?;
        let hotel = booker.into_hotel();
        db.close();
        Ok(Seeded {
            property_id,
            business_date,
            room_types: hotel.inventory.room_types.iter().map(|t| t.id.clone()).collect(),
            flexible_rate_id: hotel.inventory.flexible_rate_id.clone(),
            guest_ids: hotel.guest_ids,
            reservations: hotel.summary.reservations,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    trait ContextFree<T> {
        fn context_free(self) -> Result<T, edge_node::db::DbError>;
    }

    impl<T> ContextFree<T> for Option<T> {
        fn context_free(self) -> Result<T, edge_node::db::DbError> {
            self.ok_or(edge_node::db::DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        }
    }

    async fn login(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
        let resp = client
            .post(format!("{base}/auth/login"))
            .json(&json!({ "email": EMAIL, "password": PASSWORD }))
            .send()
            .await?;
        let body: Value = resp.json().await?;
        Ok(body["access_token"].as_str().context("no access token")?.to_string())
    }

    /// GETs every URL in turn; returns latencies in ms and how many were not 200.
    async fn timed_gets(
        client: &reqwest::Client,
        token: &str,
        urls: &[String],
    ) -> anyhow::Result<(Vec<f64>, usize, String)> {
        let mut ms = Vec::with_capacity(urls.len());
        let mut failed = 0;
        let mut example = String::new();
        for url in urls {
            let t = Instant::now();
            let resp = client.get(url).bearer_auth(token).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                failed += 1;
                if example.is_empty() {
                    example = format!("{status} {}", String::from_utf8_lossy(&body));
                }
            }
        }
        Ok((ms, failed, example))
    }

    fn row(name: &str, mut ms: Vec<f64>, failed: usize, example: &str) {
        ms.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {failed} |",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or_default()
        );
        if failed > 0 {
            println!(
                "|  first failure: {} | | | | | |",
                example.chars().take(200).collect::<String>()
            );
        }
    }

    fn header() {
        println!(
            "| measurement | n | p50 ms | p99 ms | max ms | non-2xx |\n|---|---|---|---|---|---|"
        );
    }

    fn add(date: Date, days: i64) -> Date {
        date.checked_add(jiff::Span::new().days(days)).unwrap_or(date)
    }

    async fn availability(
        client: &reqwest::Client,
        token: &str,
        base: &str,
        s: &Seeded,
        label: &str,
    ) -> anyhow::Result<()> {
        let mut rng = Rng::new(7);
        for (nights, n) in [(30i64, 500usize), (365, 200)] {
            let urls: Vec<String> = (0..n)
                .map(|_| {
                    let from = add(s.business_date, rng.below(300) as i64);
                    format!(
                        "{base}/properties/{}/availability?from={from}&to={}",
                        s.property_id,
                        add(from, nights)
                    )
                })
                .collect();
            let (ms, failed, example) = timed_gets(client, token, &urls).await?;
            row(&format!("availability, {nights} nights ({label})"), ms, failed, &example);
        }
        Ok(())
    }

    /// Double bookings and counter drift, straight from the database file.
    fn verify(dir: &Path) -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            dir.join("stayos.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let q = |sql: &str| -> anyhow::Result<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        let drift = q("SELECT COUNT(*) FROM room_type_nights t WHERE t.sold !=
            (SELECT COUNT(*) FROM reservation_nights n
             WHERE n.room_type_id = t.room_type_id AND n.night = t.night)")?;
        let uncounted =
            q("SELECT COUNT(*) FROM (SELECT room_type_id, night FROM reservation_nights
            GROUP BY room_type_id, night) g WHERE NOT EXISTS (SELECT 1 FROM room_type_nights t
            WHERE t.room_type_id = g.room_type_id AND t.night = g.night)")?;
        let over = q("SELECT COUNT(*) FROM room_type_nights t WHERE t.sold >
            (SELECT COUNT(*) FROM rooms r WHERE r.room_type_id = t.room_type_id AND r.deleted_at = 0)
            - (SELECT COUNT(*) FROM room_blocks b JOIN rooms r ON r.id = b.room_id
               WHERE r.room_type_id = t.room_type_id AND b.kind = 'out_of_order'
                 AND b.released_at = 0 AND b.from_date <= t.night AND t.night < b.to_date)
            + (SELECT overbooking_allowance FROM room_types WHERE id = t.room_type_id)")?;
        let doubled = q("SELECT COUNT(*) FROM (SELECT room_id, night FROM reservation_nights
            WHERE room_id != '' GROUP BY room_id, night HAVING COUNT(*) > 1)")?;
        println!(
            "\nafter the run: type-nights whose sold != reservation_nights: {drift}; \
             nights held but not counted: {uncounted}; type-nights over capacity: {over}; \
             room-nights sold twice: {doubled}"
        );
        if drift + uncounted + over + doubled > 0 {
            bail!("inventory invariants broken");
        }
        Ok(())
    }

    async fn create_reservations(
        base: &str,
        token: &str,
        s: &Seeded,
        clients: usize,
        seconds: u64,
    ) -> anyhow::Result<()> {
        let created = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let example = Arc::new(std::sync::Mutex::new(String::new()));
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = reqwest::Client::new();
            let (base, token) = (base.to_string(), token.to_string());
            let (created, refused, failed, example, latencies) = (
                created.clone(),
                refused.clone(),
                failed.clone(),
                example.clone(),
                latencies.clone(),
            );
            let property_id = s.property_id.clone();
            let types = s.room_types.clone();
            let rate = s.flexible_rate_id.clone();
            let guests = s.guest_ids.clone();
            let today = s.business_date;
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(1_000 + c as u64);
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let arrival = add(today, 1 + rng.below(364) as i64);
                    let departure = add(arrival, 1 + rng.below(3) as i64);
                    let body = json!({
                        "property_id": property_id,
                        "room_type_id": rng.pick(&types),
                        "rate_plan_id": rate,
                        "arrival": arrival.to_string(),
                        "departure": departure.to_string(),
                        "adults": 1,
                        "children": 0,
                        "guest_id": rng.pick(&guests),
                    });
                    let t = Instant::now();
                    let Ok(resp) = client
                        .post(format!("{base}/reservations"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    mine.push(t.elapsed().as_secs_f64() * 1000.0);
                    match status {
                        201 => created.fetch_add(1, Ordering::Relaxed),
                        409 => refused.fetch_add(1, Ordering::Relaxed),
                        _ => {
                            if let Ok(mut e) = example.lock()
                                && e.is_empty()
                            {
                                *e = format!(
                                    "{status} {}",
                                    text.chars().take(300).collect::<String>()
                                );
                            }
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                if let Ok(mut all) = latencies.lock() {
                    all.extend(mine);
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let created = created.load(Ordering::Relaxed);
        let mut ms = latencies.lock().map(|l| l.clone()).unwrap_or_default();
        ms.sort_by(f64::total_cmp);
        println!(
            "\nPOST /reservations, {clients} concurrent clients for {elapsed:.1} s: {created} created \
             ({:.0}/s), {} refused with 409 (sold out / restrictions), {} other failures; \
             latency p50 {:.1} ms, p99 {:.1} ms",
            created as f64 / elapsed,
            refused.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            if ms.is_empty() { 0.0 } else { percentile(&ms, 0.5) },
            if ms.is_empty() { 0.0 } else { percentile(&ms, 0.99) },
        );
        if let Ok(e) = example.lock()
            && !e.is_empty()
        {
            println!("first other failure: {e}");
        }
        Ok(())
    }

    fn search_urls(base: &str, dir: &Path, n: usize) -> anyhow::Result<Vec<String>> {
        let conn = rusqlite::Connection::open_with_flags(
            dir.join("stayos.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let mut stmt = conn.prepare(
            "SELECT last_name, first_name, email, phone_digits FROM guests
             ORDER BY id LIMIT ?1",
        )?;
        let rows: Vec<(String, String, String, String)> = stmt
            .query_map([n as i64 * 7], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut rng = Rng::new(99);
        let enc = |s: &str| {
            s.replace('%', "%25").replace(' ', "%20").replace('+', "%2B").replace('\'', "%27")
        };
        let mut urls = Vec::with_capacity(n);
        for i in 0..n {
            let (last, first, email, phone) = &rows[rng.below(rows.len() as u64) as usize];
            let url = match i % 4 {
                0 => {
                    let len = 2 + rng.below(4) as usize;
                    format!("{base}/guests?q={}", enc(&last.chars().take(len).collect::<String>()))
                }
                1 => format!(
                    "{base}/guests?q={}",
                    enc(&format!("{} {}", first, last.chars().take(2).collect::<String>()))
                ),
                2 if !email.is_empty() => {
                    let len = 3 + rng.below(6) as usize;
                    format!(
                        "{base}/guests?email={}",
                        enc(&email.chars().take(len).collect::<String>())
                    )
                }
                _ => {
                    let len = 4 + rng.below(6) as usize;
                    format!("{base}/guests?phone={}", &phone.chars().take(len).collect::<String>())
                }
            };
            urls.push(url);
        }
        Ok(urls)
    }

    pub fn run(args: Vec<String>) -> anyhow::Result<()> {
        let o = options(args)?;
        let bin = release_binary()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let tmp = tempfile::tempdir()?;
        let env = [("STAYOS_RATE_LIMIT__PER_SECOND", "0")];
        println!("## stayos-bench hotel\n");
        println!("binary: {}; {} cores\n", bin.display(), std::thread::available_parallelism()?);

        // Part 1: a 300-room hotel with a season of reservations and 100,000 guests.
        let dir = tmp.path().join("hotel");
        init(&bin, &dir)?;
        let spec = HotelSpec {
            rooms: o.rooms,
            guests: o.guests,
            days_back: 60,
            days_ahead: 90,
            max_stay: 7,
            occupancy_percent: 70,
            seed: 42,
        };
        let seeded = runtime.block_on(seed(&dir, spec, 50_000))?;
        println!(
            "seeded {} rooms, {} guests, {} reservations in {:.1} s\n",
            o.rooms,
            seeded.guest_ids.len(),
            seeded.reservations,
            seeded.seconds
        );
        let (node, _) = Node::start(&bin, &dir, true, &env)?;
        let base = format!("http://127.0.0.1:{}", node.port);
        let client = reqwest::Client::new();
        let result = runtime.block_on(async {
            wait_healthy(&client, &base).await?;
            let token = login(&client, &base).await?;
            header();
            availability(&client, &token, &base, &seeded, "season seeded").await?;
            let urls = search_urls(&base, &dir, 1_000)?;
            let (ms, failed, example) = timed_gets(&client, &token, &urls).await?;
            row(
                &format!(
                    "guest search among {} profiles (name, e-mail, phone prefixes)",
                    seeded.guest_ids.len()
                ),
                ms,
                failed,
                &example,
            );
            create_reservations(&base, &token, &seeded, o.clients, o.seconds).await
        });
        node.stop()?;
        result?;
        verify(&dir)?;

        // Part 2: years of reservations.
        if o.reservations == 0 {
            return Ok(());
        }
        let dir = tmp.path().join("big");
        init(&bin, &dir)?;
        let per_day = (o.rooms * 90 / 100).max(1);
        let days = (o.reservations / per_day) as i64;
        let spec = HotelSpec {
            rooms: o.rooms,
            guests: 20_000,
            days_back: days - 180,
            days_ahead: 180,
            max_stay: 1,
            occupancy_percent: 96,
            seed: 4242,
        };
        let seeded = runtime.block_on(seed(&dir, spec, 50_000))?;
        let size = std::fs::metadata(dir.join("stayos.db"))?.len();
        println!(
            "\nseeded {} reservations ({} days of a {}-room hotel) in {:.1} s through the write path \
             (transactions of ~50,000); database file {:.0} MiB\n",
            seeded.reservations,
            days,
            o.rooms,
            seeded.seconds,
            size as f64 / 1_048_576.0
        );
        let (node, _) = Node::start(&bin, &dir, true, &env)?;
        let base = format!("http://127.0.0.1:{}", node.port);
        let result = runtime.block_on(async {
            wait_healthy(&client, &base).await?;
            let idle = node.rss_kib()?;
            let token = login(&client, &base).await?;
            header();
            let label = format!("{} reservations", seeded.reservations);
            availability(&client, &token, &base, &seeded, &label).await?;
            let mut rng = Rng::new(5);
            let urls: Vec<String> = (0..500)
                .map(|_| {
                    let day = add(seeded.business_date, rng.below(360) as i64 - 180);
                    format!("{base}/reservations?property_id={}&arrival={day}", seeded.property_id)
                })
                .collect();
            let (ms, failed, example) = timed_gets(&client, &token, &urls).await?;
            row(
                &format!("GET /reservations?arrival=<date> ({label})"),
                ms,
                failed,
                &example,
            );
            let busy = node.rss_kib()?;
            println!(
                "\nresident memory of `stayos-edge serve` with {} reservations: {:.1} MiB after start, \
                 {:.1} MiB after the requests above",
                seeded.reservations,
                idle as f64 / 1024.0,
                busy as f64 / 1024.0
            );
            Ok::<_, anyhow::Error>(())
        });
        node.stop()?;
        result?;
        verify(&dir)
    }
}
