//! The sync protocol between an edge node and the hub, shared by both ends so they cannot
//! drift apart.
//!
//! - Change batches travel as postcard, compressed with zstd ([`encode`] / [`decode`]): the
//!   same fields as a [`Changeset`] (DESIGN.md: "the network protocol may be binary but
//!   carries the same fields"). [`decode`] bounds the decompressed size, so a small hostile
//!   body cannot expand into gigabytes; [`decode_bounded`] (the hub's push) also bounds it by
//!   the body's own size, so a small body cannot expand into hundreds of megabytes either.
//! - The small control messages (hello, acknowledgements, enrollment) are JSON.
//! - [`Scopes`]: how each replicated table syncs — owned by one property, shared by the
//!   chain, or kept on the node — read from `migrations/edge/replication.toml`.
//!
//! Endpoints (hub side, all under `/v1`):
//! - `POST /v1/enroll` — [`EnrollRequest`] → [`EnrollResponse`].
//! - `GET /v1/sync/hello` — [`Hello`]: where the hub is with this node.
//! - `POST /v1/sync/push` — a [`Batch`] of the node's own changes → [`PushAck`].
//! - `GET /v1/sync/pull?since=V&limit=N&wait=S` — a [`Pull`]: everything after hub version
//!   `V` for the node's property and the chain-level tables, waiting up to `S` seconds for
//!   something new when there is nothing yet.

use std::collections::BTreeMap;
use std::io::Read;

use rusqlite::types::Value as SqlValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::changes::Change;
use crate::merge::Changeset;

/// Media type of an encoded batch body.
pub const CONTENT_TYPE: &str = "application/vnd.stayos.changes";
/// Content encoding of an encoded batch body.
pub const CONTENT_ENCODING: &str = "zstd";
/// The largest decompressed message either end accepts.
pub const MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;
/// The largest decoded push batch the hub accepts. An edge's batch is at most 2,000 rows of
/// whole versions, a few megabytes; this leaves room for a version that is much larger.
pub const MAX_PUSH_DECODED_BYTES: usize = 32 * 1024 * 1024;
/// How many times its compressed size a push batch may decode to (beyond
/// [`PUSH_RATIO_FREE_BYTES`]). Change batches compress 5–15×; a decompression bomb
/// compresses thousands of times.
pub const MAX_PUSH_RATIO: usize = 64;
/// What any push body may decode to whatever its ratio, so that a small, very repetitive
/// honest batch is never refused for its ratio alone.
pub const PUSH_RATIO_FREE_BYTES: usize = 1024 * 1024;
/// The header by which a node authenticates: `Authorization: Bearer <credential>`.
pub const CREDENTIAL_PREFIX: &str = "Bearer ";

/// A column value as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&SqlValue> for WireValue {
    fn from(v: &SqlValue) -> Self {
        match v {
            SqlValue::Null => Self::Null,
            SqlValue::Integer(i) => Self::Integer(*i),
            SqlValue::Real(f) => Self::Real(*f),
            SqlValue::Text(s) => Self::Text(s.clone()),
            SqlValue::Blob(b) => Self::Blob(b.clone()),
        }
    }
}

impl From<WireValue> for SqlValue {
    fn from(v: WireValue) -> Self {
        match v {
            WireValue::Null => Self::Null,
            WireValue::Integer(i) => Self::Integer(i),
            WireValue::Real(f) => Self::Real(f),
            WireValue::Text(s) => Self::Text(s),
            WireValue::Blob(b) => Self::Blob(b),
        }
    }
}

/// One change, with `crsql_changes`' fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireChange {
    pub table: String,
    pub pk: Vec<u8>,
    pub cid: String,
    pub val: WireValue,
    pub col_version: i64,
    pub db_version: i64,
    pub site_id: Vec<u8>,
    pub cl: i64,
    pub seq: i64,
}

impl From<&Change> for WireChange {
    fn from(c: &Change) -> Self {
        Self {
            table: c.table.clone(),
            pk: c.pk.clone(),
            cid: c.cid.clone(),
            val: (&c.val).into(),
            col_version: c.col_version,
            db_version: c.db_version,
            site_id: c.site_id.clone(),
            cl: c.cl,
            seq: c.seq,
        }
    }
}

