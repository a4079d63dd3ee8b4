//! Privacy and profile hygiene: export everything about a guest, erase a guest, merge two
//! profiles of the same person.
//!
//! Erasure overwrites personal columns with `''`/defaults through `UPDATE`s (never a
//! `DELETE`), so it replicates like any other change and every site ends with the same
//! blanked row. Reservations are kept for accounting with `guest_name` 'Erased guest';
//! loyalty balances and ledger reasons are kept (they hold no personal data).

use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::documents::{self, DocumentView};
use super::loyalty::{self, Account, LedgerEntry};
use super::store::{self, Fields, GuestRow, GuestView, HistoryView};
use crate::http::error::ApiError;
use crate::time::rfc3339;

/// Everything stored about a guest.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestExport {
    pub exported_at: String,
    /// Profile with contact details, address, consent and preferences.
    pub profile: GuestView,
    /// Identity documents; numbers are masked here too (kind, country and expiry in full).
    pub documents: Vec<DocumentView>,
    /// Reservations with totals (other properties' stays without amounts or codes unless
    /// the caller holds `guest.chain`).
    pub history: HistoryView,
    pub loyalty_account: Option<Account>,
    pub loyalty_ledger: Vec<LedgerEntry>,
}

/// The export of `g`; `full_stay` says whose stays are shown with amounts and codes (see
/// `store::history`).
pub fn export(
    conn: &Connection,
    g: &GuestRow,
    full_stay: &dyn Fn(&str) -> bool,
    now: i64,
) -> rusqlite::Result<GuestExport> {
    Ok(GuestExport {
        exported_at: rfc3339(now),
        profile: g.view(),
        documents: documents::list(conn, &g.id)?,
        history: store::history(conn, &g.id, full_stay)?,
        loyalty_account: loyalty::account(conn, &g.id)?,
        loyalty_ledger: loyalty::ledger(conn, &g.id)?,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReport {
    pub guest_id: String,
    pub erased_at: String,
    /// Reservations whose guest name was blanked (kept for accounting).
    pub reservations: usize,
    pub documents: usize,
    /// False when the guest had already been erased (nothing changed).
    pub newly_erased: bool,
}

/// Overwrites the guest's personal data; idempotent.
pub fn erase(tx: &Connection, g: &GuestRow, now: i64) -> rusqlite::Result<ErasureReport> {
    if g.erased_at > 0 {
        return Ok(ErasureReport {
            guest_id: g.id.clone(),
            erased_at: rfc3339(g.erased_at),
            reservations: 0,
            documents: 0,
            newly_erased: false,
        });
    }
    let blank =
        Fields { first_name: "Erased".into(), last_name: "Guest".into(), ..Fields::default() };
    store::write_fields(tx, &g.id, &blank, now)?;
    tx.prepare_cached(
        "UPDATE guests SET search_name = '', search_name_first = '', pref_room = '',
            pref_pillow = '', pref_dietary = '', pref_tags = '[]', erased_at = ?2,
            updated_at = ?2
         WHERE id = ?1",
    )?
    .execute(params![g.id, now])?;
    documents::forget_numbers(tx, &g.id)?;
    let documents = tx
        .prepare_cached(
            "UPDATE guest_documents SET number = '', issuing_country = '', expires_on = ''
             WHERE guest_id = ?1",
        )?
        .execute([&g.id])?;
    let reservations = tx
        .prepare_cached("UPDATE reservations SET guest_name = 'Erased guest' WHERE guest_id = ?1")?
        .execute([&g.id])?;
    Ok(ErasureReport {
        guest_id: g.id.clone(),
        erased_at: rfc3339(now),
        reservations,
        documents,
        newly_erased: true,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergeReport {
    /// The surviving profile, after the merge.
    pub guest: GuestView,
    pub merged_from: String,
    pub reservations_moved: usize,
    pub documents_moved: usize,
    /// Points moved into the survivor's account.
    pub points_moved: i64,
}

fn fill(into: &mut String, from: &str) {
    if into.is_empty() {
        *into = from.to_string();
    }
}

/// Merges `from` into `into` (both live profiles of one property): reservations and
/// documents move, loyalty balances add up, empty fields of the survivor are filled from the
/// other, and `from` is marked merged into `into`.
pub fn merge(
    tx: &Connection,
    into: &GuestRow,
    from: &GuestRow,
    actor: &str,
    now: i64,
) -> Result<(usize, usize, i64), ApiError> {
    // Fill the survivor's empty fields.
    let mut f = into.fields.clone();
    let o = &from.fields;
    for (a, b) in [
        (&mut f.email, &o.email),
        (&mut f.phone, &o.phone),
        (&mut f.address_line1, &o.address_line1),
        (&mut f.address_line2, &o.address_line2),
        (&mut f.city, &o.city),
        (&mut f.postal_code, &o.postal_code),
        (&mut f.country, &o.country),
        (&mut f.language, &o.language),
        (&mut f.company, &o.company),
        (&mut f.notes, &o.notes),
        (&mut f.birth_date, &o.birth_date),
        (&mut f.nationality, &o.nationality),
    ] {
        fill(a, b);
    }
    f.vip = f.vip.max(o.vip);
    store::write_fields(tx, &into.id, &f, now)?;
    let mut prefs = into.preferences();
    let other = from.preferences();
    for (a, b) in [
        (&mut prefs.room, other.room),
        (&mut prefs.pillow, other.pillow),
        (&mut prefs.dietary, other.dietary),
    ] {
        if a.is_none() {
            *a = b;
        }
    }
    for tag in other.tags {
        if prefs.tags.len() < 20 && !prefs.tags.contains(&tag) {
            prefs.tags.push(tag);
        }
    }
    store::write_preferences(tx, &into.id, &prefs, now)?;

    let guest_name = format!("{} {}", f.first_name, f.last_name);
    let reservations = tx
        .prepare_cached(
            "UPDATE reservations SET guest_id = ?1, guest_name = ?2, updated_at = ?4
             WHERE guest_id = ?3",
        )?
        .execute(params![into.id, guest_name, from.id, now])?;
    let documents = tx
        .prepare_cached("UPDATE guest_documents SET guest_id = ?1 WHERE guest_id = ?2")?
        .execute(params![into.id, from.id])?;

    // Loyalty: the other account's balance and lifetime points move to the survivor.
    let mut moved = 0;
    if let Some(other_account) = loyalty::account(tx, &from.id)? {
        loyalty::enroll(tx, &into.property_id, &into.id, now)?;
        moved = other_account.balance;
        let reason = format!("merged from guest {}", from.id);
        loyalty::post(
            tx,
            &into.property_id,
            &into.id,
            "merge",
            other_account.balance,
            other_account.lifetime_points,
            &reason,
            "",
            actor,
            now,
        )?;
        if other_account.balance != 0 {
            let reason = format!("merged into guest {}", into.id);
            loyalty::post(
                tx,
                &into.property_id,
                &from.id,
                "merge",
                -other_account.balance,
                0,
                &reason,
                "",
                actor,
                now,
            )?;
        }
    }
    tx.prepare_cached("UPDATE guests SET merged_into = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![from.id, into.id, now])?;
    Ok((reservations, documents, moved))
}
