//! The API's closed vocabularies, as the OpenAPI document gives them: each enum names the
//! values a field accepts or shows, so a generated client gets a union type instead of a
//! string. The validators keep their own lists (`housekeeping::store::STATUSES`,
//! `reservation::states::STATUSES`, …); the test below holds each enum to its list, so the
//! document and the checks cannot drift apart.

use serde::Serialize;
use utoipa::ToSchema;

/// A room's housekeeping status.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomStatus {
    Clean,
    Dirty,
    Inspected,
    OutOfOrder,
    OutOfService,
}

/// The statuses staff set directly (out of order comes only with a block).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettableRoomStatus {
    Clean,
    Dirty,
    Inspected,
    OutOfService,
}

/// What takes a room away: out of order leaves inventory, out of service does not.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    OutOfOrder,
    OutOfService,
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Tentative,
    Confirmed,
    CheckedIn,
    CheckedOut,
    Cancelled,
    NoShow,
    Waitlisted,
}

/// An identity document's kind.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Passport,
    IdCard,
    DrivingLicence,
    ResidencePermit,
}

/// What a cancellation or no-show costs.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeeKind {
    None,
    FirstNight,
    Percent,
    Full,
}

/// Whether an amenity is the property's or a room type's.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmenityScope {
    Property,
    Room,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: Serialize>(values: &[T]) -> Vec<String> {
        values
            .iter()
            .map(|v| serde_json::to_value(v).expect("json").as_str().expect("a name").to_string())
            .collect()
    }

    #[test]
    fn each_vocabulary_is_exactly_what_its_validator_accepts() {
        use RoomStatus as R;
        let rooms = [R::Clean, R::Dirty, R::Inspected, R::OutOfOrder, R::OutOfService];
        assert_eq!(names(&rooms), crate::housekeeping::store::STATUSES);
        use SettableRoomStatus as S;
        let settable = [S::Clean, S::Dirty, S::Inspected, S::OutOfService];
        assert_eq!(names(&settable), crate::housekeeping::routes::SETTABLE);
        let blocks = [BlockKind::OutOfOrder, BlockKind::OutOfService];
        assert_eq!(names(&blocks), crate::housekeeping::routes::BLOCK_KINDS);
        use ReservationStatus as Rs;
        let reservations = [
            Rs::Tentative,
            Rs::Confirmed,
            Rs::CheckedIn,
            Rs::CheckedOut,
            Rs::Cancelled,
            Rs::NoShow,
            Rs::Waitlisted,
        ];
        assert_eq!(names(&reservations), crate::reservation::states::STATUSES);
        use DocumentKind as D;
        let documents = [D::Passport, D::IdCard, D::DrivingLicence, D::ResidencePermit];
        assert_eq!(names(&documents), crate::guest::documents::KINDS);
        let fees = [FeeKind::None, FeeKind::FirstNight, FeeKind::Percent, FeeKind::Full];
        assert_eq!(names(&fees), crate::property::rates::FEE_KINDS);
        assert_eq!(
            names(&[AmenityScope::Property, AmenityScope::Room]),
            crate::property::rooms::AMENITY_SCOPES
        );
        use Weekday as W;
        let days = [W::Mon, W::Tue, W::Wed, W::Thu, W::Fri, W::Sat, W::Sun];
        assert_eq!(names(&days), crate::property::rates::WEEKDAYS);
    }
}
