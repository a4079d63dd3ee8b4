//! Seeding a property's inventory: room types with rooms, cancellation policies, rate plans
//! and a calendar of prices. The demo and the tests use it; it writes through the caller's
//! transaction (the single write path), so every row is captured for replication.

use jiff::civil::Date;
use rusqlite::{Connection, params};

use crate::dates;

/// One room type to create, with `rooms` rooms numbered from `first_number`.
#[derive(Debug, Clone)]
pub struct TypeSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub rooms: usize,
    pub first_number: u32,
    pub base_occupancy: i64,
    pub max_adults: i64,
    pub max_children: i64,
    /// Nightly price of the flexible plan; the non-refundable plan sells at 85 % of it.
    pub price_minor: i64,
}

#[derive(Debug, Clone)]
pub struct InventorySpec {
    pub types: Vec<TypeSpec>,
    /// Prices are written for the nights `[from, from + nights)`.
    pub from: Date,
    pub nights: i64,
    /// VAT in basis points (inclusive) and city tax per adult-night.
    pub vat_rate_bp: i64,
    pub city_tax_minor: i64,
}

impl InventorySpec {
    /// A small hotel for tests: 2 doubles at 100.00, 1 suite at 250.00, 10 % VAT included,
    /// 2.50 city tax, prices for 400 nights from `from`.
    pub fn small(from: Date) -> InventorySpec {
        InventorySpec {
            types: vec![
                TypeSpec {
                    code: "DBL",
                    name: "Double",
                    rooms: 2,
                    first_number: 101,
                    base_occupancy: 2,
                    max_adults: 2,
                    max_children: 1,
                    price_minor: 10_000,
                },
                TypeSpec {
                    code: "STE",
                    name: "Suite",
                    rooms: 1,
                    first_number: 201,
                    base_occupancy: 2,
                    max_adults: 4,
                    max_children: 2,
                    price_minor: 25_000,
                },
            ],
            from,
            nights: 400,
            vat_rate_bp: 1_000,
            city_tax_minor: 250,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededType {
    pub id: String,
    pub code: String,
    pub room_ids: Vec<String>,
    pub room_numbers: Vec<String>,
}

/// What was created, by id.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededInventory {
    pub room_types: Vec<SeededType>,
    /// Flexible (free cancellation until 24 h before, then first night): code `FLEX`.
    pub flexible_rate_id: String,
    /// Non-refundable (full stay charged on cancellation): code `NREF`.
    pub non_refundable_rate_id: String,
    pub flexible_policy_id: String,
    pub non_refundable_policy_id: String,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Creates the inventory of `spec` at `property_id` and sets its tax settings.
pub fn inventory(
    tx: &Connection,
    property_id: &str,
    spec: &InventorySpec,
    now: i64,
) -> rusqlite::Result<SeededInventory> {
    tx.execute(
        "UPDATE properties SET vat_rate_bp = ?2, vat_inclusive = 1, city_tax_minor = ?3,
                updated_at = ?4 WHERE id = ?1",
        params![property_id, spec.vat_rate_bp, spec.city_tax_minor, now],
    )?;
    let flexible_policy_id = new_id();
    let non_refundable_policy_id = new_id();
    let mut policy = tx.prepare_cached(
        "INSERT INTO cancellation_policies (id, property_id, name, free_until_hours, fee_kind,
             no_show_fee_kind, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?;
    policy.execute(params![
        flexible_policy_id,
        property_id,
        "Free cancellation until 24 hours before arrival",
        24,
        "first_night",
        "first_night",
        now
    ])?;
    policy.execute(params![
        non_refundable_policy_id,
        property_id,
        "Non-refundable",
        0,
        "full",
        "full",
        now
    ])?;
    let flexible_rate_id = new_id();
    let non_refundable_rate_id = new_id();
    let mut plan = tx.prepare_cached(
        "INSERT INTO rate_plans (id, property_id, code, name, cancellation_policy_id,
             breakfast_included, extra_adult_minor, extra_child_minor, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    plan.execute(params![
        flexible_rate_id,
        property_id,
        "FLEX",
        "Flexible, breakfast included",
        flexible_policy_id,
        1,
        3_000,
        1_500,
        now
    ])?;
    plan.execute(params![
        non_refundable_rate_id,
        property_id,
        "NREF",
        "Non-refundable, room only",
        non_refundable_policy_id,
        0,
        2_500,
        1_000,
        now
    ])?;

    let mut room_type = tx.prepare_cached(
        "INSERT INTO room_types (id, property_id, code, name, base_occupancy, max_adults,
             max_children, max_occupancy, sort_order, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?;
    let mut room = tx.prepare_cached(
        "INSERT INTO rooms (id, property_id, room_type_id, number, floor, status, status_at,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'clean', ?6, ?6, ?6)",
    )?;
    let mut price = tx.prepare_cached(
        "INSERT INTO rate_prices (rate_plan_id, room_type_id, night, price_minor)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let to = spec.from.checked_add(jiff::Span::new().days(spec.nights)).unwrap_or(spec.from);
    let mut types = Vec::with_capacity(spec.types.len());
    for (order, t) in spec.types.iter().enumerate() {
        let id = new_id();
        room_type.execute(params![
            id,
            property_id,
            t.code,
            t.name,
            t.base_occupancy,
            t.max_adults,
            t.max_children,
            t.max_adults + t.max_children,
            order as i64,
            now
        ])?;
        let mut room_ids = Vec::with_capacity(t.rooms);
        let mut room_numbers = Vec::with_capacity(t.rooms);
        for n in 0..t.rooms {
            let room_id = new_id();
            let number = (t.first_number + n as u32).to_string();
            let floor = number[..number.len().saturating_sub(2)].to_string();
            room.execute(params![room_id, property_id, id, number, floor, now])?;
            room_ids.push(room_id);
            room_numbers.push(number);
        }
        for night in dates::nights(spec.from, to) {
            let night = night.to_string();
            price.execute(params![flexible_rate_id, id, night, t.price_minor])?;
            price.execute(params![non_refundable_rate_id, id, night, t.price_minor * 85 / 100])?;
        }
        types.push(SeededType { id, code: t.code.to_string(), room_ids, room_numbers });
    }
    Ok(SeededInventory {
        room_types: types,
        flexible_rate_id,
        non_refundable_rate_id,
        flexible_policy_id,
        non_refundable_policy_id,
    })
}

// ---------------------------------------------------------------------------------------------
// The demo hotel: a believable property with guests and a season of reservations.
// ---------------------------------------------------------------------------------------------

/// Size and shape of the demo hotel.
#[derive(Debug, Clone)]
pub struct HotelSpec {
    /// Rooms in all (split over Single, Double, Twin, Junior Suite and Suite as 20/50/25/15/10
    /// of 120).
    pub rooms: usize,
    /// Guest profiles to create.
    pub guests: usize,
    /// Reservations arrive from this many days before the business date...
    pub days_back: i64,
    /// ...to this many days after it.
    pub days_ahead: i64,
    /// Longest stay in nights (stays are mostly short).
    pub max_stay: i64,
    /// Share of rooms the hotel tries to fill each night, in percent.
    pub occupancy_percent: u64,
    /// Seed of the pseudo-random generator: the same seed gives the same hotel.
    pub seed: u64,
}

impl HotelSpec {
    /// The `stayos-edge demo` hotel: 120 rooms on 6 floors, 3,000 guests, reservations from
    /// 90 days back to 90 days ahead.
    pub fn demo() -> HotelSpec {
        HotelSpec {
            rooms: 120,
            guests: 3_000,
            days_back: 90,
            days_ahead: 90,
            max_stay: 7,
            occupancy_percent: 78,
            seed: 0x5EED_CAFE,
        }
    }
}

/// Counts of what the demo seed created.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HotelSummary {
    pub room_types: usize,
    pub rooms: usize,
    pub guests: usize,
    pub reservations: usize,
    /// Reservations per status.
    pub by_status: std::collections::BTreeMap<String, usize>,
    pub room_blocks: usize,
}

/// The seeded demo hotel.
#[derive(Debug, Clone)]
pub struct DemoHotel {
    pub inventory: SeededInventory,
    pub guest_ids: Vec<String>,
    pub summary: HotelSummary,
}

/// Seeds the demo hotel described by `spec` at `property_id` in the caller's transaction:
/// inventory with a year of seasonal prices, guests, and reservations in every state that keep
/// the inventory invariants (reservation_nights, room_type_nights.sold, room_nights).
pub fn demo_hotel(
    tx: &Connection,
    property_id: &str,
    business_date: Date,
    now: i64,
    spec: &HotelSpec,
) -> rusqlite::Result<DemoHotel> {
    let mut booker = Booker::setup(tx, property_id, business_date, now, spec)?;
    let first = booker.start;
    let last = business_date
        .checked_add(jiff::Span::new().days(spec.days_ahead + 1))
        .unwrap_or(business_date);
    booker.book(tx, first, last)?;
    booker.finish(tx)?;
    Ok(booker.into_hotel())
}

/// Splitmix64: a tiny deterministic generator, enough for believable data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Sofía",
    "Mateo",
    "Léa",
    "Hugo",
    "Chloé",
    "Louis",
    "Mia",
    "Lukas",
    "Hannah",
    "Jonas",
    "Zoë",
    "Björn",
    "Ingrid",
    "Søren",
    "Åsa",
    "Mikael",
    "Giulia",
    "Francesco",
    "Chiara",
    "Lorenzo",
    "João",
    "Inês",
    "Tomás",
    "Beatriz",
    "Ana",
    "José",
    "María",
    "Javier",
    "Lucía",
    "Álvaro",
    "Agnieszka",
    "Paweł",
    "Zofia",
    "Jakub",
    "Dvořák",
    "Tereza",
    "Aiko",
    "Haruto",
    "Yuki",
    "Wei",
    "Mei",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Yusuf",
    "Elif",
    "Çağla",
    "Nikos",
    "Eleni",
    "Olga",
    "Dmitri",
    "Anouk",
    "Daan",
    "Sem",
    "Fenna",
    "Siobhán",
    "Seán",
    "Aoife",
    "Oliver",
    "Amelia",
    "George",
    "Isla",
    "Jack",
    "Charlotte",
    "James",
    "Grace",
    "Ethan",
    "Ava",
    "Lucas",
    "Amélie",
    "Théo",
    "Renée",
    "Jürgen",
    "Müge",
    "Ñuria",
    "Ólafur",
    "Guðrún",
    "Kofi",
    "Amara",
    "Chen",
    "Sung-min",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Brown",
    "García",
    "Martínez",
    "Rodríguez",
    "López",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weiß",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Girard",
    "Rossi",
    "Russo",
    "Bianchi",
    "Romano",
    "Esposito",
    "Silva",
    "Santos",
    "Gonçalves",
    "Pereira",
    "Kowalski",
    "Nowak",
    "Wiśniewski",
    "Novák",
    "Svoboda",
    "Andersson",
    "Johansson",
    "Nielsen",
    "Jørgensen",
    "Østergaard",
    "Virtanen",
    "Korhonen",
    "de Vries",
    "van der Berg",
    "Jansen",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Wang",
    "Li",
    "Zhang",
    "Kim",
    "Park",
    "Patel",
    "Sharma",
    "Khan",
    "Yılmaz",
    "Kaya",
    "Papadopoulos",
    "Ivanov",
    "Petrov",
    "Horváth",
    "Nagy",
    "Popescu",
    "Ionescu",
    "Jensen",
    "Hansen",
    "Berg",
    "Lindqvist",
    "Doyle",
    "Walsh",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Thomas",
    "Roberts",
    "Mensah",
    "Okafor",
    "Nguyễn",
    "Trần",
    "Cohen",
    "Levi",
    "Haddad",
];

/// (country code, dialling code, language, city, e-mail domain)
const COUNTRIES: &[(&str, &str, &str, &str, &str)] = &[
    ("DE", "49", "de", "Berlin", "web.de"),
    ("DE", "49", "de", "München", "gmx.de"),
    ("FR", "33", "fr", "Paris", "orange.fr"),
    ("FR", "33", "fr", "Lyon", "free.fr"),
    ("ES", "34", "es", "Madrid", "gmail.com"),
    ("IT", "39", "it", "Milano", "libero.it"),
    ("PT", "351", "pt", "Lisboa", "sapo.pt"),
    ("NL", "31", "nl", "Amsterdam", "ziggo.nl"),
    ("GB", "44", "en", "London", "btinternet.com"),
    ("IE", "353", "en", "Dublin", "eircom.net"),
    ("US", "1", "en", "New York", "gmail.com"),
    ("US", "1", "en", "Chicago", "outlook.com"),
    ("SE", "46", "sv", "Göteborg", "telia.com"),
    ("DK", "45", "da", "København", "mail.dk"),
    ("PL", "48", "pl", "Kraków", "wp.pl"),
    ("CZ", "420", "cs", "Praha", "seznam.cz"),
    ("JP", "81", "ja", "Tokyo", "yahoo.co.jp"),
    ("CN", "86", "zh", "Shanghai", "qq.com"),
    ("IN", "91", "en", "Mumbai", "gmail.com"),
    ("TR", "90", "tr", "İstanbul", "hotmail.com"),
    ("GR", "30", "el", "Athína", "otenet.gr"),
    ("BR", "55", "pt", "São Paulo", "uol.com.br"),
];

/// Lower-cases and folds accents for e-mail local parts ("Müller" → "muller").
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' | 'ę' => "e",
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ı' | 'ī' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'œ' => "oe",
            'ř' => "r",
            'ś' | 'š' | 'ş' => "s",
            'ß' => "ss",
            'ť' | 'ţ' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'ễ' | 'ệ' | 'ế' | 'ề' | 'ể' => "e",
            'ầ' | 'ấ' | 'ẩ' | 'ẫ' | 'ậ' | 'ắ' | 'ằ' | 'ẳ' | 'ẵ' | 'ặ' | 'ă' => {
                "a"
            }
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(folded);
    }
    out
}

/// Inserts `count` guests with varied names, e-mails, phones and countries; returns their ids
/// and display names.
pub fn guests(
    tx: &Connection,
    property_id: &str,
    count: usize,
    rng: &mut Rng,
    now: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO guests (id, property_id, first_name, last_name, search_name,
             search_name_first, email, email_norm, phone, phone_digits, city, country, language,
             nationality, vip, consent_email, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?13, ?14, ?15, ?15)",
    )?;
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let (country, dial, language, city, domain) = *rng.pick(COUNTRIES);
        let local = format!("{}.{}", fold(first), fold(last)).replace([' ', '\''], "");
        let email =
            if n % 37 == 0 { String::new() } else { format!("{local}{}@{domain}", n % 1000) };
        let subscriber = 100_000_000 + rng.below(899_999_999);
        let phone_digits = format!("{dial}{subscriber}");
        let phone = format!("+{dial} {subscriber}");
        let (search_name, search_name_first) = crate::guest::normalize::search_names(first, last);
        let id = new_id();
        insert.execute(params![
            id,
            property_id,
            first,
            last,
            search_name,
            search_name_first,
            email,
            phone,
            phone_digits,
            city,
            country,
            language,
            i64::from(rng.chance(3)),
            i64::from(rng.chance(40)),
            now - (rng.below(3 * 365) as i64) * 86_400_000,
        ])?;
        out.push((id, format!("{first} {last}")));
    }
    Ok(out)
}

/// The nightly FLEX price of a type on a date: base × season × weekend.
fn seasonal_price(base: i64, night: Date) -> i64 {
    let season = match night.month() {
        7 | 8 => 135,
        6 | 9 => 120,
        12 => 115,
        1 | 2 => 85,
        11 => 90,
        _ => 100,
    };
    let weekend = match night.weekday() {
        jiff::civil::Weekday::Friday | jiff::civil::Weekday::Saturday => 115,
        _ => 100,
    };
    // Round to whole currency units.
    (base * season * weekend / 10_000) / 100 * 100
}

fn demo_types(rooms: usize) -> Vec<TypeSpec> {
    // (code, name, share of 120, base, max adults, max children, FLEX price)
    let shapes: [(&'static str, &'static str, usize, i64, i64, i64, i64); 5] = [
        ("SGL", "Single", 20, 1, 1, 0, 8_900),
        ("DBL", "Double", 50, 2, 2, 1, 11_900),
        ("TWN", "Twin", 25, 2, 2, 1, 11_900),
        ("JSU", "Junior Suite", 15, 2, 3, 2, 18_900),
        ("STE", "Suite", 10, 2, 4, 2, 28_900),
    ];
    let mut counts: Vec<usize> = shapes.iter().map(|s| (rooms * s.2 / 120).max(1)).collect();
    let assigned: usize = counts.iter().sum();
    if assigned < rooms {
        counts[1] += rooms - assigned;
    }
    shapes
        .iter()
        .zip(counts)
        .map(|(s, count)| TypeSpec {
            code: s.0,
            name: s.1,
            rooms: count,
            first_number: 0,
            base_occupancy: s.3,
            max_adults: s.4,
            max_children: s.5,
            price_minor: s.6,
        })
        .collect()
}

struct TypeState {
    id: String,
    max_adults: i64,
    max_children: i64,
    /// Index into `Booker::rooms` of this type's rooms.
    rooms: Vec<usize>,
}

struct RoomState {
    id: String,
    /// Nights taken, by day index from `Booker::start`.
    taken: Vec<bool>,
    status: &'static str,
}

/// Books reservations day by day over a calendar grid of rooms, so that no room-night is sold
/// twice and no type is sold beyond its rooms. Callers may book in windows (one transaction
/// each) for very large seeds.
pub struct Booker {
    property_id: String,
    currency: String,
    business_date: Date,
    now: i64,
    spec: HotelSpec,
    rng: Rng,
    /// First day of the grid and of the price calendar.
    pub start: Date,
    days: usize,
    inventory: SeededInventory,
    types: Vec<TypeState>,
    rooms: Vec<RoomState>,
    /// Nightly FLEX price per type per day index.
    prices: Vec<Vec<i64>>,
    guests: Vec<(String, String)>,
    /// Rooms sold per type per day index.
    sold: Vec<Vec<i64>>,
    summary: HotelSummary,
    vat_rate_bp: i64,
    city_tax_minor: i64,
}

const FLEX_EXTRA_CHILD: i64 = 1_500;
const NREF_EXTRA_CHILD: i64 = 1_000;

impl Booker {
    /// Creates the inventory (types, rooms over floors, rate plans, prices for every night
    /// of the grid), the guests and two room blocks; reservations come from `book`.
    pub fn setup(
        tx: &Connection,
        property_id: &str,
        business_date: Date,
        now: i64,
        spec: &HotelSpec,
    ) -> rusqlite::Result<Booker> {
        let mut rng = Rng::new(spec.seed);
        let start = business_date
            .checked_sub(jiff::Span::new().days(spec.days_back + 1))
            .unwrap_or(business_date);
        let end_ahead = (spec.days_ahead + spec.max_stay + 2).max(400);
        let end =
            business_date.checked_add(jiff::Span::new().days(end_ahead)).unwrap_or(business_date);
        let days = dates::nights_between(start, end).max(1) as usize;
        let type_specs = demo_types(spec.rooms);
        let inv_spec = InventorySpec {
            types: type_specs.iter().map(|t| TypeSpec { rooms: 0, ..t.clone() }).collect(),
            from: start,
            nights: 0,
            vat_rate_bp: 1_000,
            city_tax_minor: 250,
        };
        let mut inventory = inventory(tx, property_id, &inv_spec, now)?;
        tx.execute(
            "UPDATE properties SET business_date = ?2, address = ?3, city_tax_children = 0
             WHERE id = ?1",
            params![property_id, business_date.to_string(), "1 Harbour Quay"],
        )?;
        let currency: String =
            tx.query_row("SELECT currency FROM properties WHERE id = ?1", [property_id], |r| {
                r.get(0)
            })?;

        // Rooms over floors: about 20 a floor (6 floors for 120 rooms), numbered 101, 102...
        let floors = spec.rooms.div_ceil(20).clamp(1, 60);
        let per_floor = spec.rooms.div_ceil(floors).max(1);
        let mut room_insert = tx.prepare_cached(
            "INSERT INTO rooms (id, property_id, room_type_id, number, floor, status, status_at,
                 created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'clean', ?6, ?6, ?6)",
        )?;
        let mut price = tx.prepare_cached(
            "INSERT INTO rate_prices (rate_plan_id, room_type_id, night, price_minor)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let nights: Vec<Date> = dates::nights(start, end).collect();
        let night_text: Vec<String> = nights.iter().map(Date::to_string).collect();
        let mut types = Vec::new();
        let mut rooms = Vec::new();
        let mut prices = Vec::new();
        let mut index = 0usize;
        for (t, seeded) in type_specs.iter().zip(inventory.room_types.iter_mut()) {
            let mut mine = Vec::new();
            for _ in 0..t.rooms {
                let floor = index / per_floor + 1;
                let number = floor * 100 + index % per_floor + 1;
                let id = new_id();
                room_insert.execute(params![
                    id,
                    property_id,
                    seeded.id,
                    number.to_string(),
                    floor.to_string(),
                    now
                ])?;
                seeded.room_ids.push(id.clone());
                seeded.room_numbers.push(number.to_string());
                mine.push(rooms.len());
                rooms.push(RoomState { id, taken: vec![false; days], status: "clean" });
                index += 1;
            }
            let nightly: Vec<i64> =
                nights.iter().map(|n| seasonal_price(t.price_minor, *n)).collect();
            for (night, flex) in night_text.iter().zip(&nightly) {
                price.execute(params![inventory.flexible_rate_id, seeded.id, night, flex])?;
                price.execute(params![
                    inventory.non_refundable_rate_id,
                    seeded.id,
                    night,
                    flex * 85 / 100
                ])?;
            }
            prices.push(nightly);
            types.push(TypeState {
                id: seeded.id.clone(),
                max_adults: t.max_adults,
                max_children: t.max_children,
                rooms: mine,
            });
        }
        let guests = guests(tx, property_id, spec.guests, &mut rng, now)?;
        let sold = vec![vec![0; days]; types.len()];
        let mut booker = Booker {
            property_id: property_id.to_string(),
            currency,
            business_date,
            now,
            spec: spec.clone(),
            rng,
            start,
            days,
            inventory: inventory.clone(),
            types,
            rooms,
            prices,
            guests,
            sold,
            summary: HotelSummary::default(),
            vat_rate_bp: 1_000,
            city_tax_minor: 250,
        };
        booker.summary.room_types = booker.types.len();
        booker.summary.rooms = booker.rooms.len();
        booker.summary.guests = booker.guests.len();
        booker.blocks(tx)?;
        Ok(booker)
    }

