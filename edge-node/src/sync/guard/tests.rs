//! The guard's verdicts on hand-made changes against a real edge database: how a row's
//! property is derived (own column, key, batch, local row, parent), and the other refusals.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::*;

const OURS: &str = "prop-ours";
const THEIRS: &str = "prop-theirs";
const OTHER_SITE: [u8; 16] = [0x42; 16];

struct Node {
    _dir: tempfile::TempDir,
    conn: Connection,
    replica: crdt::Replica,
    scopes: Scopes,
}

/// An edge database for property `OURS` holding a room type `rt-ours` and a room `r-ours`
/// of it.
fn node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut conn = crate::db::open_writer(&dir.path().join(crate::db::DB_FILE)).expect("open");
    let replica = crate::db::prepare(&mut conn).expect("prepare");
    let site = hex::encode(crdt::site_id(&conn).expect("site"));
    conn.execute_batch(&format!(
        "BEGIN;
         INSERT INTO node_meta (key, value) VALUES ('site_id', '{site}'), ('property_id', '{OURS}');
         INSERT INTO properties (id, name) VALUES ('{OURS}', 'Ours');
         INSERT INTO room_types (id, property_id) VALUES ('rt-ours', '{OURS}');
         INSERT INTO rooms (id, property_id, room_type_id) VALUES ('r-ours', '{OURS}', 'rt-ours');"
    ))
    .expect("seed");
    replica.flush(&conn).expect("flush");
    conn.execute_batch("COMMIT").expect("commit");
    Node { _dir: dir, conn, replica, scopes: super::super::agent::scopes() }
}

fn text(s: &str) -> crdt::Value {
    crdt::Value::Text(s.into())
}

fn change(table: &str, key: &[crdt::Value], cid: &str, val: SqlValue) -> Change {
    Change {
        table: table.into(),
        pk: crdt::pack(key).expect("pack"),
        cid: cid.into(),
        val,
        col_version: 1,
        db_version: 1,
        site_id: OTHER_SITE.to_vec(),
        cl: 1,
        seq: 0,
    }
}

