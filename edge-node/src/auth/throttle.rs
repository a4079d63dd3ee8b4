//! Login throttling: failed attempts counted per account and per client address in the
//! local-only `login_throttle` table, so a restart does not reset them.
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

/// Per account (e-mail, whether or not it exists, so that throttling does not reveal which do).
pub const ACCOUNT: Policy =
    Policy { free_failures: 5, window_ms: 60 * MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };

/// Per client address: generous enough for a front desk where several clerks share one
/// terminal, tight enough to stop one machine trying many accounts.
pub const ADDRESS: Policy =
    Policy { free_failures: 20, window_ms: 60 * MINUTE_MS, max_lock_ms: 15 * MINUTE_MS };

pub fn account_key(email: &str) -> String {
    format!("acct:{email}")
}

pub fn address_key(ip: &str) -> String {
    format!("ip:{ip}")
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

/// Forgets the failures of `key` (after a successful login).
pub fn clear(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM login_throttle WHERE key = ?1")?.execute([key])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_the_free_limit_and_double_up_to_the_cap() {
        let p = ACCOUNT;
        assert_eq!(lock_ms(p, 4), 0);
        assert_eq!(lock_ms(p, 5), 1000);
        assert_eq!(lock_ms(p, 6), 2000);
        assert_eq!(lock_ms(p, 14), 512_000);
        assert_eq!(lock_ms(p, 15), p.max_lock_ms);
        assert_eq!(lock_ms(p, u32::MAX), p.max_lock_ms);
    }
}
