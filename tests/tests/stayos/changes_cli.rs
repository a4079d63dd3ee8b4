//! `stayos-edge changes export|import`, run as the real binary: changes carried to another
//! node as a file (chain records arrive, another property's rows and staff accounts do not),
//! and every kind of bad line refused with its line named while the good lines are applied.

use std::path::Path;
use std::process::{Command, Output};

use rusqlite::Connection;
use tests::edge_binary;

fn edge(args: &[&str]) -> Output {
    let mut cmd = Command::new(edge_binary().expect("stayos-edge binary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STAYOS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).output().expect("run stayos-edge")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The rows of a table, as text, for comparing two nodes.
fn rows(dir: &Path, table: &str) -> Vec<String> {
    let conn = Connection::open(dir.join(edge_node::db::DB_FILE)).expect("open");
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1")).expect("select");
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n).map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i))).collect())
    })
    .expect("rows")
    .map(|r| r.expect("row"))
    .collect()
}

/// A change line with its `pk` replaced.
fn with_pk(line: &str, pk: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).expect("json");
    v.insert("pk".into(), pk.into());
    serde_json::to_string(&v).expect("json")
}

fn two_nodes() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    tests::init_dir(&a).expect("init a");
    tests::init_dir(&b).expect("init b");
    (tmp, a, b)
}

/// A chain-level guest profile written on a node, as its front desk would.
fn add_guest(dir: &Path, id: &str, first: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async {
        let db = edge_node::db::Db::open(dir, 1).expect("open");
        let (id, first) = (id.to_string(), first.to_string());
        db.write(move |tx| {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name) VALUES (?1, 'p', ?2, 'Carried')",
                rusqlite::params![id, first],
            )?;
            Ok::<_, edge_node::db::DbError>(())
        })
        .await
        .expect("insert a guest");
        db.close();
    });
}

fn export_lines(dir: &Path) -> Vec<String> {
    let out = edge(&["changes", "export", "--data-dir", s(dir)]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8").lines().map(String::from).collect()
}

fn table_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    v["table"].as_str().expect("table").to_string()
}

