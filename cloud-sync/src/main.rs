//! `stayos-hub`: the cloud hub's command line — `migrate` its PostgreSQL database, `serve` the
//! sync endpoint, make enrollment tokens, list and revoke nodes, and carry a property's
//! changes as a file when its internet is down for days.
//!
//! Exit codes: 0 done, 2 bad input (a flag, a file, an unknown node), 1 anything else
//! (PostgreSQL unreachable, a failed write).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use cloud_sync::db::{self, Pool};
use cloud_sync::schema::HubSchema;
use cloud_sync::server::limits::PushLimits;
use cloud_sync::server::{self, Transport};
use cloud_sync::store::{MergeError, Store, Writer};
use cloud_sync::{nodes, tls};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "stayos-hub", version, about = "StayOS cloud hub: every property's replica")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Database {
    /// PostgreSQL URL of the hub's database.
    #[arg(long, env = "STAYOS_DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

/// What pushes may cost this process (`serve`).
#[derive(Debug, Args)]
struct Limits {
    /// MiB of push bodies and decoded batches held at once; a push beyond it waits, then is
    /// answered 503 hub_busy.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=65_536))]
    push_memory_mib: u32,
    /// Pushes of one node running at once; one more is answered 429 too_many_pushes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pushes_per_node: u32,
    /// Pushes running at once in all; one more is answered 503 hub_busy.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pushes_in_flight: u32,
    /// Rows one property may store on the hub; a push that would add more is answered 507
    /// quota_exceeded (the node keeps its changes and retries).
    #[arg(long, default_value_t = cloud_sync::store::DEFAULT_ROW_QUOTA,
          value_parser = clap::value_parser!(i64).range(1_000..))]
    property_row_quota: i64,
}

impl Limits {
    fn push_limits(&self) -> PushLimits {
        PushLimits {
            memory_bytes: self.push_memory_mib as usize * 1024 * 1024,
            per_node: self.pushes_per_node as usize,
            in_flight: self.pushes_in_flight as usize,
        }
    }
}

