//! Loyalty: accounts, tiers, points earned on check-out by the property's rule, manual
//! adjustments, balance and ledger.
//!
//! The rule is the property's `loyalty_rule` JSON (`''` = [`Rule::default`]): points =
//! revenue in minor units × `points_per_unit` / 100, floored (points per major unit of a
//! two-decimal currency). The tier is the highest whose `min_points` the lifetime points
//! reach. Every change of a balance is a ledger row with the balance after it.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::time::rfc3339;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tier {
    pub name: String,
    pub min_points: i64,
}

/// A property's loyalty rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub points_per_unit: i64,
    pub tiers: Vec<Tier>,
}

impl Default for Rule {
    fn default() -> Self {
        let tier = |name: &str, min_points| Tier { name: name.into(), min_points };
        Rule {
            points_per_unit: 10,
            tiers: vec![tier("member", 0), tier("silver", 5000), tier("gold", 20000)],
        }
    }
}

impl Rule {
    /// The stored rule; the default when it is empty or unreadable.
    pub fn parse(stored: &str) -> Rule {
        if stored.trim().is_empty() {
            return Rule::default();
        }
        serde_json::from_str(stored).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "unreadable loyalty rule; using the default");
            Rule::default()
        })
    }

    pub fn points_for(&self, revenue_minor: i64) -> i64 {
        if revenue_minor <= 0 || self.points_per_unit <= 0 {
            return 0;
        }
        (i128::from(revenue_minor) * i128::from(self.points_per_unit) / 100)
            .try_into()
            .unwrap_or(i64::MAX)
    }

    pub fn tier_for(&self, lifetime: i64) -> String {
        self.tiers
            .iter()
            .filter(|t| t.min_points <= lifetime)
            .max_by_key(|t| t.min_points)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }
}

/// The rule of a property (default when the property is unknown).
pub fn rule_of(conn: &Connection, property_id: &str) -> rusqlite::Result<Rule> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT loyalty_rule FROM properties WHERE id = ?1")?
        .query_row([property_id], |r| r.get(0))
        .optional()?;
    Ok(Rule::parse(&stored.unwrap_or_default()))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    pub guest_id: String,
    /// Membership number, `SO-` and 8 digits.
    pub number: String,
    pub tier: String,
    pub balance: i64,
    pub lifetime_points: i64,
    pub enrolled_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    /// `earn`, `adjust`, `redeem` or `merge`.
    pub kind: String,
    pub points: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub reservation_id: Option<String>,
    pub actor: String,
    pub at: String,
}

/// The balance of a guest's account: the sum of its ledger. Accounts are chain-level and
/// may earn at two properties at once while they are apart; the ledger rows of both merge
/// as distinct rows, so their sum counts both, where the account's `balance` column (last
/// writer wins) would keep one. The column is a cache, rewritten from the ledger on every
/// movement.
const LEDGER_BALANCE: &str =
    "(SELECT coalesce(sum(points), 0) FROM loyalty_ledger WHERE guest_id = ?1)";

/// (account, enrolled_at ms) of a guest, if enrolled.
pub fn account(conn: &Connection, guest_id: &str) -> rusqlite::Result<Option<Account>> {
    conn.prepare_cached(&format!(
        "SELECT guest_id, number, tier, {LEDGER_BALANCE}, lifetime_points, enrolled_at
         FROM loyalty_accounts WHERE guest_id = ?1"
    ))?
    .query_row([guest_id], |r| {
        Ok(Account {
            guest_id: r.get(0)?,
            number: r.get(1)?,
            tier: r.get(2)?,
            balance: r.get(3)?,
            lifetime_points: r.get(4)?,
            enrolled_at: rfc3339(r.get(5)?),
        })
    })
    .optional()
}

/// A guest's ledger, newest first.
pub fn ledger(conn: &Connection, guest_id: &str) -> rusqlite::Result<Vec<LedgerEntry>> {
    conn.prepare_cached(
        "SELECT id, kind, points, balance_after, reason, reservation_id, actor, at
         FROM loyalty_ledger WHERE guest_id = ?1 ORDER BY at DESC, id DESC",
    )?
    .query_map([guest_id], |r| {
        Ok(LedgerEntry {
            id: r.get(0)?,
            kind: r.get(1)?,
            points: r.get(2)?,
            balance_after: r.get(3)?,
            reason: crate::http::wire::column(r, 4)?,
            reservation_id: crate::http::wire::column(r, 5)?,
            actor: r.get(6)?,
            at: rfc3339(r.get(7)?),
        })
    })?
    .collect()
}