#[test]
fn a_file_from_another_node_brings_its_chain_records_and_its_property_rows_are_refused() {
    let (tmp, a, b) = two_nodes();
    add_guest(&a, "guest-carried", "Ada");
    let file = tmp.path().join("usb/a.jsonl");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    let out = edge(&["changes", "export", "--data-dir", s(&a), "--output", s(&file)]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&file).expect("read export");
    assert!(text(&out).contains(&format!("exported {} changes", lines.lines().count())));
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a line")).expect("json");
    for field in ["table", "pk", "cid", "val", "col_version", "db_version", "site_id", "cl", "seq"]
    {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }

    let out = edge(&["changes", "import", "--data-dir", s(&b), s(&file)]);
    assert!(out.status.success(), "{}", text(&out));
    // The guest profile (chain-level) arrives whole...
    assert_eq!(rows(&a, "guests"), rows(&b, "guests"));
    assert_eq!(rows(&b, "guests").len(), 1);
    // ...while A's own property rows are not B's to take: each line is named.
    let message = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(message.contains("refused (other_property)"), "{message}");
    let properties_line = lines.lines().position(|l| table_of(l) == "properties").expect("line");
    assert!(message.contains(&format!("line {}: refused", properties_line + 1)), "{message}");
    assert!(!rows(&b, "properties").iter().any(|r| rows(&a, "properties").contains(r)));

    // The same file again: every accepted change is already known.
    let out = edge(&["changes", "import", "--data-dir", s(&b), s(&file)]);
    assert!(text(&out).contains(" 0 applied"), "{}", text(&out));

    // Exporting only what is new after the last version gives an empty file.
    let conn = Connection::open(a.join(edge_node::db::DB_FILE)).expect("open");
    let latest: i64 =
        conn.query_row("SELECT max(db_version) FROM crdt_log", [], |r| r.get(0)).expect("max");
    let out = edge(&["changes", "export", "--data-dir", s(&a), "--since", &latest.to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn an_export_leaves_the_staff_accounts_out() {
    let (_tmp, a, _b) = two_nodes();
    let staff = rows(&a, "staff");
    assert!(!staff.is_empty(), "init made an owner account");
    let out = edge(&["changes", "export", "--data-dir", s(&a)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("changes of staff accounts (kept on this node) left out"));
    let lines: Vec<String> =
        String::from_utf8(out.stdout).expect("utf-8").lines().map(String::from).collect();
    assert!(!lines.is_empty());
    let scopes = edge_node::sync::agent::scopes();
    for line in &lines {
        let table = table_of(line);
        assert_ne!(scopes.get(&table), Some(crdt::protocol::Scope::Node), "{line}");
        assert!(!line.contains("argon2"), "a password hash left the node: {line}");
    }
}

/// Turns a good line into a bad one.
type Spoil = Box<dyn Fn(&str) -> String>;

#[test]
fn a_bad_line_is_named_and_the_good_lines_of_the_file_are_applied() {
    let (tmp, a, b) = two_nodes();
    add_guest(&a, "guest-good", "Grace");
    let good: Vec<String> =
        export_lines(&a).into_iter().filter(|l| table_of(l) == "guests").collect();
    assert!(good.len() > 1, "a guest profile is several changes");

    let cases: [(&str, Spoil, &str); 6] = [
        ("truncated JSON", Box::new(|l: &str| l[..l.len() / 2].to_string()), "not a change"),
        (
            "unknown table",
            Box::new(|l: &str| l.replacen(r#""table":""#, r#""table":"x"#, 1)),
            "unknown table",
        ),
        (
            "unknown column",
            Box::new(|l: &str| l.replacen(r#""cid":""#, r#""cid":"x"#, 1)),
            "unknown column",
        ),
        ("key that is not hex", Box::new(|l: &str| with_pk(l, "ZZ")), "pk is not hex"),
        ("key that is not packed", Box::new(|l: &str| with_pk(l, "09")), "pk:"),
        (
            "bad literal",
            Box::new(|l: &str| {
                let mut v: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(l).expect("json");
                v.insert("val".into(), "'unterminated".into());
                serde_json::to_string(&v).expect("json")
            }),
            "literal",
        ),
    ];
    for (what, spoil, reason) in cases {
        let fresh = tmp.path().join(format!("b-{}", what.replace(' ', "-")));
        tests::init_dir(&fresh).expect("init");
        let mut lines = good.clone();
        lines.insert(1, spoil(&good[0]));
        let file = tmp.path().join("bad.jsonl");
        std::fs::write(&file, lines.join("\n") + "\n").expect("write");
        let out = edge(&["changes", "import", "--data-dir", s(&fresh), s(&file)]);
        assert!(out.status.success(), "{what}: the whole file was refused: {}", text(&out));
        let message = text(&out);
        assert!(message.contains("line 2: refused"), "{what}: {message}");
        assert!(message.contains(reason), "{what}: {message}");
        assert!(message.contains("1 lines refused"), "{what}: {message}");
        assert_eq!(rows(&fresh, "guests"), rows(&a, "guests"), "{what}: the good lines");
        let conn = Connection::open(fresh.join(edge_node::db::DB_FILE)).expect("open");
        let kept: String = conn
            .query_row("SELECT reason FROM sync_quarantine", [], |r| r.get(0))
            .expect("the bad line is in the quarantine");
        assert!(kept.contains(reason), "{what}: {kept}");
    }

    // Nothing readable at all: a failure that says so, every line named.
    let file = tmp.path().join("junk.jsonl");
    std::fs::write(&file, "not json\n{}\n").expect("write");
    let out = edge(&["changes", "import", "--data-dir", s(&b), s(&file)]);
    assert!(!out.status.success());
    let message = text(&out);
    assert!(message.contains("holds no line that is a change"), "{message}");
    assert!(message.contains("line 1: refused (malformed)"), "{message}");
    assert!(message.contains("line 2: refused (malformed)"), "{message}");

    let out = edge(&["changes", "import", "--data-dir", s(&b), s(&tmp.path().join("none"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains("none"), "{}", text(&out));
    let out = edge(&["changes", "export", "--data-dir", s(&tmp.path().join("empty"))]);
    assert!(text(&out).contains("run `stayos-edge init` first"), "{}", text(&out));
}

#[test]
fn changes_of_a_newer_schema_are_held_not_refused() {
    let (tmp, a, b) = two_nodes();
    let out = edge(&["changes", "export", "--data-dir", s(&a)]);
    let line =
        String::from_utf8(out.stdout).expect("utf-8").lines().next().expect("line").to_string();
    let current = format!(r#""schema_version":{}"#, edge_node::db::migrations::latest_version());
    assert!(line.contains(&current), "{line}");
    let newer = line
        .replacen(r#""table":""#, r#""table":"minibar_"#, 1)
        .replace(&current, r#""schema_version":99"#);
    let file = tmp.path().join("newer.jsonl");
    std::fs::write(&file, format!("{line}\n{newer}\n")).expect("write");
    let out = edge(&["changes", "import", "--data-dir", s(&b), s(&file)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 held for a newer schema"), "{}", text(&out));
    let conn = Connection::open(b.join(edge_node::db::DB_FILE)).expect("open");
    let held: i64 =
        conn.query_row("SELECT count(*) FROM crdt_held", [], |r| r.get(0)).expect("held");
    assert_eq!(held, 1);
}
