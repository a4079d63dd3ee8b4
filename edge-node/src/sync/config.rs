//! The node's link to the hub, kept in the local-only `node_meta` table (never replicated:
//! the credential is this node's alone): `hub_url`, `hub_node_id`, `hub_credential`,
//! `hub_site_id` (hex) and `hub_pin` (JSON), written together by `stayos-edge enroll` in one
//! transaction and read by the agent.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

const KEYS: [&str; 5] = ["hub_url", "hub_node_id", "hub_credential", "hub_site_id", "hub_pin"];

/// How the node recognises the hub's TLS certificate. Stored as JSON:
/// `{"cert_sha256":"hex"}`, `{"ca_pem":"..."}` or `{"none":true}` (an http:// hub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Pin {
    /// Exactly the certificate with this SHA-256 (lowercase hex of its DER), from the token.
    CertSha256(String),
    /// Certificates issued by this CA (PEM) for the hub's host name (`--hub-ca`).
    CaPem(String),
    /// No TLS at all (an http:// URL: loopback tests and development).
    None(bool),
}

/// Everything the agent needs to talk to the hub.
#[derive(Clone, PartialEq, Eq)]
pub struct HubLink {
    /// Base URL, without a trailing slash.
    pub url: String,
    pub node_id: String,
    /// `<node_id>.<secret>`, sent as `Authorization: Bearer`.
    pub credential: String,
    /// The hub's 16-byte site id: the peer whose cursors this node keeps.
    pub hub_site_id: Vec<u8>,
    pub pin: Pin,
}

/// The credential never appears in logs or panics.
impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink")
            .field("url", &self.url)
            .field("node_id", &self.node_id)
            .field("hub_site_id", &hex::encode(&self.hub_site_id))
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the stored hub link is damaged ({0}); enroll again with --force")]
    Corrupt(String),
}

fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM node_meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, rusqlite::types::Value>(0))
        .optional()
        .map(|v| match v {
            Some(rusqlite::types::Value::Text(s)) => Some(s),
            Some(rusqlite::types::Value::Blob(b)) => String::from_utf8(b).ok(),
            _ => None,
        })
}

/// The hub link, or `None` while the node is not enrolled (no `hub_credential`).
pub fn load(conn: &Connection) -> Result<Option<HubLink>, LinkError> {
    let Some(credential) = get(conn, "hub_credential")? else {
        return Ok(None);
    };
    let need = |key: &str, v: Option<String>| {
        v.ok_or_else(|| LinkError::Corrupt(format!("{key} is missing")))
    };
    let url = need("hub_url", get(conn, "hub_url")?)?;
    let node_id = need("hub_node_id", get(conn, "hub_node_id")?)?;
    let site_hex = need("hub_site_id", get(conn, "hub_site_id")?)?;
    let hub_site_id = hex::decode(&site_hex)
        .ok()
        .filter(|s| s.len() == 16)
        .ok_or_else(|| LinkError::Corrupt("hub_site_id is not 16 bytes of hex".into()))?;
    let pin_json = need("hub_pin", get(conn, "hub_pin")?)?;
    let pin =
        serde_json::from_str(&pin_json).map_err(|e| LinkError::Corrupt(format!("hub_pin: {e}")))?;
    Ok(Some(HubLink { url, node_id, credential, hub_site_id, pin }))
}

/// Writes every key of the link, replacing an earlier enrollment's. The caller's
/// transaction makes the five keys appear together.
pub fn store(conn: &Connection, link: &HubLink) -> Result<(), LinkError> {
    let pin = serde_json::to_string(&link.pin)
        .map_err(|e| LinkError::Corrupt(format!("hub_pin: {e}")))?;
    let values = [
        link.url.clone(),
        link.node_id.clone(),
        link.credential.clone(),
        hex::encode(&link.hub_site_id),
        pin,
    ];
    let mut stmt = conn.prepare_cached(
        "INSERT INTO node_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?;
    for (key, value) in KEYS.iter().zip(values) {
        stmt.execute(params![key, value])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE node_meta (key TEXT PRIMARY KEY NOT NULL, value BLOB)")
            .expect("ddl");
        conn
    }

    #[test]
    fn pins_are_stored_in_their_documented_json_shapes() {
        let cases = [
            (
                Pin::CertSha256("ab".repeat(32)),
                format!(r#"{{"cert_sha256":"{}"}}"#, "ab".repeat(32)),
            ),
            (Pin::CaPem("-----BEGIN".into()), r#"{"ca_pem":"-----BEGIN"}"#.to_string()),
            (Pin::None(true), r#"{"none":true}"#.to_string()),
        ];
        for (pin, json) in cases {
            assert_eq!(serde_json::to_string(&pin).expect("ser"), json);
            assert_eq!(serde_json::from_str::<Pin>(&json).expect("de"), pin);
        }
    }

    #[test]
    fn a_link_round_trips_and_a_second_enrollment_replaces_the_first() {
        let conn = conn();
        assert!(load(&conn).expect("load").is_none(), "not enrolled yet");
        let mut link = HubLink {
            url: "https://hub.example:8443".into(),
            node_id: "n1".into(),
            credential: "n1.secret".into(),
            hub_site_id: vec![9; 16],
            pin: Pin::CertSha256("cd".repeat(32)),
        };
        store(&conn, &link).expect("store");
        assert_eq!(load(&conn).expect("load"), Some(link.clone()));
        link.node_id = "n2".into();
        link.pin = Pin::None(true);
        store(&conn, &link).expect("store again");
        assert_eq!(load(&conn).expect("load"), Some(link.clone()));
        assert!(!format!("{link:?}").contains("secret"), "Debug hides the credential");
    }

    #[test]
    fn a_damaged_link_is_an_error_not_a_silent_unenrolled_node() {
        let conn = conn();
        conn.execute("INSERT INTO node_meta VALUES ('hub_credential', 'x.y')", []).expect("insert");
        assert!(matches!(load(&conn), Err(LinkError::Corrupt(_))));
    }
}