#[derive(Debug, Args)]
struct StateDir {
    /// The hub's state directory, where the private key of its own TLS certificate is kept
    /// (`tls-key.pem`, mode 0600; created on first run). Every hub process on the same
    /// database needs a copy of that file.
    #[arg(long, env = "STAYOS_HUB_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the hub's tables, and (with --state-dir) its TLS certificate, moving
    /// a private key an older hub kept in the database into the state directory. Safe to run
    /// again.
    Migrate {
        #[command(flatten)]
        db: Database,
        #[command(flatten)]
        state: StateDir,
    },
    /// Migrate, then serve the sync endpoint (HTTPS with the hub's own certificate by default).
    Serve {
        #[command(flatten)]
        db: Database,
        #[command(flatten)]
        state: StateDir,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: SocketAddr,
        /// Serve plain HTTP (loopback tests, or behind a proxy that terminates TLS).
        #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
        http: bool,
        /// Serve this certificate chain (PEM) instead of the hub's own certificate.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Most PostgreSQL connections this process opens.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(2..=1000))]
        db_pool: u16,
        #[command(flatten)]
        limits: Limits,
    },
    /// Print a one-time enrollment token for a property's edge node.
    EnrollToken {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        property_id: String,
        /// How long the token stays valid.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
        ttl_minutes: u32,
    },
    /// List every enrolled node.
    Nodes {
        #[command(flatten)]
        db: Database,
    },
    /// Revoke a node: its credential stops working on its next request.
    RevokeNode {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        node_id: String,
    },
    /// Carry a property's changes as a file (JSON Lines, as `stayos-edge changes` writes).
    Changes {
        #[command(subcommand)]
        command: ChangesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ChangesCommand {
    /// Merge a file from `stayos-edge changes export` as the property's writes.
    Import {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        property_id: String,
        file: PathBuf,
    },
    /// Write everything the property's node would pull, for `stayos-edge changes import`.
    Export {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        property_id: String,
        /// Only changes after this hub version (0: everything).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        since: i64,
        /// The file to write; it must not exist yet.
        file: PathBuf,
    },
}

/// Bad input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|e| e.is::<BadInput>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate { db, state } => {
            let pool = open(&db, 2).await?;
            migrate(&pool).await?;
            if let Some(dir) = &state.state_dir {
                let cert = own_certificate(&pool, dir).await?;
                println!(
                    "hub database is up to date; TLS certificate sha256 {}, its private key in {}",
                    cert.sha256_hex,
                    dir.join(tls::KEY_FILE).display()
                );
                return Ok(());
            }
            if tls::key_in_database(&pool).await? {
                return Err(key_still_in_database());
            }
            match tls::stored_certificate(&pool).await? {
                Some((_, sha)) => {
                    println!("hub database is up to date; TLS certificate sha256 {sha}");
                }
                None => println!(
                    "hub database is up to date; no TLS certificate yet (`--state-dir DIR` \
                     creates it, its private key in DIR)"
                ),
            }
            Ok(())
        }
        Command::Serve { db, state, listen, http, tls_cert, tls_key, db_pool, limits } => {
            if !http && tls_cert.is_none() && state.state_dir.is_none() {
                return Err(bad("serving the hub's own certificate needs --state-dir DIR (or \
                     STAYOS_HUB_STATE_DIR), the directory that keeps its private key; or serve \
                     --tls-cert/--tls-key files, or --http behind a proxy"));
            }
            init_logging();
            let pool = open(&db, usize::from(db_pool)).await?;
            migrate(&pool).await?;
            // With a state directory the hub's own certificate exists whatever is served, so
            // enrollment tokens can pin it, and a key left in the database is moved out.
            let own = match &state.state_dir {
                Some(dir) => Some(own_certificate(&pool, dir).await?),
                None => {
                    if tls::key_in_database(&pool).await? {
                        tracing::warn!(
                            "hub_meta still holds the hub's TLS private key in clear; run \
                             `stayos-hub migrate --state-dir DIR` to move it out"
                        );
                    }
                    None
                }
            };
            let transport = if http {
                db::set_hub_meta(&pool, tls::SERVED_KEY, b"http").await?;
                Transport::Http
            } else if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                let read = |p: &Path| {
                    std::fs::read(p).map_err(|e| bad(format!("cannot read {}: {e}", p.display())))
                };
                let transport = Transport::Https { cert_pem: read(&cert)?, key_pem: read(&key)? };
                db::set_hub_meta(&pool, tls::SERVED_KEY, b"files").await?;
                transport
            } else {
                let cert = own.ok_or_else(|| bad("--state-dir is needed"))?;
                db::set_hub_meta(&pool, tls::SERVED_KEY, b"db").await?;
                tracing::info!(sha256 = %cert.sha256_hex, "serving the hub's own certificate");
                Transport::Https {
                    cert_pem: cert.cert_pem.into_bytes(),
                    key_pem: cert.key_pem.into_bytes(),
                }
            };
            // `open` parsed the URL already; parsed again for the listening connection.
            let database = db::pg_config(&db.database_url)
                .map_err(|e| bad(format!("--database-url {}: {e}", redact(&db.database_url))))?;
            let quota = limits.property_row_quota;
            serve(pool, database, listen, transport, limits.push_limits(), quota).await
        }
        Command::EnrollToken { db, property_id, ttl_minutes } => {
            nodes::check_property_id(&property_id)
                .map_err(|e| bad(format!("--property-id: {e}")))?;
            let pool = open_migrated(&db).await?;
            // Edges pin the hub's own certificate; one from files (e.g. a public CA's, renewed
            // every few months) must not be pinned, so such a token carries no fingerprint.
            let served = db::hub_meta(&pool, tls::SERVED_KEY).await?;
            let fingerprint = if served.as_deref() == Some(b"files") {
                None
            } else {
                match tls::stored_certificate(&pool).await? {
                    Some((_, sha)) => Some(sha),
                    // Edges reach a plain-HTTP hub without TLS: nothing to pin.
                    None if served.as_deref() == Some(b"http") => None,
                    None => {
                        return Err(bad(
                            "the hub has no TLS certificate yet, so a token could not pin it: \
                             run `stayos-hub migrate --state-dir DIR` (or serve with \
                             --state-dir) first",
                        ));
                    }
                }
            };
            let token = nodes::create_token(&pool, &property_id, ttl_minutes, fingerprint).await?;
            println!("{}", token.format());
            Ok(())
        }
        Command::Nodes { db } => {
            let pool = open_migrated(&db).await?;
            print_nodes(&nodes::list(&pool).await?);
            Ok(())
        }
        Command::RevokeNode { db, node_id } => {
            let pool = open_migrated(&db).await?;
            match nodes::revoke(&pool, &node_id).await? {
                nodes::Revoked::Now { property_id } => {
                    println!("revoked node {node_id} of property {property_id}");
                    Ok(())
                }
                nodes::Revoked::Already { property_id } => {
                    println!("node {node_id} of property {property_id} was already revoked");
                    Ok(())
                }
                nodes::Revoked::UnknownNode => {
                    Err(bad(format!("no node has the id {node_id}; `stayos-hub nodes` lists them")))
                }
            }
        }
        Command::Changes { command: ChangesCommand::Import { db, property_id, file } } => {
            nodes::check_property_id(&property_id)
                .map_err(|e| bad(format!("--property-id: {e}")))?;
            let (changes, lines) = read_changes(&file)?;
            let pool = open_migrated(&db).await?;
            import(&pool, &property_id, &file, &changes, &lines).await
        }
        Command::Changes { command: ChangesCommand::Export { db, property_id, since, file } } => {
            nodes::check_property_id(&property_id)
                .map_err(|e| bad(format!("--property-id: {e}")))?;
            if file.exists() {
                return Err(bad(format!(
                    "{} exists; export never overwrites a file",
                    file.display()
                )));
            }
            let pool = open_migrated(&db).await?;
            export(&pool, &property_id, since, &file).await
        }
    }
}