    fn day(&self, date: Date) -> i64 {
        dates::nights_between(self.start, date)
    }

    fn date(&self, day: usize) -> Date {
        self.start.checked_add(jiff::Span::new().days(day as i64)).unwrap_or(self.start)
    }

    /// One room out of order from yesterday for three nights (a broken boiler), and one out
    /// of service next week; their nights are kept free of reservations.
    fn blocks(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        let today = self.day(self.business_date).max(0) as usize;
        let plans: [(usize, &str, i64, i64, &str); 2] = [
            (1, "out_of_order", -1, 3, "Boiler leak, plumber booked"),
            (2, "out_of_service", 7, 9, "Repainting"),
        ];
        let mut insert = tx.prepare_cached(
            "INSERT INTO room_blocks (id, property_id, room_id, kind, from_date, to_date, reason,
                 created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'system', ?8)",
        )?;
        for (type_index, kind, from, to, reason) in plans {
            let Some(t) = self.types.get(type_index) else { continue };
            let Some(&room) = t.rooms.last() else { continue };
            let from_day = (today as i64 + from).max(0) as usize;
            let to_day = ((today as i64 + to).max(0) as usize).min(self.days);
            if kind == "out_of_order" {
                for d in from_day..to_day {
                    self.rooms[room].taken[d] = true;
                }
                self.rooms[room].status = "out_of_order";
            }
            insert.execute(params![
                new_id(),
                self.property_id,
                self.rooms[room].id,
                kind,
                self.date(from_day).to_string(),
                self.date(to_day).to_string(),
                reason,
                self.now
            ])?;
            self.summary.room_blocks += 1;
        }
        Ok(())
    }

