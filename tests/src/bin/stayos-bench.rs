//! `stayos-bench`: the benchmarks behind BENCHMARKS.md, as a command anyone can run.
//!
//! `cargo run --release -p tests --bin stayos-bench -- foundation` builds the release
//! `stayos-edge`, initialises a data directory, and measures: cold start of `serve` to a 200
//! from `/health` (HTTPS, the default), resident memory of an idle node, login latency with
//! argon2id (known account, wrong password, unknown e-mail), what throttling does to a
//! 1,000-attempt brute force, and authenticated `GET /auth/me` throughput with `wrk`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use edge_node::auth::throttle;
use serde_json::json;

const PASSWORD: &str = "plum-ferry-quantum-atlas";
const EMAIL: &str = "owner@bench.example";

fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "foundation".into());
    match which.as_str() {
        "foundation" => foundation(),
        other => bail!("unknown benchmark {other:?}; known: foundation"),
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