/// JSON lines on standard error (for the journal and log shippers); `RUST_LOG` sets the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .try_init();
}

/// A database URL safe to print: without its password.
fn redact(url: &str) -> String {
    let scheme = ["postgres://", "postgresql://"].into_iter().find(|s| url.starts_with(*s));
    let Some(scheme) = scheme else {
        // key=value form.
        return url
            .split_whitespace()
            .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme.len()..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// A pool on the hub's database, checked to be reachable, so every command fails early and
/// clearly when PostgreSQL is not there.
async fn open(db: &Database, size: usize) -> anyhow::Result<Pool> {
    let shown = redact(&db.database_url);
    let pool = db::connect(&db.database_url, size)
        .map_err(|e| bad(format!("--database-url {shown}: {e}")))?;
    let reachable = tokio::time::timeout(Duration::from_secs(15), pool.get()).await;
    match reachable {
        Ok(Ok(_client)) => Ok(pool),
        Ok(Err(err)) => Err(anyhow::anyhow!(
            "cannot connect to PostgreSQL at {shown}: {}; PostgreSQL must be running and accept connections there",
            causes(&err)
        )),
        Err(_) => Err(anyhow::anyhow!(
            "PostgreSQL at {shown} did not answer within 15 s; PostgreSQL must be running and accept connections there"
        )),
    }
}

/// An error with its causes, `a: b: c`, skipping a cause its parent already printed.
fn causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = cause.source();
    }
    text
}

/// [`open`], for commands that need the hub's tables.
async fn open_migrated(db: &Database) -> anyhow::Result<Pool> {
    let pool = open(db, 4).await?;
    if !nodes::is_migrated(&pool).await? {
        anyhow::bail!(
            "the database at {} has no hub tables; run `stayos-hub migrate` first",
            redact(&db.database_url)
        );
    }
    Ok(pool)
}

/// The hub's own certificate with its key from `dir` (created, or moved out of the database).
async fn own_certificate(pool: &Pool, dir: &Path) -> anyhow::Result<tls::HubCert> {
    match tls::hub_certificate(pool, dir).await {
        Ok(cert) => Ok(cert),
        Err(tls::TlsError::Setup(message)) => Err(bad(message)),
        Err(tls::TlsError::Hub(err)) => {
            Err(anyhow::Error::new(err).context("failed to set up the hub's TLS certificate"))
        }
    }
}

