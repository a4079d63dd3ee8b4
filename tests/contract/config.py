#!/usr/bin/env python3
"""Writes a schemathesis configuration for a running demo node: real ids for every path
parameter (random ids would only ever meet 404) and the ids a body or query names.

Usage: config.py BASE_URL TOKEN OUT_FILE [fixed]
  fixed: one id per parameter (the coverage phase ignores dictionaries).
"""
import json
import sys
import urllib.error
import urllib.request

base, key, out_file = sys.argv[1], sys.argv[2], sys.argv[3]
fixed = len(sys.argv) > 4 and sys.argv[4] == "fixed"


def call(path, method="GET", body=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None,
    )
    try:
        with urllib.request.urlopen(req) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"config.py: {method} {path} answered {e.code}: {e.read()[:300]!r}")


def items(path):
    return call(path)["items"]


prop = items("/properties")[0]["id"]
guests = [g["id"] for g in items("/guests?limit=30")]
reservations = []
for status in ["tentative", "confirmed", "checked_in", "waitlisted", "checked_out", "cancelled", "no_show"]:
    reservations += [r["id"] for r in items(f"/reservations?status={status}&limit=4")]
if not items(f"/properties/{prop}/amenities"):
    call(f"/properties/{prop}/amenities", "POST", {"code": "WIFI", "name": "Wi-Fi", "scope": "property"})
ids = dict(
    prop=[prop],
    guest=guests[:10],
    guest_erase=guests[10:20],
    guest_merge=guests[20:30],
    res=reservations,
    room=[r["id"] for r in items(f"/properties/{prop}/rooms")][:10],
    rt=[r["id"] for r in items(f"/properties/{prop}/room-types")],
    rp=[r["id"] for r in items(f"/properties/{prop}/rate-plans")],
    pol=[r["id"] for r in items(f"/properties/{prop}/cancellation-policies")],
    am=[a["id"] for a in items(f"/properties/{prop}/amenities")],
    block=[b["id"] for b in items(f"/properties/{prop}/room-blocks")] or ["none"],
    staff=[s["id"] for s in items("/staff") if s["role"] != "owner"] or ["none"],
)

out = []
if not fixed:
    for name, values in ids.items():
        out.append(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n")


def operation(regex, params):
    text = f"[[operations]]\ninclude-path-regex = '{regex}'\n"
    if fixed:
        pairs = ", ".join(f'"{p}" = "{ids[d][0]}"' for p, d in params)
    else:
        pairs = ", ".join(f'"{p}" = {{ dictionary = "{d}", probability = 0.9 }}' for p, d in params)
    out.append(text + "parameters = { " + pairs + " }\n")


operation(r"^/guests/\{id\}(?!/(erase|merge))", [("path.id", "guest")])
operation(r"^/guests/\{id\}/erase", [("path.id", "guest_erase")])
operation(r"^/guests/\{id\}/merge", [("path.id", "guest_merge")])
operation(r"^/reservations/\{id\}", [("path.id", "res")])
operation(r"^/staff/\{id\}", [("path.id", "staff")])
operation(r"^/properties/\{id\}$", [("path.id", "prop")])
operation(
    r"^/properties/\{id\}/(amenities|arrivals|availability|cancellation-policies|departures"
    r"|end-of-day|housekeeping|in-house|rate-plans|room-blocks|room-types|rooms)$",
    [("path.id", "prop")],
)
operation(r"^/properties/\{id\}/amenities/", [("path.id", "prop"), ("path.amenity_id", "am")])
operation(r"^/properties/\{id\}/cancellation-policies/", [("path.id", "prop"), ("path.policy_id", "pol")])
operation(r"^/properties/\{id\}/rate-plans/", [("path.id", "prop"), ("path.rate_plan_id", "rp")])
operation(r"^/properties/\{id\}/room-blocks/", [("path.id", "prop"), ("path.block_id", "block")])
operation(r"^/properties/\{id\}/room-types/", [("path.id", "prop"), ("path.room_type_id", "rt")])
operation(r"^/properties/\{id\}/rooms/", [("path.id", "prop"), ("path.room_id", "room")])

# Writes under If-Match would otherwise need the current ETag, which generated data cannot
# know; `*` ("whatever the version") lets the checks reach the bodies.
header = '"header.If-Match" = "*"\n'
if not fixed:
    named = [
        ("query.property_id", "prop"), ("body.property_id", "prop"), ("body.room_type_id", "rt"),
        ("body.rate_plan_id", "rp"), ("body.guest_id", "guest"), ("query.guest_id", "guest"),
        ("body.cancellation_policy_id", "pol"), ("body.room_id", "room"),
    ]
    header += "".join(f'"{p}" = {{ dictionary = "{d}", probability = 0.8 }}\n' for p, d in named)
out.insert(0, "[parameters]\n" + header)
with open(out_file, "w") as f:
    f.write("\n".join(out))
