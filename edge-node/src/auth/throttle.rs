//! Login throttling: failed attempts counted in the local-only `login_throttle` table, so a
//! restart does not reset them. Three counters, each a key of the table:
//!
//! - per (account, address) — `PAIR`: the lock a guesser from one machine runs into, five
//!   failures free;
//! - per address — `ADDRESS`: one machine trying many accounts, twenty free;
//! - per account, from any address — `ACCOUNT`: only past a high threshold (fifty failures
//!   without an hour's pause), so guessing from rotating addresses cannot lock a member of
//!   staff out of their own terminal, yet a distributed guess is still stopped.
//!
//! A wrong password and a wrong TOTP code are both failures of the same counters. Only a
//! completed login (the password, and the code when two-factor login is on) clears the
//! (account, address) counter of the address it came from; the account-wide counter fades
//! with its window or is cleared by a manager's unlock (`POST /staff/{id}/unlock`).
//!
//! After `free_failures` failures within `window`, each further failure locks the key for
//! twice as long as the last (1 s, 2 s, 4 s, ...) up to `max_lock`. While a key is locked, login
//! answers 429 with `Retry-After` without checking the password at all.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_failures: u32,
    pub window_ms: i64,
    pub max_lock_ms: i64,
}

const MINUTE_MS: i64 = 60_000;

/// Per account and client address (the account's e-mail, whether or not it exists, so that
/// throttling does not reveal which do).
pub const PAIR: Policy =
    Policy { free_failures: 5, window_ms: 60 * MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };

/// Per account, whatever the address: a lock only past a high threshold, so that guesses
/// from many addresses cannot be used to lock staff out.
pub const ACCOUNT: Policy =
    Policy { free_failures: 50, window_ms: 60 * MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };

/// Per client address: generous enough for a front desk where several clerks share one
/// terminal, tight enough to stop one machine trying many accounts.
pub const ADDRESS: Policy =
    Policy { free_failures: 20, window_ms: 60 * MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };

/// The address counted when a request's address is unknown.
const NO_ADDRESS: &str = "-";

pub fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

pub fn address_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The (account, address) key. A space separates the two because an `Email` never holds one,
/// so `pair_prefix` of one account never matches another's keys.
pub fn pair_key(email: &str, ip: Option<&str>) -> String {
    format!("{}{}", pair_prefix(email), ip.unwrap_or(NO_ADDRESS))
}

fn pair_prefix(email: &str) -> String {
    format!("pair:{email} ")
}

/// The counters one attempt on `email` from `ips` (the addresses involved, e.g. where the
/// password was given and where the code is) touches.
#[derive(Debug, Clone)]
pub struct Keys {
    account: String,
    pairs: Vec<String>,
    addresses: Vec<String>,
}

impl Keys {
    pub fn new(email: &str, ips: &[Option<&str>]) -> Keys {
        let mut pairs: Vec<String> = ips.iter().map(|ip| pair_key(email, *ip)).collect();
        pairs.dedup();
        let mut addresses: Vec<String> = ips.iter().flatten().map(|ip| address_key(ip)).collect();
        addresses.dedup();
        if pairs.is_empty() {
            pairs.push(pair_key(email, None));
        }
        Keys { account: account_key(email), pairs, addresses }
    }

    fn all(&self) -> impl Iterator<Item = (&str, Policy)> {
        std::iter::once((self.account.as_str(), ACCOUNT))
            .chain(self.pairs.iter().map(|k| (k.as_str(), PAIR)))
            .chain(self.addresses.iter().map(|k| (k.as_str(), ADDRESS)))
    }
}

/// Milliseconds until an attempt with these keys may be made, if any of them is locked now.
pub fn locked_for_any(conn: &Connection, keys: &Keys, now: i64) -> rusqlite::Result<Option<i64>> {
    let mut longest = None;
    for (key, _) in keys.all() {
        longest = longest.max(locked_for(conn, key, now)?);
    }
    Ok(longest)
}

/// Counts one failure against every key; returns the longest lock now in force (0: none).
pub fn record_failures(conn: &Connection, keys: &Keys, now: i64) -> rusqlite::Result<i64> {
    let mut lock = 0;
    for (key, policy) in keys.all() {
        lock = lock.max(record_failure(conn, key, policy, now)?);
    }
    Ok(lock)
}

/// After a completed login: forgets the (account, address) failures of the addresses it
/// came from. The account-wide counter stays — it only fades with its window or is cleared
/// by an unlock — so a guesser cannot reset it by also knowing the password.
pub fn clear_completed(conn: &Connection, keys: &Keys) -> rusqlite::Result<()> {
    for pair in &keys.pairs {
        clear(conn, pair)?;
    }
    Ok(())
}