    /// Books reservations arriving on the days `[from, to)`.
    pub fn book(&mut self, tx: &Connection, from: Date, to: Date) -> rusqlite::Result<usize> {
        let mut reservation = tx.prepare_cached(
            "INSERT INTO reservations (id, property_id, confirmation_code, status, room_type_id,
                 room_id, rate_plan_id, arrival, departure, adults, children, guest_id,
                 guest_name, currency, total_minor, room_minor, vat_minor, city_tax_minor,
                 cancellation_fee_minor, hold_expires_at, source, created_by, created_at,
                 updated_at, confirmed_at, checked_in_at, checked_out_at, cancelled_at,
                 waitlisted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, 0, ?19, ?20, 'system', ?21, ?21, ?22, ?23, ?24, ?25, ?26)",
        )?;
        let mut night_insert = tx.prepare_cached(
            "INSERT INTO reservation_nights (reservation_id, night, property_id, room_type_id,
                 room_id, price_minor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut room_night = tx.prepare_cached(
            "INSERT INTO room_nights (room_id, night, reservation_id) VALUES (?1, ?2, ?3)",
        )?;
        let mut booked = 0usize;
        let today = self.day(self.business_date);
        let first = self.day(from).max(0);
        let last = self.day(to).min(self.days as i64);
        let total_rooms = self.rooms.len() as u64;
        let mut night_rows: Vec<(String, i64)> = Vec::new();
        for day in first..last {
            let half = (self.spec.max_stay.max(1) - 1) as f64 / 2.0;
            let mean_stay = 1.0 + half * half / self.spec.max_stay.max(1) as f64;
            let arrivals_target = (total_rooms as f64 * self.spec.occupancy_percent as f64
                / 100.0
                / mean_stay) as u64;
            let arrivals = arrivals_target / 2 + self.rng.below(arrivals_target + 1);
            for _ in 0..arrivals {
                let type_index = match self.rng.below(120) {
                    0..20 => 0,
                    20..70 => 1,
                    70..95 => 2,
                    95..110 => 3,
                    _ => 4,
                }
                .min(self.types.len() - 1);
                let stay = 1
                    + (self.rng.below(self.spec.max_stay as u64)
                        * self.rng.below(self.spec.max_stay as u64)
                        / self.spec.max_stay.max(1) as u64) as i64;
                let depart_day = (day + stay).min(self.days as i64);
                if depart_day <= day {
                    continue;
                }
                let (d0, d1) = (day as usize, depart_day as usize);
                let cancelled = self.rng.chance(6);
                let room = if cancelled {
                    None
                } else {
                    let rooms = &self.types[type_index].rooms;
                    let offset = self.rng.below(rooms.len() as u64) as usize;
                    (0..rooms.len())
                        .map(|i| rooms[(i + offset) % rooms.len()])
                        .find(|&r| self.rooms[r].taken[d0..d1].iter().all(|t| !t))
                };
                let status: &str = if cancelled {
                    "cancelled"
                } else if room.is_none() {
                    // Sold out: a few guests ask to be waitlisted for future dates.
                    if day > today && self.rng.chance(30) { "waitlisted" } else { continue }
                } else if depart_day < today || (depart_day == today && self.rng.chance(50)) {
                    if day < today && self.rng.chance(3) { "no_show" } else { "checked_out" }
                } else if day < today {
                    "checked_in"
                } else if day == today {
                    // Early arrivals are in already, unless the room's last guest is still due out.
                    let free_before = room.is_some_and(|r| d0 == 0 || !self.rooms[r].taken[d0 - 1]);
                    if free_before && self.rng.chance(35) { "checked_in" } else { "confirmed" }
                } else if self.rng.chance(12) {
                    "tentative"
                } else {
                    "confirmed"
                };
                let holds =
                    matches!(status, "tentative" | "confirmed" | "checked_in" | "checked_out");
                // Rooms are assigned to stays in the past, in house, and arriving within 2 days.
                let assigned = holds && day <= today + 2;
                let t = &self.types[type_index];
                let (type_id, max_adults, max_children) =
                    (t.id.clone(), t.max_adults, t.max_children);
                let adults = if max_adults == 1 { 1 } else { 1 + self.rng.below(2) as i64 };
                let children = if max_children > 0 && self.rng.chance(15) { 1 } else { 0 };
                let nref = self.rng.chance(30);
                let (rate_plan_id, extra_child) = if nref {
                    (self.inventory.non_refundable_rate_id.clone(), NREF_EXTRA_CHILD)
                } else {
                    (self.inventory.flexible_rate_id.clone(), FLEX_EXTRA_CHILD)
                };
                let nights = (d1 - d0) as i64;
                night_rows.clear();
                let mut room_minor = 0;
                for d in d0..d1 {
                    let flex = self.prices[type_index][d];
                    let mut p = if nref { flex * 85 / 100 } else { flex };
                    if adults + children > 2 {
                        p += extra_child * children;
                    }
                    room_minor += p;
                    night_rows.push((self.date(d).to_string(), p));
                }
                let vat_minor = (room_minor * self.vat_rate_bp + (10_000 + self.vat_rate_bp) / 2)
                    / (10_000 + self.vat_rate_bp);
                let city_tax_minor = self.city_tax_minor * adults * nights;
                let (guest_id, guest_name) =
                    self.guests[self.rng.below(self.guests.len() as u64) as usize].clone();
                let lead_days = 1 + self.rng.below(90) as i64;
                let arrival_ms = self.now + (day - today) * 86_400_000;
                let created_at = (arrival_ms - lead_days * 86_400_000).min(self.now - 60_000);
                let confirmed_at = if status == "tentative" || status == "waitlisted" {
                    0
                } else {
                    created_at + 60_000
                };
                let checked_in_at = if matches!(status, "checked_in" | "checked_out") {
                    (arrival_ms + 15 * 3_600_000).min(self.now - 1)
                } else {
                    0
                };
                let checked_out_at = if status == "checked_out" {
                    (self.now + (depart_day - today) * 86_400_000).min(self.now - 1)
                } else {
                    0
                };
                let cancelled_at = if status == "cancelled" { created_at + 86_400_000 } else { 0 };
                let waitlisted_at = if status == "waitlisted" { created_at } else { 0 };
                let hold = if status == "tentative" { self.now + 24 * 3_600_000 } else { 0 };
                let id = new_id();
                let room_id = match (assigned, room) {
                    (true, Some(r)) => self.rooms[r].id.clone(),
                    _ => String::new(),
                };
                let source =
                    *self.rng.pick(&["front_desk", "phone", "email", "website", "walk_in"]);
                let code = self.code();
                reservation.execute(params![
                    id,
                    self.property_id,
                    code,
                    status,
                    type_id,
                    room_id,
                    rate_plan_id,
                    self.date(d0).to_string(),
                    self.date(d1).to_string(),
                    adults,
                    children,
                    guest_id,
                    guest_name,
                    self.currency,
                    room_minor + city_tax_minor,
                    room_minor,
                    vat_minor,
                    city_tax_minor,
                    hold,
                    source,
                    created_at,
                    confirmed_at,
                    checked_in_at,
                    checked_out_at,
                    cancelled_at,
                    waitlisted_at
                ])?;
                if holds && let Some(r) = room {
                    for (i, d) in (d0..d1).enumerate() {
                        self.rooms[r].taken[d] = true;
                        self.sold[type_index][d] += 1;
                        let (night, price) = &night_rows[i];
                        night_insert.execute(params![
                            id,
                            night,
                            self.property_id,
                            type_id,
                            room_id,
                            price
                        ])?;
                        if !room_id.is_empty() {
                            room_night.execute(params![room_id, night, id])?;
                        }
                    }
                    if status == "checked_in" {
                        self.rooms[r].status = if self.rng.chance(50) { "dirty" } else { "clean" };
                    } else if status == "checked_out" && depart_day == today {
                        self.rooms[r].status = "dirty";
                    }
                }
                *self.summary.by_status.entry(status.to_string()).or_insert(0) += 1;
                self.summary.reservations += 1;
                booked += 1;
            }
        }
        Ok(booked)
    }

