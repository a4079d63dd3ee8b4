//! `stayos-bench sync [ingest|backlog|fleet|all]`: the issue-5 bars, measured against the
//! release `stayos-hub` on this machine's PostgreSQL and release `stayos-edge` processes.
//!
//! - `ingest`: demo hotels seeded into edge databases are pushed to the hub through its real
//!   HTTPS endpoint by their enrolled node credentials, several nodes at once; changes merged
//!   into PostgreSQL per second (wall clock from the first request to the last answer).
//! - `backlog`: a 300-room hotel (A) and a second property (B) sync, the hub stops, both run
//!   72 business hours through the HTTP API (arrivals checked in, departures checked out and
//!   their rooms cleaned, new bookings with new guest profiles, profile edits, end of day);
//!   the hub returns; time until both edges have nothing pending either way and hold the
//!   same chain-level profiles. Then propagation: a profile created at A, until B serves it.
//! - `fleet`: N simulated edge nodes (default 1,000; each enrolled with its own token, site
//!   and property) long-poll the hub and push a room change every 5 s and a chain-level
//!   profile change every 60 s, for `--seconds` (default 60); errors and hub memory.
//! - `hostile`: one enrolled node pushes random and hostile batches for `--seconds` (default
//!   600) while two honest properties sync: their propagation, nothing pending at the end,
//!   the hub's memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use crdt::protocol::{self, Batch, EnrollRequest, EnrollResponse, Pull, WireChange, WireValue};
use edge_node::demo::seed::HotelSpec;
use serde_json::{Value, json};
use tests::hub::{EdgeProcess, Hub, demo_dir, edge_rows, enroll_ok, node_credential, rss_kib};

struct Options {
    nodes: usize,
    /// `--seconds`; 0 when not given (each benchmark has its default).
    seconds: u64,
    ingest_nodes: usize,
    /// Every how many pushes a fleet node edits its chain-level profile (0: never).
    chain_every: u64,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options { nodes: 1000, seconds: 0, ingest_nodes: 2, chain_every: 12 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context(format!("{a} needs a value"));
        match a.as_str() {
            "--nodes" => o.nodes = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--ingest-nodes" => o.ingest_nodes = value()?.parse()?,
            "--chain-every" => o.chain_every = value()?.parse()?,
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(o)
}

pub fn run(args: Vec<String>) -> anyhow::Result<()> {
    let which = args.first().cloned().unwrap_or_else(|| "all".into());
    let o = options(args.get(1..).unwrap_or_default())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        println!("machine: {} cores, load {}", num_cpus(), loadavg());
        match which.as_str() {
            "ingest" => ingest(&o).await,
            "backlog" => backlog(&o).await,
            "fleet" => fleet(&o).await,
            "hostile" => hostile(&Options { seconds: o.seconds_or(600), ..o }).await,
            "all" => {
                ingest(&o).await?;
                backlog(&o).await?;
                fleet(&o).await
            }
            other => bail!(
                "unknown sync benchmark {other:?}; known: ingest, backlog, fleet, hostile, all"
            ),
        }
    })
}

impl Options {
    fn seconds_or(&self, default: u64) -> u64 {
        if self.seconds == 0 { default } else { self.seconds }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A client for the hub's own self-signed certificate. The bench measures the hub, not
/// certificate pinning (the edge pins; the tests check that).
fn hub_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(120))
        .build()?)
}

async fn push(
    client: &reqwest::Client,
    url: &str,
    credential: &str,
    body: Vec<u8>,
) -> anyhow::Result<protocol::PushAck> {
    let r = client
        .post(format!("{url}/v1/sync/push"))
        .bearer_auth(credential)
        .header("content-type", protocol::CONTENT_TYPE)
        .header("content-encoding", protocol::CONTENT_ENCODING)
        .body(body)
        .send()
        .await?;
    let status = r.status();
    if !status.is_success() {
        bail!("push answered {status}: {}", r.text().await.unwrap_or_default());
    }
    Ok(r.json().await?)
}

/// The node's own changes, as its agent pushes them, encoded, in batches of at most `rows`
/// rows.
fn encoded_batches(data_dir: &std::path::Path, rows: usize) -> (Vec<Vec<u8>>, u64) {
    let batches = tests::hub::outgoing_batches(data_dir, rows);
    let changes = batches.iter().map(|b| b.changes.len() as u64).sum();
    (batches.iter().map(protocol::encode).collect(), changes)
}

