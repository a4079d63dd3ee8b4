//! `stayos-edge`: the edge node's command line — `init` a data directory, `serve` it, `enroll`
//! it with the hub, or run a throw-away `demo`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use edge_node::config::Config;
use edge_node::sync::enroll::{self, EnrollError, EnrollOptions};
use edge_node::{changefile, demo, init, logging, server};

#[derive(Debug, Parser)]
#[command(name = "stayos-edge", version, about = "StayOS edge node: the hotel's own server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: database, property, owner account, keys and certificates.
    ///
    /// The owner's password comes from STAYOS_ADMIN_PASSWORD, or is asked for on a terminal.
    Init {
        #[arg(long, env = "STAYOS_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        property_name: String,
        #[arg(long)]
        admin_email: String,
        /// The owner's display name.
        #[arg(long)]
        admin_name: Option<String>,
        /// Extra host name or IP address for the LAN certificate (repeatable).
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Serve an initialised data directory over HTTPS (or HTTP with --http).
    Serve {
        #[arg(long, env = "STAYOS_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to listen on; overrides `listen` in stayos.toml.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve plain HTTP (loopback tests and development only).
        #[arg(long)]
        http: bool,
    },
    /// Enroll this node with the hub, with a token from `stayos-hub enroll-token`.
    ///
    /// Works while `serve` runs on the same data directory; sync starts within seconds.
    /// Exit status 2 for input to correct (token, URL, CA file, already enrolled), 1 when the
    /// hub refused or could not be reached; nothing is stored unless the hub said yes.
    Enroll {
        #[arg(long, env = "STAYOS_DATA_DIR")]
        data_dir: PathBuf,
        /// The hub's base URL, e.g. https://hub.example.com:8443 (http:// only for tests).
        #[arg(long)]
        hub: String,
        /// The one-time token (ST1.…); may come from STAYOS_ENROLL_TOKEN instead, to keep it
        /// out of the process list.
        #[arg(long, env = "STAYOS_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
        /// PEM file of the CA that issued the hub's certificate; without it the certificate
        /// fingerprint in the token is pinned.
        #[arg(long)]
        hub_ca: Option<PathBuf>,
        /// Replace an earlier enrollment.
        #[arg(long)]
        force: bool,
    },
    /// Carry changes as a file (JSON Lines): export them, or import another site's.
    Changes {
        #[command(subcommand)]
        command: ChangesCommand,
    },
    /// Start a throw-away node with a demo property and print how to log in.
    /// Takes the same `STAYOS_*` overrides as `serve`; `--listen` wins over `STAYOS_LISTEN`.
    Demo {
        /// Where to listen [default: 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum ChangesCommand {
    /// Write this node's changes after a database version to a file (or standard output).
    /// Tables kept on the node (replication.toml scope "node": staff accounts with their
    /// password hashes and MFA secrets) are left out.
    Export {
        #[arg(long, env = "STAYOS_DATA_DIR")]
        data_dir: PathBuf,
        /// Only changes after this database version (0: everything).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        since: i64,
        /// The file to write; standard output when left out.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Merge a changes file: every line is checked (as changes pulled from the hub are), the
    /// good ones are merged in one transaction, and each refused line (not a change, a staff
    /// account, another property's row, an unknown column, ...) is named on stderr with its
    /// line number and kept in the sync quarantine (`GET /sync/quarantine`).
    ///
    /// Exits 0 when the file could be read, even if some lines were refused; non-zero only
    /// when nothing could be read at all (no such file, no database, or no line of the file
    /// is a change).
    Import {
        #[arg(long, env = "STAYOS_DATA_DIR")]
        data_dir: PathBuf,
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    edge_node::memory::return_large_allocations_to_the_system();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

async fn async_main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match err.downcast_ref::<EnrollError>() {
                Some(enroll) => std::process::ExitCode::from(enroll.exit_code()),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data_dir, property_name, admin_email, admin_name, tls_names } => {
            let admin_password = admin_password()?;
            let report = init::init(&init::InitOptions {
                data_dir: data_dir.clone(),
                property_name,
                admin_email,
                admin_name,
                admin_password,
                tls_names,
            })?;
            println!("Initialised {}", data_dir.display());
            println!("  property id: {}", report.property_id);
            println!("  site id:     {}", report.site_id);
            println!(
                "  LAN CA:      {} (install or pin it on the desk and POS devices)",
                report.ca_cert.display()
            );
            println!("Start it with: stayos-edge serve --data-dir {}", data_dir.display());
            Ok(())
        }
        Command::Serve { data_dir, listen, http } => {
            let mut config = Config::load(&data_dir)?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            logging::init(&config.log);
            serve(&data_dir, config, !http).await
        }
        Command::Enroll { data_dir, hub, token, hub_ca, force } => {
            let hub_ca_pem = match hub_ca {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    EnrollError::BadInput(format!("cannot read {}: {e}", path.display()))
                })?),
                None => None,
            };
            if hub.trim().to_ascii_lowercase().starts_with("http://") {
                eprintln!(
                    "warning: {hub} is plain HTTP: the link to the hub is not encrypted \
                     (use https:// outside tests)"
                );
            }
            let report =
                enroll::enroll(&EnrollOptions { data_dir, hub_url: hub, token, hub_ca_pem, force })
                    .await?;
            println!("Enrolled with {} as node {}", report.hub_url, report.node_id);
            println!("  property id:  {}", report.property_id);
            println!("  hub site id:  {}", report.hub_site_id);
            println!("A running `stayos-edge serve` starts syncing within a few seconds.");
            Ok(())
        }
        Command::Changes { command: ChangesCommand::Export { data_dir, since, output } } => {
            let report = changefile::export(&data_dir, since, output.as_deref())?;
            eprintln!(
                "exported {} changes (database versions {} to {}){}; {} changes of staff \
                 accounts (kept on this node) left out",
                report.changes,
                report.since + 1,
                report.until,
                output.map(|o| format!(" to {}", o.display())).unwrap_or_default(),
                report.left_out
            );
            Ok(())
        }
        Command::Changes { command: ChangesCommand::Import { data_dir, file } } => {
            let r = match changefile::import(&data_dir, &file) {
                Ok(r) => r,
                Err(err) => {
                    if let changefile::ChangeFileError::Empty { refused, .. } = &err {
                        report_refused(&file, refused);
                    }
                    return Err(err.into());
                }
            };
            report_refused(&file, &r.refused);
            println!(
                "imported {} changes from {}: {} applied, {} already known or superseded, {} held for a newer schema, {} lines refused (kept in the sync quarantine)",
                r.lines,
                file.display(),
                r.report.applied,
                r.report.ignored,
                r.report.held,
                r.refused.len()
            );
            Ok(())
        }
        Command::Demo { listen } => {
            let dir = tempfile_dir()?;
            let config = demo::config(listen)?;
            logging::init(&config.log);
            let report = demo::prepare(dir.path()).context("failed to create the demo property")?;
            let seeded = demo::seed_hotel(dir.path(), &report.property_id)
                .await
                .context("failed to seed the demo hotel")?;
            println!(
                "Seeded {}: {} rooms of {} types, {} guests, {} reservations, {} room blocks",
                demo::DEMO_PROPERTY,
                seeded.rooms,
                seeded.room_types,
                seeded.guests,
                seeded.reservations,
                seeded.room_blocks
            );
            let served = serve_with(dir.path(), config, false, |url| {
                println!();
                println!("StayOS demo is running at {url}/  (API docs: {url}/docs/)");
                println!("  log in as {} with password {}", demo::DEMO_EMAIL, demo::DEMO_PASSWORD);
                println!("  stop it with Ctrl-C; the demo data is thrown away");
                println!();
            })
            .await;
            drop(dir);
            served
        }
    }
}