fn new_number(tx: &Connection) -> rusqlite::Result<String> {
    loop {
        let n = rand::random::<u64>() % 100_000_000;
        let number = format!("SO-{n:08}");
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM loyalty_accounts WHERE number = ?1)")?
            .query_row([&number], |r| r.get(0))?;
        if !taken {
            return Ok(number);
        }
    }
}

/// Enrolls `guest_id` (no-op when enrolled); returns whether an account was created.
pub fn enroll(
    tx: &Connection,
    property_id: &str,
    guest_id: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    if account(tx, guest_id)?.is_some() {
        return Ok(false);
    }
    let tier = rule_of(tx, property_id)?.tier_for(0);
    tx.prepare_cached(
        "INSERT INTO loyalty_accounts (guest_id, number, tier, balance, lifetime_points,
            enrolled_at, updated_at) VALUES (?1, ?2, ?3, 0, 0, ?4, ?4)",
    )?
    .execute(params![guest_id, new_number(tx)?, tier, now])?;
    Ok(true)
}

/// One ledger movement: changes the balance (and lifetime points by `lifetime_delta`),
/// recomputes the tier, writes the ledger row. The account must exist.
#[allow(clippy::too_many_arguments)]
pub fn post(
    tx: &Connection,
    property_id: &str,
    guest_id: &str,
    kind: &str,
    points: i64,
    lifetime_delta: i64,
    reason: &str,
    reservation_id: &str,
    actor: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    let (balance, lifetime): (i64, i64) = tx
        .prepare_cached(&format!(
            "SELECT {LEDGER_BALANCE}, lifetime_points FROM loyalty_accounts WHERE guest_id = ?1"
        ))?
        .query_row([guest_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (balance, lifetime) = (balance + points, lifetime + lifetime_delta);
    let tier = rule_of(tx, property_id)?.tier_for(lifetime);
    tx.prepare_cached(
        "UPDATE loyalty_accounts SET balance = ?2, lifetime_points = ?3, tier = ?4,
            updated_at = ?5 WHERE guest_id = ?1",
    )?
    .execute(params![guest_id, balance, lifetime, tier, now])?;
    tx.prepare_cached(
        "INSERT INTO loyalty_ledger (id, guest_id, kind, points, balance_after, reason,
            reservation_id, actor, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        uuid::Uuid::now_v7().to_string(),
        guest_id,
        kind,
        points,
        balance,
        reason,
        reservation_id,
        actor,
        now
    ])?;
    Ok(balance)
}

/// Credits the points `property_id`'s loyalty rule gives for `revenue_minor` of a stay to
/// `guest_id`'s account (enrolling the guest if needed). Called by check-out inside its
/// transaction; a guest without a profile or an erased guest earns nothing. A profile merged
/// away earns on the profile it was merged into. Earning twice for one reservation is a
/// no-op (a repeated check-out does not pay twice).
pub fn earn_on_checkout(
    tx: &Connection,
    property_id: &str,
    guest_id: &str,
    reservation_id: &str,
    revenue_minor: i64,
    actor: &str,
    now: i64,
) -> Result<(), ApiError> {
    let mut guest_id = guest_id.to_string();
    for _ in 0..4 {
        let found: Option<(String, i64)> = tx
            .prepare_cached("SELECT merged_into, erased_at FROM guests WHERE id = ?1")?
            .query_row([&guest_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match found {
            None => return Ok(()),
            Some((_, erased)) if erased > 0 => return Ok(()),
            Some((merged, _)) if !merged.is_empty() => guest_id = merged,
            Some(_) => break,
        }
    }
    let earned_before: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM loyalty_ledger
             WHERE guest_id = ?1 AND kind = 'earn' AND reservation_id = ?2)",
        )?
        .query_row(params![guest_id, reservation_id], |r| r.get(0))?;
    if earned_before {
        return Ok(());
    }
    let points = rule_of(tx, property_id)?.points_for(revenue_minor);
    enroll(tx, property_id, &guest_id, now)?;
    if points > 0 {
        post(
            tx,
            property_id,
            &guest_id,
            "earn",
            points,
            points,
            "stay",
            reservation_id,
            actor,
            now,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_floored_per_major_unit_and_tiers_follow_lifetime_points() {
        let rule = Rule::parse("");
        assert_eq!(rule.points_for(12_345), 1234);
        assert_eq!(rule.points_for(-5), 0);
        assert_eq!(rule.tier_for(0), "member");
        assert_eq!(rule.tier_for(5000), "silver");
        assert_eq!(rule.tier_for(25_000), "gold");
        let custom =
            Rule::parse(r#"{"points_per_unit": 1, "tiers": [{"name":"a","min_points":0}]}"#);
        assert_eq!(custom.points_for(999), 9);
    }
}
