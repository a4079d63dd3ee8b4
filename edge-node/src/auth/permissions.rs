//! Roles and the permission matrix: the one place that says who may do what.
//!
//! Every route names the permission it needs as a type, `Authorized<perm::X>`; the extractor
//! checks it against `Role::allows`. Adding a permission means adding a line to `permissions!`
//! and deciding, in `Role::allows`, which roles hold it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A staff role (DESIGN.md's security model). Roles are per account; the account's
/// properties scope where they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Manager,
    FrontDesk,
    Housekeeping,
    PosServer,
    PosManager,
    Accountant,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Owner,
        Role::Manager,
        Role::FrontDesk,
        Role::Housekeeping,
        Role::PosServer,
        Role::PosManager,
        Role::Accountant,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::FrontDesk => "front_desk",
            Role::Housekeeping => "housekeeping",
            Role::PosServer => "pos_server",
            Role::PosManager => "pos_manager",
            Role::Accountant => "accountant",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether an account with this role may give `other` to a new account or API key.
    /// Owners grant anything; managers grant the operational roles but not owner or manager,
    /// so nobody can raise an account above their own standing.
    pub fn can_grant(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Manager => !matches!(other, Role::Owner | Role::Manager),
            _ => false,
        }
    }

    /// The permission matrix.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        use Role as R;
        match permission {
            P::SelfService => true,
            P::StaffManage | P::ApiKeysManage => matches!(self, R::Owner | R::Manager),
            P::StaffRead => matches!(self, R::Owner | R::Manager | R::Auditor),
            P::AuditRead => matches!(self, R::Owner | R::Auditor),
            // Chain-level acts on a guest another property first saw: owners only.
            P::GuestChain => matches!(self, R::Owner),
            // Every role works at a property and may read its set-up: rooms, types, rates.
            P::PropertyRead => true,
            P::PropertyAdmin => matches!(self, R::Owner),
            P::PropertyManage | P::GuestPrivacy | P::LoyaltyAdjust => {
                matches!(self, R::Owner | R::Manager)
            }
            P::ReservationRead => matches!(
                self,
                R::Owner | R::Manager | R::FrontDesk | R::Housekeeping | R::Accountant | R::Auditor
            ),
            P::ReservationWrite | P::EndOfDay | P::GuestWrite => {
                matches!(self, R::Owner | R::Manager | R::FrontDesk)
            }
            P::GuestRead => matches!(self, R::Owner | R::Manager | R::FrontDesk | R::Accountant),
            P::HousekeepingRead | P::HousekeepingWrite => {
                matches!(self, R::Owner | R::Manager | R::FrontDesk | R::Housekeeping)
            }
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission a route can require, with a marker type in [`perm`] for the extractor.
pub trait RequiredPermission: Send + Sync + 'static {
    const PERMISSION: Permission;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission {
            $($(#[$doc])* $variant,)*
        }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$variant => $name,)*
                }
            }
        }

        /// Marker types naming a permission in a handler's signature.
        pub mod perm {
            $(
                $(#[$doc])*
                #[derive(Debug)]
                pub struct $variant;
                impl super::RequiredPermission for $variant {
                    const PERMISSION: super::Permission = super::Permission::$variant;
                }
            )*
        }
    };
}

permissions! {
    /// Anything a signed-in person does to their own account: profile, password, MFA, sessions.
    SelfService => "self.manage";
    /// Create staff accounts and change their roles.
    StaffManage => "staff.manage";
    /// List staff accounts.
    StaffRead => "staff.read";
    /// Create, list and revoke API keys for integrations.
    ApiKeysManage => "api_keys.manage";
    /// Read and verify the audit log.
    AuditRead => "audit.read";
    /// Read a property's set-up: settings, room types, rooms, amenities, rate plans, prices,
    /// availability.
    PropertyRead => "property.read";
    /// Change a property's settings, room types, rooms, amenities, policies, rates and prices.
    PropertyManage => "property.manage";
    /// Create and delete properties.
    PropertyAdmin => "property.admin";
    /// Read reservations and the arrival, departure and in-house lists.
    ReservationRead => "reservation.read";
    /// Create, change and act on reservations (confirm, cancel, check in and out, ...).
    ReservationWrite => "reservation.write";
    /// Close the business date (end of day: no-shows, expired holds).
    EndOfDay => "business_day.close";
    /// Read guest profiles, history, preferences and loyalty.
    GuestRead => "guest.read";
    /// Create and change guest profiles, preferences and documents.
    GuestWrite => "guest.write";
    /// Export, erase and merge guest profiles.
    GuestPrivacy => "guest.privacy";
    /// Adjust loyalty points by hand.
    LoyaltyAdjust => "loyalty.adjust";
    /// Export, erase, merge and adjust the loyalty points of guests first seen at another
    /// property, and see other properties' stays with amounts and confirmation codes.
    GuestChain => "guest.chain";
    /// Read the housekeeping board.
    HousekeepingRead => "housekeeping.read";
    /// Change room statuses and put rooms out of order.
    HousekeepingWrite => "housekeeping.write";
}