impl From<WireChange> for Change {
    fn from(c: WireChange) -> Self {
        Self {
            table: c.table,
            pk: c.pk,
            cid: c.cid,
            val: c.val.into(),
            col_version: c.col_version,
            db_version: c.db_version,
            site_id: c.site_id,
            cl: c.cl,
            seq: c.seq,
        }
    }
}

/// A batch of changes from one sender: a [`Changeset`] on the wire. `since < version <=
/// until` in the sender's versions; a batch never splits one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub site_id: Vec<u8>,
    pub schema_version: i64,
    pub since: i64,
    pub until: i64,
    pub changes: Vec<WireChange>,
}

impl From<&Changeset> for Batch {
    fn from(s: &Changeset) -> Self {
        Self {
            site_id: s.site_id.clone(),
            schema_version: s.schema_version,
            since: s.since,
            until: s.until,
            changes: s.changes.iter().map(WireChange::from).collect(),
        }
    }
}

impl From<Batch> for Changeset {
    fn from(b: Batch) -> Self {
        Self {
            site_id: b.site_id,
            schema_version: b.schema_version,
            since: b.since,
            until: b.until,
            changes: b.changes.into_iter().map(Change::from).collect(),
        }
    }
}

/// The hub's answer to a pull: a batch in the hub's versions (`site_id` is the hub's), and
/// whether more is waiting beyond it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    pub batch: Batch,
    /// More changes wait after `batch.until`; pull again at once.
    pub more: bool,
    /// How many changes for this node the hub holds after `batch.until` (0 when caught up).
    pub remaining: u64,
}

/// `GET /v1/sync/hello`: where the hub stands with the asking node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The hub's site id (hex, 16 bytes): the peer an edge keeps its cursors for.
    pub hub_site_id: String,
    /// The newest replicated schema version the hub knows.
    pub schema_version: i64,
    pub node_id: String,
    pub property_id: String,
    /// The node's own version up to which the hub has durably stored its changes.
    pub received: i64,
    /// The hub's newest version.
    pub head: i64,
    /// The newest entry of the node's own audit log the hub has stored: the node checks its
    /// chain still reaches it, so deleting the newest entries is detected.
    #[serde(default)]
    pub audit_anchor: Option<AuditAnchor>,
}

/// An audit-log entry a node's chain must still hold: its `seq` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: String,
}

/// `POST /v1/sync/push` answer: the node's version up to which the hub has durably stored
/// every change (the node acknowledges its changes up to here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    pub received: i64,
    pub applied: u64,
    pub ignored: u64,
    /// Changes the hub refused and keeps in its quarantine with their reasons (the rest of
    /// the batch was merged, and `received` moved past them).
    #[serde(default)]
    pub quarantined: u64,
    /// Changes of a newer edge schema than the hub's, kept until the hub is upgraded.
    #[serde(default)]
    pub held: u64,
}

/// `POST /v1/enroll` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The whole token `stayos-hub enroll-token` printed.
    pub token: String,
    /// The node's site id (hex, 16 bytes).
    pub site_id: String,
    /// The property the node serves; must be the token's.
    pub property_id: String,
    /// A label for the hub's node list (host name).
    #[serde(default)]
    pub name: String,
}

/// `POST /v1/enroll` answer. `credential` is shown once; the hub keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub node_id: String,
    pub credential: String,
    pub property_id: String,
    pub hub_site_id: String,
}

/// An enrollment token: `ST1.<secret>.<sha256 of the hub's certificate, hex, or empty>`.
/// The fingerprint lets `stayos-edge enroll` pin the hub's certificate on first contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollToken {
    pub secret: String,
    pub cert_sha256: Option<String>,
}

impl EnrollToken {
    pub fn format(&self) -> String {
        format!("ST1.{}.{}", self.secret, self.cert_sha256.as_deref().unwrap_or(""))
    }