/// Names each refused line of a changes file on stderr.
fn report_refused(file: &Path, refused: &[changefile::RefusedLine]) {
    for r in refused {
        eprintln!(
            "{}, line {}: refused ({}): {}",
            file.display(),
            r.line,
            r.kind.as_str(),
            r.reason
        );
    }
}

fn tempfile_dir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("stayos-demo-")
        .tempdir()
        .context("failed to create a temporary data directory")
}

async fn serve(data_dir: &Path, config: Config, tls: bool) -> anyhow::Result<()> {
    serve_with(data_dir, config, tls, |url| println!("stayos-edge listening on {url}")).await
}

async fn serve_with(
    data_dir: &Path,
    config: Config,
    tls: bool,
    announce: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let running = server::start(data_dir, config, tls).await?;
    let url = running.url();
    tracing::info!(%url, "serving");
    announce(&url);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
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

/// The owner's password for `init`: STAYOS_ADMIN_PASSWORD, or typed twice on a terminal.
fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("STAYOS_ADMIN_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("set STAYOS_ADMIN_PASSWORD, or run init on a terminal to type the owner's password");
    }
    let first =
        rpassword::prompt_password("Owner password: ").context("failed to read the password")?;
    let again = rpassword::prompt_password("Repeat it: ").context("failed to read the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}