    fn code(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..8).map(|_| ALPHABET[self.rng.below(ALPHABET.len() as u64) as usize] as char).collect()
    }

    /// Writes the sold counters of every type-night and the rooms' housekeeping statuses.
    pub fn finish(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        let mut counter = tx.prepare_cached(
            "INSERT INTO room_type_nights (room_type_id, night, property_id, sold)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (room_type_id, night) DO UPDATE SET sold = excluded.sold",
        )?;
        for (t, sold) in self.types.iter().zip(&self.sold) {
            for (d, &n) in sold.iter().enumerate() {
                if n > 0 {
                    let night = self
                        .start
                        .checked_add(jiff::Span::new().days(d as i64))
                        .unwrap_or(self.start);
                    counter.execute(params![t.id, night.to_string(), self.property_id, n])?;
                }
            }
        }
        let mut status = tx.prepare_cached(
            "UPDATE rooms SET status = ?2, status_at = ?3, updated_at = ?3 WHERE id = ?1",
        )?;
        let today = self.day(self.business_date).max(0) as usize;
        for room in &mut self.rooms {
            let mut s = room.status;
            if s == "clean" && !room.taken.get(today).copied().unwrap_or(false) {
                s = match self.rng.below(10) {
                    0 => "dirty",
                    1..=3 => "inspected",
                    _ => "clean",
                };
            }
            if s != "clean" {
                status.execute(params![room.id, s, self.now])?;
            }
        }
        Ok(())
    }

    /// The hotel as seeded so far.
    pub fn into_hotel(self) -> DemoHotel {
        DemoHotel {
            inventory: self.inventory,
            guest_ids: self.guests.into_iter().map(|(id, _)| id).collect(),
            summary: self.summary,
        }
    }

    /// What was seeded so far.
    pub fn summary(&self) -> &HotelSummary {
        &self.summary
    }
}