    pub fn parse(token: &str) -> Result<Self, ProtocolError> {
        let bad = |why: &str| ProtocolError::Token(why.to_string());
        let mut parts = token.trim().split('.');
        if parts.next() != Some("ST1") {
            return Err(bad("it does not start with ST1."));
        }
        let secret = parts.next().filter(|s| !s.is_empty()).ok_or_else(|| bad("no secret"))?;
        if !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("the secret has characters a token never has"));
        }
        let fp = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return Err(bad("too many parts"));
        }
        let cert_sha256 = if fp.is_empty() {
            None
        } else if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(fp.to_ascii_lowercase())
        } else {
            return Err(bad("the certificate fingerprint is not 64 hex digits"));
        };
        Ok(Self { secret: secret.to_string(), cert_sha256 })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the body is not zstd-compressed postcard: {0}")]
    Encoding(String),
    #[error("the body decompresses to more than {0} bytes")]
    TooLarge(usize),
    #[error(
        "the body decompresses to more than {ratio} times its compressed size ({compressed} \
         bytes); a change batch never compresses that well"
    )]
    Ratio { ratio: usize, compressed: usize },
    #[error("not a StayOS enrollment token: {0}")]
    Token(String),
    #[error("replication.toml: {0}")]
    Scopes(String),
}

/// Encodes a message: postcard, then zstd.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    thread_local! {
        // A compression context costs megabytes of tables to set up: one per thread, reused
        // (a hub answering thousands of pulls a second spent 7 % of its time creating them).
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let raw = postcard::to_allocvec(msg).expect("serialising into a Vec cannot fail");
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some(c) => c,
            None => slot.insert(
                zstd::bulk::Compressor::new(1).expect("a zstd context at level 1 can be made"),
            ),
        };
        compressor.compress(&raw).expect("zstd compression of a buffer cannot fail")
    })
}

/// Decodes a message [`encode`] made, refusing one that decompresses to more than `limit`
/// bytes.
pub fn decode<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, ProtocolError> {
    let decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|e| ProtocolError::Encoding(e.to_string()))?;
    let mut raw = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| ProtocolError::Encoding(e.to_string()))?;
    if raw.len() > limit {
        return Err(ProtocolError::TooLarge(limit));
    }
    postcard::from_bytes(&raw).map_err(|e| ProtocolError::Encoding(e.to_string()))
}

/// The bounds [`decode_bounded`] holds a body to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeBounds {
    /// The most bytes any body may decode to.
    pub max_bytes: usize,
    /// The most times its compressed size a body may decode to, beyond `ratio_free_bytes`.
    pub max_ratio: usize,
    /// What a body may decode to whatever its ratio.
    pub ratio_free_bytes: usize,
}

impl DecodeBounds {
    /// The hub's bounds for a push batch.
    pub const PUSH: DecodeBounds = DecodeBounds {
        max_bytes: MAX_PUSH_DECODED_BYTES,
        max_ratio: MAX_PUSH_RATIO,
        ratio_free_bytes: PUSH_RATIO_FREE_BYTES,
    };

    /// The most bytes a body of `compressed` bytes may decode to: what a receiver must be
    /// ready to hold for it.
    pub fn decoded_limit(&self, compressed: usize) -> usize {
        compressed.saturating_mul(self.max_ratio).max(self.ratio_free_bytes).min(self.max_bytes)
    }
}

/// Decodes a message [`encode`] made, inflating it as a stream that stops one byte past
/// [`DecodeBounds::decoded_limit`] of the body's size: a body that would decode to more is
/// refused ([`ProtocolError::TooLarge`] past `max_bytes`, [`ProtocolError::Ratio`] past the
/// ratio) having cost at most that much memory, however far it would have expanded.
pub fn decode_bounded<T: DeserializeOwned>(
    body: &[u8],
    bounds: &DecodeBounds,
) -> Result<T, ProtocolError> {
    let limit = bounds.decoded_limit(body.len());
    let decoder = zstd::stream::read::Decoder::new(body)
        .map_err(|e| ProtocolError::Encoding(e.to_string()))?;
    let mut raw = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| ProtocolError::Encoding(e.to_string()))?;
    if raw.len() > limit {
        return Err(if limit >= bounds.max_bytes {
            ProtocolError::TooLarge(bounds.max_bytes)
        } else {
            ProtocolError::Ratio { ratio: bounds.max_ratio, compressed: body.len() }
        });
    }
    postcard::from_bytes(&raw).map_err(|e| ProtocolError::Encoding(e.to_string()))
}

