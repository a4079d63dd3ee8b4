//! The reservation state machine (after Mews' states and Apaleo's actions):
//!
//! ```text
//! tentative ──confirm──▶ confirmed ──check_in──▶ checked_in ──check_out──▶ checked_out
//!     │                     │                       │
//!     ├──cancel / delete──▶ cancelled ◀──cancel─────┘ (reverse_check_in → confirmed)
//!     └──no_show──────────▶ no_show ◀──no_show── confirmed
//! waitlisted ──(room frees up)──▶ tentative;  waitlisted ──cancel / delete──▶ cancelled
//! ```
//!
//! Tentative, confirmed, checked_in and checked_out hold inventory; cancelled, no_show and
//! waitlisted do not. An action not allowed in the current state is a 409 `invalid_state`
//! naming the status and the actions that are allowed.

use serde_json::json;

use crate::http::error::ApiError;

pub const TENTATIVE: &str = "tentative";
pub const CONFIRMED: &str = "confirmed";
pub const CHECKED_IN: &str = "checked_in";
pub const CHECKED_OUT: &str = "checked_out";
pub const CANCELLED: &str = "cancelled";
pub const NO_SHOW: &str = "no_show";
pub const WAITLISTED: &str = "waitlisted";

pub const STATUSES: [&str; 7] =
    [TENTATIVE, CONFIRMED, CHECKED_IN, CHECKED_OUT, CANCELLED, NO_SHOW, WAITLISTED];

/// Every action on a reservation, as named in `allowed_actions`.
pub const ACTIONS: [&str; 10] = [
    "confirm",
    "cancel",
    "check_in",
    "check_out",
    "no_show",
    "reverse_check_in",
    "assign_room",
    "unassign_room",
    "update",
    "delete",
];

/// The actions allowed in `status`. `update` is allowed everywhere, but what it may change
/// depends on the status (see `routes::update`).
pub fn allowed_actions(status: &str) -> &'static [&'static str] {
    match status {
        TENTATIVE => {
            &["confirm", "cancel", "no_show", "assign_room", "unassign_room", "update", "delete"]
        }
        CONFIRMED => &["cancel", "check_in", "no_show", "assign_room", "unassign_room", "update"],
        CHECKED_IN => &["check_out", "reverse_check_in", "assign_room", "update"],
        WAITLISTED => &["cancel", "update", "delete"],
        CHECKED_OUT | CANCELLED | NO_SHOW => &["update"],
        _ => &[],
    }
}

/// Whether a reservation in `status` holds inventory rows.
pub fn holds_inventory(status: &str) -> bool {
    matches!(status, TENTATIVE | CONFIRMED | CHECKED_IN | CHECKED_OUT)
}

/// Ok when `action` is allowed in `status`, else 409 `invalid_state`.
pub fn ensure(status: &str, action: &str) -> Result<(), ApiError> {
    let allowed = allowed_actions(status);
    if allowed.contains(&action) {
        return Ok(());
    }
    Err(ApiError::conflict(
        "invalid_state",
        format!("a {status} reservation cannot be {}", past(action)),
    )
    .with_details(json!({ "status": status, "action": action, "allowed_actions": allowed })))
}

fn past(action: &str) -> &str {
    match action {
        "confirm" => "confirmed",
        "cancel" => "cancelled",
        "check_in" => "checked in",
        "check_out" => "checked out",
        "no_show" => "marked as a no-show",
        "reverse_check_in" => "un-checked-in",
        "assign_room" => "assigned a room",
        "unassign_room" => "unassigned from its room",
        "delete" => "deleted",
        _ => "changed that way",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inventory_holding_states_hold_inventory() {
        let holding: Vec<_> = STATUSES.iter().filter(|s| holds_inventory(s)).collect();
        assert_eq!(holding, [&TENTATIVE, &CONFIRMED, &CHECKED_IN, &CHECKED_OUT]);
    }

    #[test]
    fn refusals_name_the_status_and_the_allowed_actions() {
        let err = ensure(CHECKED_OUT, "cancel").expect_err("refused");
        assert_eq!(err.code(), "invalid_state");
        assert!(ensure(CONFIRMED, "check_in").is_ok());
        assert!(ensure(TENTATIVE, "check_in").is_err());
    }
}