/// Lifts every lock of an account (account-wide and from every address); returns how many
/// counters were dropped. Per-address counters are about machines, not the account, and stay.
pub fn unlock_account(conn: &Connection, email: &str) -> rusqlite::Result<usize> {
    let prefix = pair_prefix(email);
    conn.prepare_cached(
        "DELETE FROM login_throttle
         WHERE key = ?1 OR substr(key, 1, length(?2)) = ?2",
    )?
    .execute(params![account_key(email), prefix])
}

/// Whether any of an account's counters has it locked now.
pub fn account_locked(conn: &Connection, email: &str, now: i64) -> rusqlite::Result<bool> {
    let prefix = pair_prefix(email);
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM login_throttle
             WHERE (key = ?1 OR substr(key, 1, length(?2)) = ?2) AND locked_until > ?3)",
    )?
    .query_row(params![account_key(email), prefix, now], |r| r.get(0))
}

/// How long a key is locked after its `failures`-th consecutive failure (0: not locked).
pub fn lock_ms(policy: Policy, failures: u32) -> i64 {
    if failures < policy.free_failures {
        return 0;
    }
    let doublings = (failures - policy.free_failures).min(30);
    (1000_i64 << doublings).min(policy.max_lock_ms)
}

/// Milliseconds until `key` may try again, if it is locked now.
pub fn locked_for(conn: &Connection, key: &str, now: i64) -> rusqlite::Result<Option<i64>> {
    let locked_until: Option<i64> = conn
        .prepare_cached("SELECT locked_until FROM login_throttle WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(locked_until.filter(|until| *until > now).map(|until| until - now))
}

/// Counts one failure for `key`; returns how long the key is now locked (0: not locked).
pub fn record_failure(
    conn: &Connection,
    key: &str,
    policy: Policy,
    now: i64,
) -> rusqlite::Result<i64> {
    let previous: Option<(u32, i64)> = conn
        .prepare_cached("SELECT failures, last_failure_at FROM login_throttle WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let failures = match previous {
        Some((n, last)) if now - last <= policy.window_ms => n.saturating_add(1),
        _ => 1,
    };
    let lock = lock_ms(policy, failures);
    conn.prepare_cached(
        "INSERT INTO login_throttle (key, failures, last_failure_at, locked_until)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
             last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until",
    )?
    .execute(params![key, failures, now, if lock > 0 { now + lock } else { 0 }])?;
    Ok(lock)
}

/// Forgets the failures of `key`.
fn clear(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM login_throttle WHERE key = ?1")?.execute([key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_free_limit_and_double_up_to_the_cap() {
        let p = PAIR;
        assert_eq!(lock_ms(p, 4), 0);
        assert_eq!(lock_ms(p, 5), 1000);
        assert_eq!(lock_ms(p, 6), 2000);
        assert_eq!(lock_ms(p, 14), 512_000);
        assert_eq!(lock_ms(p, 15), p.max_lock_ms);
        assert_eq!(lock_ms(p, u32::MAX), p.max_lock_ms);
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(
            "CREATE TABLE login_throttle (key TEXT PRIMARY KEY NOT NULL,
                 failures INTEGER NOT NULL DEFAULT 0, last_failure_at INTEGER NOT NULL DEFAULT 0,
                 locked_until INTEGER NOT NULL DEFAULT 0)",
        )
        .expect("table");
        conn
    }

    #[test]
    fn failures_from_many_addresses_lock_the_account_only_past_the_high_threshold() {
        let conn = table();
        let now = 1_000_000;
        for i in 0..ACCOUNT.free_failures - 1 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250);
            let keys = Keys::new("anna@hotel.example", &[Some(&ip)]);
            record_failures(&conn, &keys, now).expect("record");
        }
        let own = Keys::new("anna@hotel.example", &[Some("192.168.1.5")]);
        assert_eq!(locked_for_any(&conn, &own, now).expect("check"), None);
        let one_more = Keys::new("anna@hotel.example", &[Some("10.9.9.9")]);
        assert!(record_failures(&conn, &one_more, now).expect("record") > 0);
        assert!(locked_for_any(&conn, &own, now).expect("check").is_some());
    }

    #[test]
    fn an_unlock_clears_one_account_and_no_other() {
        let conn = table();
        let now = 1_000_000;
        for email in ["a@x.example", "a@x.example.org"] {
            let keys = Keys::new(email, &[Some("10.0.0.1")]);
            for _ in 0..PAIR.free_failures {
                record_failures(&conn, &keys, now).expect("record");
            }
            assert!(account_locked(&conn, email, now).expect("check"));
        }
        assert_eq!(unlock_account(&conn, "a@x.example").expect("unlock"), 2);
        assert!(!account_locked(&conn, "a@x.example", now).expect("check"));
        assert!(account_locked(&conn, "a@x.example.org", now).expect("check"));
    }
}