/// How a replicated table syncs with the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Rows belong to one property: the first node to write a row owns it for its property;
    /// only that property's nodes may change it and only they pull it.
    Property,
    /// Chain-level records (guest profiles, loyalty): any enrolled node may write them and
    /// every node pulls them.
    Chain,
    /// Replicated on the node (captured, exportable by file) but never sent to the hub.
    Node,
}

/// The scope of every replicated table, from `migrations/edge/replication.toml`:
///
/// ```toml
/// [tables]
/// reservations = "property"
/// guests = "chain"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    tables: BTreeMap<String, Scope>,
    owners: BTreeMap<String, OwnedBy>,
}

/// How a property-scope row names the property it belongs to (`[owners]` of
/// replication.toml). Ownership is derived from the row itself, never from whoever wrote it
/// first, so a node cannot claim rows of another property by writing them before it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedBy {
    /// A column of the row holds the property's id (`"property_id"`; `"id"` for
    /// `properties` itself, whose key is the property).
    Column(String),
    /// A key column of the row references a row of another property-scope table, whose
    /// property this row shares (`"room_id -> rooms"`: a room night is its room's).
    Parent { column: String, table: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopesFile {
    tables: BTreeMap<String, Scope>,
    #[serde(default)]
    owners: BTreeMap<String, String>,
}

impl Scopes {
    /// Parses replication.toml. Every property-scope table must say how its rows name
    /// their property, a parent must be a property-scope table with its own owner column
    /// (one step, no chains), and other scopes have no owner.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let bad = |why: String| ProtocolError::Scopes(why);
        let file: ScopesFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut owners = BTreeMap::new();
        for (table, spec) in &file.owners {
            if file.tables.get(table) != Some(&Scope::Property) {
                return Err(bad(format!("owners.{table}: not a property-scope table")));
            }
            let owned = match spec.split_once("->") {
                None => OwnedBy::Column(spec.trim().to_string()),
                Some((column, parent)) => OwnedBy::Parent {
                    column: column.trim().to_string(),
                    table: parent.trim().to_string(),
                },
            };
            owners.insert(table.clone(), owned);
        }
        for (table, scope) in &file.tables {
            if *scope == Scope::Property && !owners.contains_key(table) {
                return Err(bad(format!("owners: property-scope table {table} has no owner")));
            }
        }
        for (table, owned) in &owners {
            if let OwnedBy::Parent { table: parent, .. } = owned
                && !matches!(owners.get(parent), Some(OwnedBy::Column(_)))
            {
                return Err(bad(format!(
                    "owners.{table}: parent {parent} is not a property-scope table with an \
                     owner column"
                )));
            }
        }
        Ok(Self { tables: file.tables, owners })
    }

    pub fn get(&self, table: &str) -> Option<Scope> {
        self.tables.get(table).copied()
    }

    /// How rows of a property-scope table name their property.
    pub fn owner(&self, table: &str) -> Option<&OwnedBy> {
        self.owners.get(table)
    }

    /// Every replicated table with its scope, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Scope)> {
        self.tables.iter().map(|(t, s)| (t.as_str(), *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_oversized_or_garbage_bodies_are_refused() {
        let batch = Batch {
            site_id: vec![7; 16],
            schema_version: 2,
            since: 3,
            until: 9,
            changes: vec![WireChange {
                table: "rooms".into(),
                pk: vec![1, 0x0B, 3, b'1', b'0', b'1'],
                cid: "status".into(),
                val: WireValue::Text("clean".repeat(1000)),
                col_version: 1,
                db_version: 4,
                site_id: vec![7; 16],
                cl: 1,
                seq: 0,
            }],
        };
        let body = encode(&batch);
        assert!(body.len() < 200, "repetitive text compresses: {} bytes", body.len());
        assert_eq!(decode::<Batch>(&body, 1 << 20).expect("decode"), batch);
        assert!(matches!(decode::<Batch>(&body, 100), Err(ProtocolError::TooLarge(100))));
        assert!(matches!(decode::<Batch>(b"not zstd", 1 << 20), Err(ProtocolError::Encoding(_))));
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

    #[test]
    fn bounded_decoding_refuses_bombs_by_ratio_and_size_and_takes_honest_batches() {
        let bounds = DecodeBounds::PUSH;
        // 256 MiB of zeros compress to a few kilobytes: refused for the ratio, and the
        // refusal says how far it may expand.
        let bomb = zeros_compressed(256 << 20);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let err = decode_bounded::<Batch>(&bomb, &bounds).expect_err("a bomb");
        assert!(matches!(err, ProtocolError::Ratio { ratio: 64, .. }), "{err}");
        assert!(err.to_string().contains("64 times"), "{err}");
        // The decoded limit of that body is its ratio-free allowance, not 256 MiB.
        assert_eq!(bounds.decoded_limit(bomb.len()), PUSH_RATIO_FREE_BYTES);
        // Past the absolute limit even at a modest ratio: TooLarge.
        let small = DecodeBounds { max_bytes: 4096, max_ratio: 1_000_000, ratio_free_bytes: 0 };
        let err = decode_bounded::<Batch>(&zeros_compressed(8192), &small).expect_err("big");
        assert!(matches!(err, ProtocolError::TooLarge(4096)), "{err}");
        // A real batch decodes the same as with `decode`, however well it compresses (it
        // is under the ratio-free allowance).
        let batch = Batch {
            site_id: vec![7; 16],
            schema_version: 2,
            since: 0,
            until: 1,
            changes: vec![WireChange {
                table: "rooms".into(),
                pk: vec![1, 0x0B, 3, b'1', b'0', b'1'],
                cid: "notes".into(),
                val: WireValue::Text("x".repeat(100_000)),
                col_version: 1,
                db_version: 1,
                site_id: vec![7; 16],
                cl: 1,
                seq: 0,
            }],
        };
        let body = encode(&batch);
        assert!(body.len() * MAX_PUSH_RATIO < 100_000, "compresses beyond the ratio");
        assert_eq!(decode_bounded::<Batch>(&body, &bounds).expect("decode"), batch);
        assert!(matches!(
            decode_bounded::<Batch>(b"not zstd", &bounds),
            Err(ProtocolError::Encoding(_))
        ));
    }

    #[test]
    fn tokens_parse_only_in_their_one_shape() {
        let fp = "ab".repeat(32);
        let t = EnrollToken { secret: "s3cr-t_X".into(), cert_sha256: Some(fp.clone()) };
        assert_eq!(EnrollToken::parse(&t.format()).expect("parse"), t);
        let bare = EnrollToken { secret: "abc".into(), cert_sha256: None };
        assert_eq!(EnrollToken::parse("ST1.abc.").expect("parse"), bare);
        for bad in ["", "ST2.abc.", "ST1..", "ST1.a b.", "ST1.abc.12", "ST1.abc.ff.x"] {
            assert!(EnrollToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_name_each_table_once_with_a_known_scope() {
        let s = Scopes::parse(
            "[tables]\nrooms = \"property\"\nguests = \"chain\"\nroom_nights = \"property\"\n\
             [owners]\nrooms = \"property_id\"\nroom_nights = \"room_id -> rooms\"\n",
        )
        .expect("ok");
        assert_eq!(s.get("guests"), Some(Scope::Chain));
        assert_eq!(s.owner("rooms"), Some(&OwnedBy::Column("property_id".into())));
        assert_eq!(
            s.owner("room_nights"),
            Some(&OwnedBy::Parent { column: "room_id".into(), table: "rooms".into() })
        );
        // A property table without an owner, an owner of a chain table, a parent that is
        // itself derived: each is a mistake in the file, refused when it is read.
        assert!(Scopes::parse("[tables]\nrooms = \"property\"\n").is_err());
        assert!(
            Scopes::parse("[tables]\nguests = \"chain\"\n[owners]\nguests = \"id\"\n").is_err()
        );
        assert!(
            Scopes::parse(
                "[tables]\na = \"property\"\nb = \"property\"\n[owners]\na = \"x -> b\"\nb = \"y -> a\"\n"
            )
            .is_err()
        );
        assert_eq!(s.get("nope"), None);
        assert!(Scopes::parse("[tables]\nrooms = \"galaxy\"\n").is_err());
        assert!(Scopes::parse("[tables]\nrooms = \"chain\"\nrooms = \"chain\"\n").is_err());
    }
}
