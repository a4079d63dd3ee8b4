-- Hotel core: property settings, room types, rooms, amenities, cancellation policies, rate
-- plans with nightly prices and restrictions, reservations with their nights, guests with
-- preferences, documents and loyalty, and housekeeping.
--
-- Every table here is replicated (see db::REPLICATED_TABLES) and follows cr-sqlite's rules:
-- NOT NULL primary keys (text UUIDv7 ids, or natural composite keys), no UNIQUE besides the
-- primary key, no enforced REFERENCES, every NOT NULL column has a DEFAULT. Uniqueness that
-- must hold at this node (room numbers, room-nights) is checked in the single write path and
-- made a primary key where two sites writing the same thing must collide (room_nights).
--
-- Conventions: dates are TEXT 'YYYY-MM-DD' (the property's local calendar); times are INTEGER
-- unix milliseconds (UTC); money is INTEGER minor units in the property's currency; rates
-- are INTEGER basis points (1000 = 10.00 %); soft deletion is `deleted_at` > 0 so that a
-- deletion replicates as an update and history keeps its references.

-- Property settings.
ALTER TABLE properties ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE properties ADD COLUMN check_in_time TEXT NOT NULL DEFAULT '15:00';
ALTER TABLE properties ADD COLUMN check_out_time TEXT NOT NULL DEFAULT '11:00';
ALTER TABLE properties ADD COLUMN vat_rate_bp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE properties ADD COLUMN vat_inclusive INTEGER NOT NULL DEFAULT 1;
ALTER TABLE properties ADD COLUMN city_tax_minor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE properties ADD COLUMN city_tax_children INTEGER NOT NULL DEFAULT 0;
ALTER TABLE properties ADD COLUMN business_date TEXT NOT NULL DEFAULT '';
ALTER TABLE properties ADD COLUMN tentative_hold_hours INTEGER NOT NULL DEFAULT 24;
-- Loyalty rule as JSON: {"points_per_unit": N, "tiers": [{"name": "...", "min_points": N}, ...]}.
ALTER TABLE properties ADD COLUMN loyalty_rule TEXT NOT NULL DEFAULT '';
ALTER TABLE properties ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;

CREATE TABLE room_types (
    id                    TEXT PRIMARY KEY NOT NULL,
    property_id           TEXT NOT NULL DEFAULT '',
    code                  TEXT NOT NULL DEFAULT '',
    name                  TEXT NOT NULL DEFAULT '',
    description           TEXT NOT NULL DEFAULT '',
    base_occupancy        INTEGER NOT NULL DEFAULT 2,
    max_adults            INTEGER NOT NULL DEFAULT 2,
    max_children          INTEGER NOT NULL DEFAULT 0,
    max_occupancy         INTEGER NOT NULL DEFAULT 2,
    overbooking_allowance INTEGER NOT NULL DEFAULT 0,
    sort_order            INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL DEFAULT 0,
    updated_at            INTEGER NOT NULL DEFAULT 0,
    deleted_at            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX room_types_by_property ON room_types (property_id);

CREATE TABLE rooms (
    id           TEXT PRIMARY KEY NOT NULL,
    property_id  TEXT NOT NULL DEFAULT '',
    room_type_id TEXT NOT NULL DEFAULT '',
    number       TEXT NOT NULL DEFAULT '',
    floor        TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    -- Housekeeping status: clean, dirty, inspected, out_of_order, out_of_service.
    status       TEXT NOT NULL DEFAULT 'clean',
    status_note  TEXT NOT NULL DEFAULT '',
    status_at    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL DEFAULT 0,
    deleted_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rooms_by_property ON rooms (property_id, number);
CREATE INDEX rooms_by_type ON rooms (room_type_id);

-- A room out of order (out of inventory) or out of service (sellable, flagged) for the
-- nights [from_date, to_date).
CREATE TABLE room_blocks (
    id          TEXT PRIMARY KEY NOT NULL,
    property_id TEXT NOT NULL DEFAULT '',
    room_id     TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL DEFAULT 'out_of_order',
    from_date   TEXT NOT NULL DEFAULT '',
    to_date     TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL DEFAULT 0,
    released_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX room_blocks_by_property ON room_blocks (property_id, to_date);
CREATE INDEX room_blocks_by_room ON room_blocks (room_id);

-- Every housekeeping status change, for the board's history.
CREATE TABLE room_status_events (
    id          TEXT PRIMARY KEY NOT NULL,
    property_id TEXT NOT NULL DEFAULT '',
    room_id     TEXT NOT NULL DEFAULT '',
    from_status TEXT NOT NULL DEFAULT '',
    to_status   TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL DEFAULT '',
    at          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX room_status_events_by_room ON room_status_events (room_id, at);

CREATE TABLE amenities (
    id          TEXT PRIMARY KEY NOT NULL,
    property_id TEXT NOT NULL DEFAULT '',
    code        TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL DEFAULT '',
    -- 'property' (pool, parking) or 'room' (balcony, bathtub).
    scope       TEXT NOT NULL DEFAULT 'room',
    created_at  INTEGER NOT NULL DEFAULT 0,
    deleted_at  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX amenities_by_property ON amenities (property_id);

CREATE TABLE room_type_amenities (
    room_type_id TEXT NOT NULL,
    amenity_id   TEXT NOT NULL,
    PRIMARY KEY (room_type_id, amenity_id)
);

CREATE TABLE cancellation_policies (
    id                TEXT PRIMARY KEY NOT NULL,
    property_id       TEXT NOT NULL DEFAULT '',
    name              TEXT NOT NULL DEFAULT '',
    -- Free cancellation until this many hours before the arrival day's check-in time.
    free_until_hours  INTEGER NOT NULL DEFAULT 24,
    -- Fee after that: 'none', 'first_night', 'percent' (of the stay's total), 'full'.
    fee_kind          TEXT NOT NULL DEFAULT 'first_night',
    fee_percent_bp    INTEGER NOT NULL DEFAULT 0,
    -- Fee for a no-show, same kinds.
    no_show_fee_kind  TEXT NOT NULL DEFAULT 'first_night',
    created_at        INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL DEFAULT 0,
    deleted_at        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cancellation_policies_by_property ON cancellation_policies (property_id);

CREATE TABLE rate_plans (
    id                     TEXT PRIMARY KEY NOT NULL,
    property_id            TEXT NOT NULL DEFAULT '',
    code                   TEXT NOT NULL DEFAULT '',
    name                   TEXT NOT NULL DEFAULT '',
    description            TEXT NOT NULL DEFAULT '',
    cancellation_policy_id TEXT NOT NULL DEFAULT '',
    breakfast_included     INTEGER NOT NULL DEFAULT 0,
    -- Per person-night above the room type's base occupancy.
    extra_adult_minor      INTEGER NOT NULL DEFAULT 0,
    extra_child_minor      INTEGER NOT NULL DEFAULT 0,
    active                 INTEGER NOT NULL DEFAULT 1,
    created_at             INTEGER NOT NULL DEFAULT 0,
    updated_at             INTEGER NOT NULL DEFAULT 0,
    deleted_at             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rate_plans_by_property ON rate_plans (property_id);

-- The price of one night of a room type under a rate plan, and that night's restrictions.
-- No row = not sellable under this plan that night.
CREATE TABLE rate_prices (
    rate_plan_id        TEXT NOT NULL,
    room_type_id        TEXT NOT NULL,
    night               TEXT NOT NULL,
    price_minor         INTEGER NOT NULL DEFAULT 0,
    min_stay            INTEGER NOT NULL DEFAULT 0,
    max_stay            INTEGER NOT NULL DEFAULT 0,
    closed_to_arrival   INTEGER NOT NULL DEFAULT 0,
    closed_to_departure INTEGER NOT NULL DEFAULT 0,
    stop_sell           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rate_plan_id, room_type_id, night)
);
CREATE INDEX rate_prices_by_type_night ON rate_prices (room_type_id, night);

CREATE TABLE reservations (
    id                     TEXT PRIMARY KEY NOT NULL,
    property_id            TEXT NOT NULL DEFAULT '',
    -- Shared by the reservations of one group booking; '' for a single one.
    group_id               TEXT NOT NULL DEFAULT '',
    -- Short code a guest reads over the phone.
    confirmation_code      TEXT NOT NULL DEFAULT '',
    -- tentative, confirmed, checked_in, checked_out, cancelled, no_show, waitlisted.
    status                 TEXT NOT NULL DEFAULT 'tentative',
    room_type_id           TEXT NOT NULL DEFAULT '',
    room_id                TEXT NOT NULL DEFAULT '',
    rate_plan_id           TEXT NOT NULL DEFAULT '',
    arrival                TEXT NOT NULL DEFAULT '',
    departure              TEXT NOT NULL DEFAULT '',
    adults                 INTEGER NOT NULL DEFAULT 1,
    children               INTEGER NOT NULL DEFAULT 0,
    guest_id               TEXT NOT NULL DEFAULT '',
    -- Denormalised for lists and search; overwritten when the guest is erased.
    guest_name             TEXT NOT NULL DEFAULT '',
    currency               TEXT NOT NULL DEFAULT '',
    -- What the guest pays for the stay, taxes included, and the parts of it.
    total_minor            INTEGER NOT NULL DEFAULT 0,
    room_minor             INTEGER NOT NULL DEFAULT 0,
    vat_minor              INTEGER NOT NULL DEFAULT 0,
    city_tax_minor         INTEGER NOT NULL DEFAULT 0,
    cancellation_fee_minor INTEGER NOT NULL DEFAULT 0,
    hold_expires_at        INTEGER NOT NULL DEFAULT 0,
    notes                  TEXT NOT NULL DEFAULT '',
    source                 TEXT NOT NULL DEFAULT 'front_desk',
    created_by             TEXT NOT NULL DEFAULT '',
    created_at             INTEGER NOT NULL DEFAULT 0,
    updated_at             INTEGER NOT NULL DEFAULT 0,
    confirmed_at           INTEGER NOT NULL DEFAULT 0,
    checked_in_at          INTEGER NOT NULL DEFAULT 0,
    checked_out_at         INTEGER NOT NULL DEFAULT 0,
    cancelled_at           INTEGER NOT NULL DEFAULT 0,
    waitlisted_at          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reservations_by_arrival ON reservations (property_id, arrival);
CREATE INDEX reservations_by_departure ON reservations (property_id, departure);
CREATE INDEX reservations_by_status ON reservations (property_id, status, arrival);
CREATE INDEX reservations_by_guest ON reservations (guest_id);
CREATE INDEX reservations_by_group ON reservations (group_id);
CREATE INDEX reservations_by_code ON reservations (confirmation_code);
-- The minute task that cancels expired holds reads only the tentative ones.
CREATE INDEX reservations_by_hold ON reservations (hold_expires_at) WHERE status = 'tentative';

-- The nights a reservation holds inventory (tentative, confirmed, checked in, checked out),
-- with the room price of each night. Rows go when the reservation stops holding inventory.
CREATE TABLE reservation_nights (
    reservation_id TEXT NOT NULL,
    night          TEXT NOT NULL,
    property_id    TEXT NOT NULL DEFAULT '',
    room_type_id   TEXT NOT NULL DEFAULT '',
    room_id        TEXT NOT NULL DEFAULT '',
    price_minor    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (reservation_id, night)
);
CREATE INDEX reservation_nights_by_type ON reservation_nights (room_type_id, night);

-- Rooms sold per room type and night: the counter availability reads and the write path
-- checks and moves in the same transaction as reservation_nights.
CREATE TABLE room_type_nights (
    room_type_id TEXT NOT NULL,
    night        TEXT NOT NULL,
    property_id  TEXT NOT NULL DEFAULT '',
    sold         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_type_id, night)
);

-- A room-night belongs to at most one reservation: the primary key says so, here and
-- across sites.
CREATE TABLE room_nights (
    room_id        TEXT NOT NULL,
    night          TEXT NOT NULL,
    reservation_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room_id, night)
);
CREATE INDEX room_nights_by_reservation ON room_nights (reservation_id);

-- A reservation's timeline: every action, state change and promotion from the waitlist.
CREATE TABLE reservation_events (
    id             TEXT PRIMARY KEY NOT NULL,
    reservation_id TEXT NOT NULL DEFAULT '',
    property_id    TEXT NOT NULL DEFAULT '',
    kind           TEXT NOT NULL DEFAULT '',
    from_status    TEXT NOT NULL DEFAULT '',
    to_status      TEXT NOT NULL DEFAULT '',
    details        TEXT NOT NULL DEFAULT '{}',
    actor          TEXT NOT NULL DEFAULT '',
    at             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reservation_events_by_reservation ON reservation_events (reservation_id, at);

CREATE TABLE guests (
    id                TEXT PRIMARY KEY NOT NULL,
    property_id       TEXT NOT NULL DEFAULT '',
    first_name        TEXT NOT NULL DEFAULT '',
    last_name         TEXT NOT NULL DEFAULT '',
    -- Lower-cased, accent-folded "last first" and "first last" forms for prefix search.
    search_name       TEXT NOT NULL DEFAULT '',
    search_name_first TEXT NOT NULL DEFAULT '',
    email             TEXT NOT NULL DEFAULT '',
    email_norm        TEXT NOT NULL DEFAULT '',
    phone             TEXT NOT NULL DEFAULT '',
    -- Digits only, with the country code, for prefix search.
    phone_digits      TEXT NOT NULL DEFAULT '',
    address_line1     TEXT NOT NULL DEFAULT '',
    address_line2     TEXT NOT NULL DEFAULT '',
    city              TEXT NOT NULL DEFAULT '',
    postal_code       TEXT NOT NULL DEFAULT '',
    country           TEXT NOT NULL DEFAULT '',
    language          TEXT NOT NULL DEFAULT '',
    company           TEXT NOT NULL DEFAULT '',
    vip               INTEGER NOT NULL DEFAULT 0,
    notes             TEXT NOT NULL DEFAULT '',
    birth_date        TEXT NOT NULL DEFAULT '',
    nationality       TEXT NOT NULL DEFAULT '',
    -- Consent per channel (1 = may contact for marketing).
    consent_email     INTEGER NOT NULL DEFAULT 0,
    consent_sms       INTEGER NOT NULL DEFAULT 0,
    consent_phone     INTEGER NOT NULL DEFAULT 0,
    consent_post      INTEGER NOT NULL DEFAULT 0,
    -- Preferences.
    pref_room         TEXT NOT NULL DEFAULT '',
    pref_pillow       TEXT NOT NULL DEFAULT '',
    pref_dietary      TEXT NOT NULL DEFAULT '',
    pref_tags         TEXT NOT NULL DEFAULT '[]',
    -- Set on the profile merged away into another one.
    merged_into       TEXT NOT NULL DEFAULT '',
    erased_at         INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL DEFAULT 0
);
-- Search indexes: see the end of this file.

-- Identity documents seen at check-in.
CREATE TABLE guest_documents (
    id              TEXT PRIMARY KEY NOT NULL,
    guest_id        TEXT NOT NULL DEFAULT '',
    reservation_id  TEXT NOT NULL DEFAULT '',
    -- passport, id_card, driving_licence, residence_permit.
    kind            TEXT NOT NULL DEFAULT '',
    number          TEXT NOT NULL DEFAULT '',
    issuing_country TEXT NOT NULL DEFAULT '',
    expires_on      TEXT NOT NULL DEFAULT '',
    recorded_by     TEXT NOT NULL DEFAULT '',
    recorded_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX guest_documents_by_guest ON guest_documents (guest_id);

-- One loyalty account per guest (keyed by the guest id).
CREATE TABLE loyalty_accounts (
    guest_id        TEXT PRIMARY KEY NOT NULL,
    number          TEXT NOT NULL DEFAULT '',
    tier            TEXT NOT NULL DEFAULT '',
    balance         INTEGER NOT NULL DEFAULT 0,
    lifetime_points INTEGER NOT NULL DEFAULT 0,
    enrolled_at     INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE loyalty_ledger (
    id             TEXT PRIMARY KEY NOT NULL,
    guest_id       TEXT NOT NULL DEFAULT '',
    -- earn (on check-out), adjust (manual, with a reason), redeem, merge.
    kind           TEXT NOT NULL DEFAULT '',
    points         INTEGER NOT NULL DEFAULT 0,
    balance_after  INTEGER NOT NULL DEFAULT 0,
    reason         TEXT NOT NULL DEFAULT '',
    reservation_id TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL DEFAULT '',
    at             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX loyalty_ledger_by_guest ON loyalty_ledger (guest_id, at);

-- guests: search indexes. Every guest search is a range scan within one property ordered by
-- (column, id), so a page is read straight off the index and the keyset cursor seeks into it.
CREATE INDEX guests_search_search_name ON guests (property_id, search_name, id);
CREATE INDEX guests_search_search_name_first ON guests (property_id, search_name_first, id);
CREATE INDEX guests_search_email_norm ON guests (property_id, email_norm, id);
CREATE INDEX guests_search_phone_digits ON guests (property_id, phone_digits, id);