fn key_still_in_database() -> anyhow::Error {
    bad("the hub's tables are up to date, but hub_meta still holds the hub's TLS private key \
         in clear (stored by an older hub): run `stayos-hub migrate --state-dir DIR` (or set \
         STAYOS_HUB_STATE_DIR) to move it into DIR/tls-key.pem; the key was left where it is")
}

async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    db::migrate(pool).await.context("failed to migrate the hub database")
}

async fn open_store(pool: &Pool) -> anyhow::Result<Store> {
    let schema = HubSchema::edge().context("the edge schema built into this binary")?;
    Store::open(pool.clone(), schema).await.context("failed to open the hub's replica")
}

async fn serve(
    pool: Pool,
    database: tokio_postgres::Config,
    listen: SocketAddr,
    transport: Transport,
    limits: PushLimits,
    row_quota: i64,
) -> anyhow::Result<()> {
    let store = open_store(&pool).await?.with_row_quota(row_quota);
    let head = store.head();
    let running = server::start(store, database, listen, transport, limits).await?;
    tracing::info!(url = %running.url(), head, "serving");
    {
        // Tests and supervisors read this line to learn the bound port.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", running.local_addr)?;
        out.flush()?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: answering long-polls, finishing in-flight requests");
    running.shutdown().await.context("the server stopped with an error")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn print_nodes(rows: &[nodes::NodeRow]) {
    if rows.is_empty() {
        println!("no nodes enrolled; `stayos-hub enroll-token --property-id ID` makes a token");
        return;
    }
    let header = ["NODE", "PROPERTY", "NAME", "SITE", "ENROLLED", "LAST SEEN", "REVOKED"];
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.property_id.clone(),
                if r.name.is_empty() { "-".into() } else { r.name.clone() },
                r.site_id.clone(),
                r.enrolled_at.clone(),
                r.last_seen_at.clone().unwrap_or_else(|| "-".into()),
                r.revoked_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(String::from));
    for row in &table {
        line(row);
    }
}

/// Every change of a changes file, with the line each came from; the first bad line stops
/// everything before anything is applied.
fn read_changes(file: &Path) -> anyhow::Result<(Vec<crdt::Change>, Vec<usize>)> {
    let opened = std::fs::File::open(file)
        .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
    let mut changes = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in BufReader::new(opened).lines().enumerate() {
        let n = i + 1;
        let line =
            line.map_err(|e| bad(format!("{}, line {n}: not UTF-8 text: {e}", file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let (change, _schema) = crdt::wire::parse_line(&line)
            .map_err(|e| bad(format!("{}, line {n}: {e}", file.display())))?;
        changes.push(change);
        lines.push(n);
    }
    if changes.is_empty() {
        return Err(bad(format!("{} holds no changes", file.display())));
    }
    Ok((changes, lines))
}

async fn import(
    pool: &Pool,
    property_id: &str,
    file: &Path,
    changes: &[crdt::Change],
    lines: &[usize],
) -> anyhow::Result<()> {
    let store = open_store(pool).await?;
    let writer = Writer { property_id: property_id.to_string(), node_id: None };
    let shown = file.display().to_string();
    match store.import(&writer, changes).await {
        Ok(ack) => {
            let refused = if ack.quarantined > 0 {
                quarantined_of_import(pool, property_id, ack.quarantined).await?
            } else {
                Vec::new()
            };
            for (table, pk, reason) in &refused {
                eprintln!("{shown}: {table} row {pk}: {reason} (quarantined)");
            }
            let details = json!({
                "file": shown, "changes": changes.len(),
                "applied": ack.applied, "ignored": ack.ignored, "quarantined": ack.quarantined,
            });
            if ack.quarantined as usize == changes.len() {
                nodes::audit_pool(pool, nodes::EV_PUSH_REFUSED, None, Some(property_id), details)
                    .await?;
                return Err(bad(format!(
                    "{shown}: every change was refused for property {property_id}; nothing was imported"
                )));
            }
            nodes::audit_pool(pool, nodes::EV_IMPORTED, None, Some(property_id), details).await?;
            println!(
                "imported {} changes from {shown} for property {property_id}: {} applied, {} already known, superseded or kept on nodes, {} refused",
                changes.len(),
                ack.applied,
                ack.ignored,
                ack.quarantined
            );
            Ok(())
        }
        Err(MergeError::Invalid { index, reason }) => {
            let line = lines.get(index).copied().unwrap_or(0);
            Err(bad(format!("{shown}, line {line}: {reason}; nothing was imported")))
        }
        Err(err @ MergeError::QuotaExceeded { .. }) => {
            Err(bad(format!("{shown}: {err}; nothing was imported")))
        }
        Err(MergeError::Hub(err)) => Err(anyhow::Error::new(err).context("the import failed")),
    }
}

/// The newest `n` (at most 20) changes a file import of `property_id` quarantined: table,
/// key and reason.
async fn quarantined_of_import(
    pool: &Pool,
    property_id: &str,
    n: u64,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let client = pool.get().await.context("no database connection")?;
    let limit = i64::try_from(n.min(20)).unwrap_or(20);
    let rows = client
        .query(
            "SELECT tbl, change->>'pk', reason FROM sync_quarantine
             WHERE property_id = $1 AND node_id IS NULL ORDER BY id DESC LIMIT $2",
            &[&property_id, &limit],
        )
        .await
        .context("failed to read the quarantine")?;
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default(), r.get(2)))
        .collect();
    out.reverse();
    Ok(out)
}

async fn export(pool: &Pool, property_id: &str, since: i64, file: &Path) -> anyhow::Result<()> {
    let store = open_store(pool).await?;
    let schema = store.schema_version();
    let changes = store.export(property_id, since).await.context("failed to read the changes")?;
    let until = changes.iter().map(|c| c.db_version).max().unwrap_or(since).max(since);
    write_new_file(file, &changes, schema)?;
    let details = json!({
        "file": file.display().to_string(), "since": since, "until": until, "changes": changes.len(),
    });
    nodes::audit_pool(pool, nodes::EV_EXPORTED, None, Some(property_id), details).await?;
    println!(
        "exported {} changes for property {property_id} (hub versions {} to {until}) to {}",
        changes.len(),
        since + 1,
        file.display()
    );
    Ok(())
}

/// Writes the changes to a temporary file beside `file`, then links it into place — which
/// fails if `file` appeared meanwhile — so an export never overwrites a file and a cut-off
/// export never leaves a half file under the final name.
fn write_new_file(file: &Path, changes: &[crdt::Change], schema: i64) -> anyhow::Result<()> {
    let name =
        file.file_name().ok_or_else(|| bad(format!("{} is not a file name", file.display())))?;
    let partial =
        file.with_file_name(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let fail = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", file.display());
    let written = (|| -> std::io::Result<()> {
        let out = std::fs::OpenOptions::new().write(true).create_new(true).open(&partial)?;
        let mut out = std::io::BufWriter::new(out);
        for change in changes {
            writeln!(out, "{}", crdt::wire::change_line_with_schema(change, Some(schema)))?;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
        std::fs::hard_link(&partial, file)
    })();
    let _ = std::fs::remove_file(&partial);
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && file.exists() => {
            Err(bad(format!("{} exists; export never overwrites a file", file.display())))
        }
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_their_password() {
        assert_eq!(
            redact("postgres://hub:s3cret@db.example:5432/stayos"),
            "postgres://hub@db.example:5432/stayos"
        );
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
        assert_eq!(
            redact("postgresql://u@h/db?sslmode=require&password=p"),
            "postgresql://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            redact("host=h user=u password=p dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn the_command_line_parses_every_command() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "stayos-hub",
            "serve",
            "--database-url",
            "postgres://x",
            "--listen",
            "127.0.0.1:0",
            "--http",
        ])
        .expect("serve");
        assert!(matches!(cli.command, Command::Serve { http: true, .. }));
        assert!(
            Cli::try_parse_from(["stayos-hub", "serve", "--database-url", "u", "--tls-cert", "c"])
                .is_err(),
            "--tls-cert needs --tls-key"
        );
        assert!(
            Cli::try_parse_from([
                "stayos-hub",
                "enroll-token",
                "--database-url",
                "u",
                "--property-id",
                "p",
                "--ttl-minutes",
                "0"
            ])
            .is_err()
        );
    }
}