fn t(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

/// The reason kind per change (None: accepted).
fn kinds(n: &Node, changes: &[Change]) -> Vec<Option<ReasonKind>> {
    let me = Identity::load(&n.conn).expect("identity");
    screen(&n.conn, &n.replica, &n.scopes, &me, changes, |_| None)
        .expect("screen")
        .into_iter()
        .map(|v| v.map(|r| r.kind))
        .collect()
}

use ReasonKind::{Invalid, NodeScope, OtherProperty, OwnSite, UnknownProperty};

#[test]
fn a_row_with_its_own_property_column_is_judged_by_the_change_the_batch_or_the_local_row() {
    let n = node();
    let changes = [
        // The owner column itself, ours and theirs.
        change("rooms", &[text("r-new")], "property_id", t(OURS)),
        change("rooms", &[text("r-foreign")], "property_id", t(THEIRS)),
        // Another column of the same rows: the batch names their property.
        change("rooms", &[text("r-new")], "number", t("102")),
        change("rooms", &[text("r-foreign")], "number", t("666")),
        // A row the batch says nothing about: the local row does.
        change("rooms", &[text("r-ours")], "status", t("dirty")),
        // Nobody knows whose this is.
        change("rooms", &[text("r-nowhere")], "status", t("dirty")),
    ];
    assert_eq!(
        kinds(&n, &changes),
        [None, Some(OtherProperty), None, Some(OtherProperty), None, Some(UnknownProperty)]
    );
    // A change moving our own room to another property is refused, and so is the rest of a
    // batch that names two properties for one row.
    let moving = [
        change("rooms", &[text("r-ours")], "property_id", t(THEIRS)),
        change("rooms", &[text("r-ours")], "status", t("dirty")),
    ];
    assert_eq!(kinds(&n, &moving), [Some(OtherProperty), Some(OtherProperty)]);
}

#[test]
fn a_row_keyed_by_its_parent_belongs_to_the_parents_property() {
    let n = node();
    let night = |room: &str| [text(room), text("2026-12-24")];
    let changes = [
        // The room is ours in the local database.
        change("room_nights", &night("r-ours"), "reservation_id", t("res-1")),
        // The room is another property's, as the same batch says.
        change("rooms", &[text("r-theirs")], "property_id", t(THEIRS)),
        change("room_nights", &night("r-theirs"), "reservation_id", t("res-2")),
        // A room nobody knows: its nights cannot be told apart from a claim.
        change("room_nights", &night("r-unknown"), "reservation_id", t("res-3")),
        // A room type of ours, whose night names another property of its own: refused.
        change(
            "room_type_nights",
            &[text("rt-ours"), text("2026-12-24")],
            "property_id",
            t(THEIRS),
        ),
        // The sentinel of a key-only row is judged by the key too.
        change("room_type_amenities", &[text("rt-ours"), text("wifi")], SENTINEL, SqlValue::Null),
    ];
    assert_eq!(
        kinds(&n, &changes),
        [
            None,
            Some(OtherProperty),
            Some(OtherProperty),
            Some(UnknownProperty),
            Some(OtherProperty),
            None
        ]
    );
    // A parent new in the same batch gives its children its property.
    let fresh = [
        change("rooms", &[text("r-fresh")], "property_id", t(OURS)),
        change("room_nights", &night("r-fresh"), "reservation_id", t("res-4")),
    ];
    assert_eq!(kinds(&n, &fresh), [None, None]);
}

#[test]
fn a_property_row_is_ours_by_its_key_and_an_unenrolled_node_owns_its_local_properties() {
    let n = node();
    let changes = [
        change("properties", &[text(OURS)], "name", t("Renamed")),
        change("properties", &[text(THEIRS)], "name", t("Theirs")),
    ];
    assert_eq!(kinds(&n, &changes), [None, Some(OtherProperty)]);
    // A second property created on this (unenrolled) node is its own too...
    n.conn
        .execute_batch(&format!("BEGIN; INSERT INTO properties (id) VALUES ('{THEIRS}');"))
        .expect("insert");
    n.replica.flush(&n.conn).expect("flush");
    n.conn.execute_batch("COMMIT").expect("commit");
    assert_eq!(kinds(&n, &changes), [None, None]);
    // ...but once enrolled, only the property in node_meta is.
    let link = super::super::config::HubLink {
        url: "http://hub".into(),
        node_id: "n".into(),
        credential: "n.s".into(),
        hub_site_id: vec![9; 16],
        pin: super::super::config::Pin::None(true),
    };
    super::super::config::store(&n.conn, &link).expect("link");
    assert_eq!(kinds(&n, &changes), [None, Some(OtherProperty)]);
}

#[test]
fn staff_rows_our_own_site_and_bad_clocks_are_refused_and_chain_rows_accepted() {
    let n = node();
    let mut ours = change("guests", &[text("g1")], "first_name", t("Ada"));
    ours.site_id = crdt::site_id(&n.conn).expect("site");
    let mut poisoned = change("guests", &[text("g1")], "first_name", t("Ada"));
    poisoned.col_version = i64::MAX;
    let changes = [
        change("staff", &[text("s1")], "role", t("owner")),
        change("staff_properties", &[text("s1"), text(OURS)], SENTINEL, SqlValue::Null),
        ours,
        poisoned,
        change("guests", &[text("g1")], "first_name", t("Ada")),
        change("guests", &[text("g1")], "colour", t("red")),
        change("loyalty_ledger", &[text("l1")], "kind", t("adjust")),
    ];
    assert_eq!(
        kinds(&n, &changes),
        [Some(NodeScope), Some(NodeScope), Some(OwnSite), Some(Invalid), None, Some(Invalid), None]
    );
}

#[test]
fn refused_changes_are_kept_with_their_reason_and_the_quarantine_is_capped() {
    let n = node();
    let changes = vec![
        change("staff", &[text("s1")], "role", t("owner")),
        change("guests", &[text("g1")], "first_name", t("Ada")),
    ];
    n.conn.execute_batch("BEGIN").expect("begin");
    let Admitted { changes: kept, refused, .. } =
        admit(&n.conn, &n.replica, &n.scopes, Source::File, changes, vec![None, None])
            .expect("admit");
    n.replica.flush(&n.conn).expect("flush");
    n.conn.execute_batch("COMMIT").expect("commit");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].table, "guests");
    assert_eq!(refused.len(), 1);
    let stored = entries(&n.conn, None, 10).expect("entries");
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!((e.source.as_str(), e.table.as_str(), e.pk.as_str()), ("file", "staff", "'s1'"));
    assert_eq!((e.cid.as_str(), e.reason_kind.as_str()), ("role", "node_scope"));
    // The stored change reads back as the change.
    let (back, _) = crdt::wire::parse_line(&e.change).expect("a changes-file line");
    assert_eq!(back.val, t("owner"));

    // Past the cap, the oldest go and are counted.
    let refusal = Refusal::new(ReasonKind::Malformed, "not a change");
    let many = (0..QUARANTINE_CAP + 5).map(|_| Quarantined {
        table: "",
        pk: String::new(),
        cid: "",
        change: "x".repeat(MAX_RAW_LINE + 10),
        refusal: &refusal,
    });
    quarantine(&n.conn, Source::File, many).expect("quarantine");
    let (all, dropped) = total(&n.conn).expect("total");
    assert_eq!((all, dropped), (QUARANTINE_CAP as u64 + 6, 6));
    let newest = entries(&n.conn, None, 1).expect("entries");
    assert_eq!(newest[0].change.len(), MAX_RAW_LINE, "a long line is cut");
}