async fn ingest(o: &Options) -> anyhow::Result<()> {
    println!("\n## hub ingest: {} demo hotels pushed at once", o.ingest_nodes);
    let hub = Hub::start().await;
    let mut nodes = Vec::new();
    for i in 0..o.ingest_nodes {
        let spec = HotelSpec { seed: 0x5EED_0000 + i as u64, ..HotelSpec::demo() };
        let seeded = demo_dir(spec).await;
        enroll_ok(&hub, &seeded.data_dir, &seeded.property_id).await;
        let credential = node_credential(&seeded.data_dir);
        let (batches, changes) = encoded_batches(&seeded.data_dir, 2000);
        let bytes: usize = batches.iter().map(Vec::len).sum();
        println!(
            "node {i}: {changes} changes in {} batches, {:.1} MiB compressed",
            batches.len(),
            bytes as f64 / 1048576.0
        );
        nodes.push((seeded, credential, batches, changes));
    }
    let client = hub_client()?;
    let total: u64 = nodes.iter().map(|n| n.3).sum();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (_, credential, batches, _) in &nodes {
        let (client, url, credential, batches) =
            (client.clone(), hub.url.clone(), credential.clone(), batches.clone());
        tasks.push(tokio::spawn(async move {
            for body in batches {
                push(&client, &url, &credential, body).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let pg = hub.client().await;
    let cells: i64 = pg.query_one("SELECT count(*) FROM sync_cells", &[]).await?.get(0);
    println!(
        "| hub ingest | {total} changes | {secs:.2} s | **{:.0} changes/s** | {cells} cells stored |",
        total as f64 / secs
    );
    Ok(())
}

async fn login(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let r: Value = client
        .post(format!("{url}/auth/login"))
        .json(&json!({ "email": tests::OWNER_EMAIL, "password": tests::OWNER_PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    r["access_token"].as_str().map(str::to_string).context("no access token")
}

/// An edge serving over HTTP with a logged-in owner.
struct Desk {
    edge: EdgeProcess,
    client: reqwest::Client,
    token: String,
    property: String,
    rate: String,
    room_type: String,
}

impl Desk {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.edge.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or_default())
            }
            Err(e) => (0, json!({ "error": e.to_string() })),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn status(&self) -> Value {
        self.get("/sync/status").await.1
    }

    async fn new_guest(&self, n: usize) -> Option<String> {
        let (s, g) = self
            .post(
                "/guests",
                json!({ "property_id": self.property, "first_name": format!("Walk{n}"),
                        "last_name": "Backlog", "email": format!("walk{n}.{}@example.com", &self.property[..8]) }),
            )
            .await;
        (s == 201).then(|| g["id"].as_str().map(str::to_string)).flatten()
    }

    /// One business day: departures out (rooms cleaned), arrivals in, new bookings with new
    /// profiles and an edit of each, the revenue manager repricing the next year of every
    /// room type, end of day.
    async fn day(&self, n: usize, bookings: usize, room_types: &[String]) -> Day {
        let mut d = Day::default();
        let p = &self.property;
        let (_, deps) = self.get(&format!("/properties/{p}/departures")).await;
        for r in deps["items"].as_array().cloned().unwrap_or_default() {
            if r["status"] != "checked_in" {
                continue;
            }
            let id = r["id"].as_str().unwrap_or_default();
            d.requests += 1;
            if self.post(&format!("/reservations/{id}/check-out"), json!({})).await.0 == 200 {
                d.check_outs += 1;
            }
            if let Some(room) = r["room_id"].as_str() {
                d.requests += 1;
                self.call(
                    reqwest::Method::PUT,
                    &format!("/properties/{p}/rooms/{room}/status"),
                    Some(json!({ "status": "clean" })),
                )
                .await;
            }
        }
        let (_, arr) = self.get(&format!("/properties/{p}/arrivals")).await;
        for r in arr["items"].as_array().cloned().unwrap_or_default() {
            if r["status"] != "confirmed" {
                continue;
            }
            let id = r["id"].as_str().unwrap_or_default();
            d.requests += 1;
            if self.post(&format!("/reservations/{id}/check-in"), json!({})).await.0 == 200 {
                d.check_ins += 1;
            }
        }
        let (_, today) = self.get(&format!("/properties/{p}")).await;
        let date: jiff::civil::Date =
            today["business_date"].as_str().unwrap_or_default().parse().unwrap_or_default();
        for b in 0..bookings {
            let Some(guest) = self.new_guest(n * 10_000 + b).await else { continue };
            let from =
                date.checked_add(jiff::Span::new().days(30 + (b % 60) as i64)).unwrap_or(date);
            let to = from.checked_add(jiff::Span::new().days(2)).unwrap_or(from);
            let (status, _) = self
                .post(
                    "/reservations",
                    json!({ "property_id": p, "room_type_id": self.room_type, "rate_plan_id": self.rate,
                            "arrival": from.to_string(), "departure": to.to_string(), "adults": 2,
                            "guest_id": guest }),
                )
                .await;
            d.bookings += usize::from(status == 201);
            self.call(
                reqwest::Method::PUT,
                &format!("/guests/{guest}"),
                Some(json!({ "company": format!("Firm {b}") })),
            )
            .await;
            d.requests += 3;
        }
        let to = date.checked_add(jiff::Span::new().days(365)).unwrap_or(date);
        for t in room_types {
            d.requests += 1;
            let (status, body) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/properties/{p}/rate-plans/{}/prices", self.rate),
                    Some(
                        json!({ "room_type_id": t, "from": date.to_string(), "to": to.to_string(),
                                 "price_minor": 10_000 + 100 * n as i64 }),
                    ),
                )
                .await;
            if status == 200 {
                d.nights_repriced += body["nights"].as_u64().unwrap_or(0) as usize;
            }
        }
        d.requests += 1;
        d.end_of_day = self.post(&format!("/properties/{p}/end-of-day"), json!({})).await.0 == 200;
        d
    }
}

/// What one business day at a desk did.
#[derive(Debug, Default)]
struct Day {
    requests: usize,
    check_outs: usize,
    check_ins: usize,
    bookings: usize,
    nights_repriced: usize,
    end_of_day: bool,
}

async fn desk(seeded: &tests::hub::SeededDir) -> anyhow::Result<Desk> {
    let edge = EdgeProcess::start(&seeded.data_dir).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let token = login(&client, &edge.url).await?;
    Ok(Desk {
        edge,
        client,
        token,
        property: seeded.property_id.clone(),
        rate: seeded.inventory.flexible_rate_id.clone(),
        room_type: seeded.inventory.room_types[1].id.clone(),
    })
}

async fn wait_settled(desks: &[&Desk], limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut done = true;
        for d in desks {
            let s = d.status().await;
            done &= s["state"] == "online" && s["pending_push"] == 0 && s["pending_pull"] == 0;
        }
        if done {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            let states: Vec<Value> = futures_join(desks).await;
            bail!("not settled after {limit:?}: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn futures_join(desks: &[&Desk]) -> Vec<Value> {
    let mut out = Vec::new();
    for d in desks {
        out.push(d.status().await);
    }
    out
}

/// Changes written at a node and not yet acknowledged by the hub (its own writes).
fn pending_changes(data_dir: &std::path::Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(data_dir.join(edge_node::db::DB_FILE))?;
    let hub_site: String =
        conn.query_row("SELECT value FROM node_meta WHERE key = 'hub_site_id'", [], |r| r.get(0))?;
    let acked = crdt::peer_cursor(&conn, &hex_decode(&hub_site)?)?.acked;
    let site = crdt::site_id(&conn)?;
    let mut n = 0u64;
    crdt::for_each_change_between(&conn, acked, i64::MAX, crdt::Sites::Only(&site), |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

fn hex_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).context("odd hex")?, 16).map_err(Into::into))
        .collect()
}

async fn backlog(_o: &Options) -> anyhow::Result<()> {
    println!("\n## backlog: a 300-room hotel's 72-hour outage, then propagation A → hub → B");
    let mut hub = Hub::start().await;
    let big = HotelSpec {
        rooms: 300,
        guests: 5_000,
        days_back: 30,
        days_ahead: 120,
        ..HotelSpec::demo()
    };
    let small =
        HotelSpec { rooms: 60, guests: 1_000, days_back: 30, days_ahead: 60, ..HotelSpec::demo() };
    let (sa, sb) = (demo_dir(big).await, demo_dir(small).await);
    enroll_ok(&hub, &sa.data_dir, &sa.property_id).await;
    enroll_ok(&hub, &sb.data_dir, &sb.property_id).await;
    let (a, b) = (desk(&sa).await?, desk(&sb).await?);
    let first = wait_settled(&[&a, &b], Duration::from_secs(600)).await?;
    println!("initial sync of both seeded hotels: {:.1} s", first.as_secs_f64());

    hub.stop().await;
    let started = Instant::now();
    let mut requests = 0;
    let types = |s: &tests::hub::SeededDir| -> Vec<String> {
        s.inventory.room_types.iter().map(|t| t.id.clone()).collect()
    };
    let (types_a, types_b) = (types(&sa), types(&sb));
    for day in 0..3 {
        for (name, desk, bookings, types) in [("A", &a, 150, &types_a), ("B", &b, 60, &types_b)] {
            let d = desk.day(day, bookings, types).await;
            println!("day {} at {name}: {d:?}", day + 1);
            requests += d.requests;
        }
    }
    println!("72 hours offline: {requests} requests in {:.1} s", started.elapsed().as_secs_f64());
    let (pa, pb) = (pending_changes(&sa.data_dir)?, pending_changes(&sb.data_dir)?);
    println!("backlog: {pa} changes at A, {pb} at B to push ({} in all)", pa + pb);
    let s = a.status().await;
    println!("A while offline: state {}, pending_push {}", s["state"], s["pending_push"]);

    hub.run().await;
    let returned = Instant::now();
    let took = wait_settled(&[&a, &b], Duration::from_secs(600)).await?;
    loop {
        let (ga, gb) =
            (edge_rows(&sa.data_dir, "guests", None), edge_rows(&sb.data_dir, "guests", None));
        if ga == gb {
            break;
        }
        if returned.elapsed() > Duration::from_secs(600) {
            bail!("guests never converged");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = returned.elapsed();
    println!(
        "| 72-hour backlog, both ways | {} changes | settled {:.2} s | profiles identical at A and B {:.2} s |",
        pa + pb,
        took.as_secs_f64(),
        converged.as_secs_f64()
    );

    // Propagation online: a profile created at A, until B serves it.
    let mut ms = Vec::new();
    for i in 0..200 {
        let Some(id) = a.new_guest(900_000 + i).await else { bail!("guest creation failed") };
        let t = Instant::now();
        loop {
            let (s, _) = b.get(&format!("/guests/{id}")).await;
            if s == 200 {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("profile {id} never reached B");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "| propagation A → hub → B | {} samples | p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default()
    );
    Ok(())
}

/// One simulated node of the fleet: its credential, site, property and write counter.
struct SimNode {
    credential: String,
    site: Vec<u8>,
    property: String,
    version: i64,
    guest_version: i64,
    phase: u64,
}

impl SimNode {
    fn change(
        &self,
        table: &str,
        pk: &str,
        cid: &str,
        val: WireValue,
        col_version: i64,
        seq: i64,
    ) -> WireChange {
        WireChange {
            table: table.into(),
            pk: crdt::pack(&[crdt::Value::Text(pk.into())]).expect("pack"),
            cid: cid.into(),
            val,
            col_version,
            db_version: self.version,
            site_id: self.site.clone(),
            cl: 1,
            seq,
        }
    }

    /// The next write: a room status change (property scope), or every `chain_every`-th time
    /// an edit of the node's chain-level guest profile (which every other node then pulls).
    fn next_batch(&mut self, n: u64, chain_every: u64) -> Batch {
        self.version += 1;
        // Nodes are spread over the cycle, so chain-level edits arrive all the time.
        let changes = if chain_every > 0 && (n + self.phase).is_multiple_of(chain_every) {
            self.guest_version += 1;
            let id = format!("fleet-guest-{}", self.property);
            vec![
                self.change(
                    "guests",
                    &id,
                    "property_id",
                    WireValue::Text(self.property.clone()),
                    1,
                    0,
                ),
                self.change(
                    "guests",
                    &id,
                    "last_name",
                    WireValue::Text(format!("Edit {n}")),
                    self.guest_version,
                    1,
                ),
            ]
        } else {
            let id = format!("fleet-room-{}-{}", self.property, n % 50);
            vec![
                self.change(
                    "rooms",
                    &id,
                    "property_id",
                    WireValue::Text(self.property.clone()),
                    1,
                    0,
                ),
                self.change(
                    "rooms",
                    &id,
                    "status",
                    WireValue::Text(format!("s{n}")),
                    n as i64 + 1,
                    1,
                ),
            ]
        };
        Batch {
            site_id: self.site.clone(),
            schema_version: 2,
            since: self.version - 1,
            until: self.version,
            changes,
        }
    }
}

async fn fleet(o: &Options) -> anyhow::Result<()> {
    println!(
        "\n## fleet: {} simulated nodes against one hub for {} s, a chain-level edit every {} pushes",
        o.nodes,
        o.seconds_or(60),
        o.chain_every
    );
    let hub = Hub::start().await;
    let client = hub_client()?;
    let started = Instant::now();
    let mut nodes = Vec::new();
    for i in 0..o.nodes {
        let property = format!("{:08x}-f1ee-7000-8000-{:012x}", i, i);
        let token = hub.enroll_token(&property).await;
        let mut site = (i as u64).to_be_bytes().to_vec();
        site.extend_from_slice(&(started.elapsed().as_nanos() as u64 | 1).to_be_bytes());
        let req = EnrollRequest {
            token,
            site_id: site.iter().map(|b| format!("{b:02x}")).collect(),
            property_id: property.clone(),
            name: format!("sim-{i}"),
        };
        let r = client.post(format!("{}/v1/enroll", hub.url)).json(&req).send().await?;
        if !r.status().is_success() {
            bail!("enroll {i}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        let e: EnrollResponse = r.json().await?;
        nodes.push(SimNode {
            credential: e.credential,
            site,
            property,
            version: 0,
            guest_version: 0,
            phase: i as u64,
        });
    }
    println!("enrolled {} nodes in {:.1} s", o.nodes, started.elapsed().as_secs_f64());

    let errors = Arc::new(AtomicU64::new(0));
    let pulled = Arc::new(AtomicU64::new(0));
    let pushes = Arc::new(tokio::sync::Mutex::new(Vec::<f64>::new()));
    let deadline = Instant::now() + Duration::from_secs(o.seconds_or(60));
    let chain_every = o.chain_every;
    let mut tasks = Vec::new();
    for (i, mut node) in nodes.into_iter().enumerate() {
        let (client, url) = (client.clone(), hub.url.clone());
        let (errors, pulled, pushes) = (errors.clone(), pulled.clone(), pushes.clone());
        let credential = node.credential.clone();
        // Pull: long-poll from the cursor, all the time.
        let (c2, u2, e2, cred2) = (client.clone(), url.clone(), errors.clone(), credential.clone());
        tasks.push(tokio::spawn(async move {
            let mut since = 0i64;
            while Instant::now() < deadline {
                let r = c2
                    .get(format!("{u2}/v1/sync/pull?since={since}&limit=5000&wait=20"))
                    .bearer_auth(&cred2)
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(body) => {
                            match protocol::decode::<Pull>(&body, protocol::MAX_DECODED_BYTES) {
                                Ok(p) => {
                                    since = p.batch.until;
                                    pulled
                                        .fetch_add(p.batch.changes.len() as u64, Ordering::Relaxed);
                                    true
                                }
                                Err(_) => false,
                            }
                        }
                        Err(_) => false,
                    },
                    _ => false,
                };
                if !ok {
                    e2.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }));
        // Push: a write every 5 s, the nodes spread over the interval.
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i as u64 * 5000) / 1000)).await;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let body = protocol::encode(&node.next_batch(n, chain_every));
                let t = Instant::now();
                match push(&client, &url, &credential, body).await {
                    Ok(ack) if ack.received == node.version => {
                        pushes.lock().await.push(t.elapsed().as_secs_f64() * 1000.0)
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }
    let pid = hub.pid().context("hub pid")?;
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(40), t).await;
    }
    peak = peak.max(rss_kib(pid).unwrap_or(0));
    let mut ms = pushes.lock().await.clone();
    ms.sort_by(f64::total_cmp);
    let metrics = client.get(format!("{}/metrics", hub.url)).send().await?.text().await?;
    let merged: BTreeMap<&str, &str> = metrics
        .lines()
        .filter(|l| l.starts_with("stayos_hub_changes_merged_total"))
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    // The hub's own view: mean time of a push request and of a merge inside it.
    let mean = |name: &str, filter: &str| -> f64 {
        let pick = |suffix: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(&format!("{name}_{suffix}")) && l.contains(filter))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        pick("sum") / pick("count") * 1000.0
    };
    println!(
        "hub side: push request mean {:.2} ms, merge mean {:.2} ms",
        mean("http_request_duration_seconds", "/v1/sync/push"),
        mean("hub_merge_duration_seconds", "")
    );
    println!(
        "| {} nodes, {} s | {} pushes, p50 {:.1} ms, p99 {:.1} ms | {} changes pulled | {} errors | hub peak RSS {:.0} MiB | {merged:?} |",
        o.nodes,
        o.seconds_or(60),
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        pulled.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        peak as f64 / 1024.0
    );
    Ok(())
}

/// A hostile batch from node `site`: `n` changes, each of one kind an honest node never
/// sends — a table or column that does not exist, a clock past 2^53, another property's room
/// nights and rooms, a change in another node's name, a staff row, garbage keys — with now
/// and then an honest chain-level change of its own in between.
fn hostile_batch(
    rng: &mut impl rand::Rng,
    site: &[u8],
    victim_site: &[u8],
    victim_rooms: &[String],
    guests: &[String],
    since: i64,
    n: usize,
) -> Batch {
    let text = |s: &str| crdt::Value::Text(s.into());
    let mut changes = Vec::with_capacity(n);
    for i in 0..n {
        let guest = &guests[rng.random_range(0..guests.len())];
        let room = &victim_rooms[rng.random_range(0..victim_rooms.len())];
        let night = format!("2027-{:02}-{:02}", rng.random_range(1..=12), rng.random_range(1..=28));
        let mut c = WireChange {
            table: "guests".into(),
            pk: crdt::pack(&[text(guest)]).unwrap_or_default(),
            cid: "notes".into(),
            val: WireValue::Text(format!("junk {i}")),
            col_version: rng.random_range(1..1000),
            db_version: since + 1,
            site_id: site.to_vec(),
            cl: 1,
            seq: i as i64,
        };
        match rng.random_range(0..9) {
            0 => c.cid = format!("zz{}", rng.random_range(0..100)),
            1 => {
                c.table = format!("junk_{}", rng.random_range(0..1000));
                c.pk = crdt::pack(&[text(&format!("{i}"))]).unwrap_or_default();
            }
            2 => c.col_version = i64::MAX - rng.random_range(0..10),
            3 => c.cl = crdt::MAX_CLOCK + rng.random_range(1..10),
            4 => {
                c.table = "room_nights".into();
                c.pk = crdt::pack(&[text(room), text(&night)]).unwrap_or_default();
                c.cid = "reservation_id".into();
            }
            5 => {
                c.table = "rooms".into();
                c.pk = crdt::pack(&[text(room)]).unwrap_or_default();
                c.cid = "status".into();
                c.val = WireValue::Text("out_of_order".into());
            }
            6 => c.site_id = victim_site.to_vec(),
            7 => {
                c.table = "staff_properties".into();
                c.cid = "role".into();
                c.val = WireValue::Text("owner".into());
            }
            _ => {
                let len = rng.random_range(0..24);
                c.pk = (0..len).map(|_| rng.random::<u8>()).collect();
            }
        }
        changes.push(c);
    }
    Batch { site_id: site.to_vec(), schema_version: 1, since, until: since + 1, changes }
}

/// One enrolled node pushes random and hostile batches (and now and then a body that is not
/// a batch at all) as fast as the hub takes them, for `--seconds` (default 600); meanwhile two
/// honest properties' profiles propagate A → hub → B, sampled every 250 ms. At the end both
/// honest nodes must have nothing pending either way.
async fn hostile(o: &Options) -> anyhow::Result<()> {
    println!(
        "\n## hostile: one node pushes hostile batches for {} s beside two honest ones",
        o.seconds
    );
    let hub = Hub::start().await;
    let small =
        HotelSpec { rooms: 40, guests: 500, days_back: 10, days_ahead: 30, ..HotelSpec::demo() };
    let (sa, sb) = (
        demo_dir(HotelSpec { seed: 0xA, ..small.clone() }).await,
        demo_dir(HotelSpec { seed: 0xB, ..small.clone() }).await,
    );
    let sc = demo_dir(HotelSpec { seed: 0xC, ..small }).await;
    for s in [&sa, &sb, &sc] {
        enroll_ok(&hub, &s.data_dir, &s.property_id).await;
    }
    let (a, b) = (desk(&sa).await?, desk(&sb).await?);
    wait_settled(&[&a, &b], Duration::from_secs(600)).await?;
    let site = |d: &std::path::Path| -> anyhow::Result<Vec<u8>> {
        Ok(crdt::site_id(&rusqlite::Connection::open(d.join(edge_node::db::DB_FILE))?)?)
    };
    let (site_a, site_c) = (site(&sa.data_dir)?, site(&sc.data_dir)?);
    let ids = |table: &str, n: usize| -> Vec<String> {
        edge_rows(&sa.data_dir, table, None)
            .values()
            .filter_map(|row| row["id"].as_str().map(String::from))
            .take(n)
            .collect()
    };
    let (rooms_a, guests) = (ids("rooms", usize::MAX), ids("guests", 200));
    let credential = node_credential(&sc.data_dir);
    let client = hub_client()?;
    let url = hub.url.clone();
    let pid = hub.pid().context("hub pid")?;
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let hostile_task = {
        let (client, url, credential) = (client.clone(), url.clone(), credential.clone());
        tokio::spawn(async move {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x5EED);
            let (mut since, mut pushes, mut changes) = (0i64, 0u64, 0u64);
            let mut answers: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < deadline {
                let body = if pushes % 50 == 49 {
                    b"not a batch".to_vec()
                } else {
                    let n = rand::Rng::random_range(&mut rng, 1..2000);
                    changes += n as u64;
                    protocol::encode(&hostile_batch(
                        &mut rng, &site_c, &site_a, &rooms_a, &guests, since, n,
                    ))
                };
                let r = client
                    .post(format!("{url}/v1/sync/push"))
                    .bearer_auth(&credential)
                    .header("content-type", protocol::CONTENT_TYPE)
                    .header("content-encoding", protocol::CONTENT_ENCODING)
                    .body(body)
                    .send()
                    .await;
                let key = match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        if status == 200
                            && let Ok(ack) = r.json::<protocol::PushAck>().await
                        {
                            since = ack.received;
                        }
                        status.to_string()
                    }
                    Err(e) => format!("error: {e}"),
                };
                *answers.entry(key).or_default() += 1;
                pushes += 1;
            }
            (pushes, changes, answers)
        })
    };
    let mut ms = Vec::new();
    let mut peak = 0u64;
    let mut n = 0;
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        let Some(id) = a.new_guest(700_000 + n).await else { bail!("guest creation failed at A") };
        n += 1;
        let t = Instant::now();
        loop {
            if b.get(&format!("/guests/{id}")).await.0 == 200 {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("profile {id} never reached B");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (pushes, changes, answers) = hostile_task.await?;
    peak = peak.max(rss_kib(pid).unwrap_or(0));
    let settled = wait_settled(&[&a, &b], Duration::from_secs(60)).await?;
    ms.sort_by(f64::total_cmp);
    let db = hub.client().await;
    let quarantined: i64 = db.query_one("SELECT count(*) FROM sync_quarantine", &[]).await?.get(0);
    println!(
        "| hostile node, {} s | {pushes} pushes, {changes} changes, answers {answers:?}, {quarantined} quarantined rows kept | A → B {} samples: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | A and B settled {:.2} s after | hub peak RSS {:.0} MiB |",
        o.seconds,
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default(),
        settled.as_secs_f64(),
        peak as f64 / 1024.0
    );
    Ok(())
}
