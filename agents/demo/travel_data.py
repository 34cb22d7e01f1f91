"""Deterministic synthetic travel data for the ``amadeus-travel`` demo MCP server.

Pure functions only: no network, no clock, no global random source. Every search seeds its own
``random.Random`` from a SHA-256 of its normalised inputs (``hash()`` is salted per process), so the
same query returns the same answer in every process and on every machine; that is what lets
recorded workflow outputs be compared across runs.

A few routes, hotels and activities are hand-written so the seed examples read naturally (Air France
at $850 from SFO to CDG, Hotel Eiffel Palace 0.5 km from the Eiffel Tower); everything else is
generated. Every result says ``"synthetic": true``: these are demo data, never real offers.

Bad input raises :class:`TravelDataError` with a message meant for the caller (an LLM or a user)
to read and correct.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

__all__ = [
    "AIRLINES",
    "AIRPORTS",
    "ALLIANCES",
    "CABINS",
    "CATEGORIES",
    "CITIES",
    "TravelDataError",
    "search_activities",
    "search_flights",
    "search_hotels",
]

CURRENCY: Final = "USD"
ALLIANCES: Final = ("SkyTeam", "Star Alliance", "oneworld")
CABINS: Final = ("economy", "premium_economy", "business", "first")
CATEGORIES: Final = ("tour", "museum", "food", "outdoor", "culture", "nightlife")
_CABIN_FACTOR: Final = {"economy": 1.0, "premium_economy": 1.6, "business": 3.2, "first": 5.0}
_MAX_PASSENGERS: Final = 9
_MAX_NIGHTS: Final = 60
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_IATA: Final = re.compile(r"^[A-Z]{3}$")


class TravelDataError(ValueError):
    """The caller's input cannot be searched; the message says what to fix."""


# --- reference data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Airport:
    code: str
    city: str
    lat: float
    lon: float
    utc_offset: float  # summer offset; good enough for synthetic local times


@dataclass(frozen=True)
class Airline:
    code: str
    name: str
    alliance: str | None
    hubs: tuple[str, ...]


@dataclass(frozen=True)
class City:
    name: str
    country: str
    airports: tuple[str, ...]
    centre: tuple[float, float]
    districts: tuple[str, ...]
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)


AIRPORTS: Final[dict[str, Airport]] = {
    a.code: a
    for a in (
        Airport("SFO", "San Francisco", 37.6213, -122.3790, -7),
        Airport("OAK", "San Francisco", 37.7126, -122.2197, -7),
        Airport("LAX", "Los Angeles", 33.9416, -118.4085, -7),
        Airport("JFK", "New York", 40.6413, -73.7781, -4),
        Airport("EWR", "New York", 40.6895, -74.1745, -4),
        Airport("LGA", "New York", 40.7769, -73.8740, -4),
        Airport("ATL", "Atlanta", 33.6407, -84.4277, -4),
        Airport("ORD", "Chicago", 41.9742, -87.9073, -5),
        Airport("CDG", "Paris", 49.0097, 2.5479, 2),
        Airport("ORY", "Paris", 48.7262, 2.3652, 2),
        Airport("LHR", "London", 51.4700, -0.4543, 1),
        Airport("LGW", "London", 51.1537, -0.1821, 1),
        Airport("AMS", "Amsterdam", 52.3105, 4.7683, 2),
        Airport("FRA", "Frankfurt", 50.0379, 8.5622, 2),
        Airport("MUC", "Munich", 48.3537, 11.7750, 2),
        Airport("BER", "Berlin", 52.3667, 13.5033, 2),
        Airport("FCO", "Rome", 41.8003, 12.2389, 2),
        Airport("MAD", "Madrid", 40.4983, -3.5676, 2),
        Airport("BCN", "Barcelona", 41.2974, 2.0833, 2),
        Airport("HND", "Tokyo", 35.5494, 139.7798, 9),
        Airport("NRT", "Tokyo", 35.7720, 140.3929, 9),
    )
}

AIRLINES: Final[dict[str, Airline]] = {
    a.code: a
    for a in (
        Airline("AF", "Air France", "SkyTeam", ("CDG", "ORY")),
        Airline("KL", "KLM", "SkyTeam", ("AMS",)),
        Airline("DL", "Delta", "SkyTeam", ("ATL", "JFK")),
        Airline("VS", "Virgin Atlantic", "SkyTeam", ("LHR",)),
        Airline("UA", "United", "Star Alliance", ("SFO", "EWR", "ORD")),
        Airline("LH", "Lufthansa", "Star Alliance", ("FRA", "MUC")),
        Airline("NH", "ANA", "Star Alliance", ("HND", "NRT")),
        Airline("BA", "British Airways", "oneworld", ("LHR", "LGW")),
        Airline("AA", "American Airlines", "oneworld", ("JFK", "ORD")),
        Airline("IB", "Iberia", "oneworld", ("MAD",)),
        Airline("JL", "Japan Airlines", "oneworld", ("HND", "NRT")),
        Airline("AZ", "ITA Airways", None, ("FCO",)),
    )
}

CITIES: Final[dict[str, City]] = {
    c.name.lower(): c
    for c in (
        City(
            "Paris",
            "France",
            ("CDG", "ORY"),
            (48.8566, 2.3522),
            ("Saint-Germain", "Le Marais", "Montmartre", "Opera", "Bastille", "Champs-Elysees"),
            {
                "Eiffel Tower": (48.8584, 2.2945),
                "Louvre Museum": (48.8606, 2.3376),
                "Notre-Dame": (48.8530, 2.3499),
                "Arc de Triomphe": (48.8738, 2.2950),
                "Sacre-Coeur": (48.8867, 2.3431),
            },
        ),
        City(
            "London",
            "United Kingdom",
            ("LHR", "LGW"),
            (51.5072, -0.1276),
            ("Covent Garden", "Kensington", "Shoreditch", "Mayfair", "Southwark", "Marylebone"),
            {
                "Big Ben": (51.5007, -0.1246),
                "Tower of London": (51.5081, -0.0759),
                "British Museum": (51.5194, -0.1270),
                "London Eye": (51.5033, -0.1196),
            },
        ),
        City(
            "New York",
            "United States",
            ("JFK", "EWR", "LGA"),
            (40.7580, -73.9855),
            ("Midtown", "SoHo", "Chelsea", "Upper West Side", "Tribeca", "Financial District"),
            {
                "Times Square": (40.7580, -73.9855),
                "Central Park": (40.7829, -73.9654),
                "Empire State Building": (40.7484, -73.9857),
                "Statue of Liberty": (40.6892, -74.0445),
            },
        ),
        City(
            "Tokyo",
            "Japan",
            ("HND", "NRT"),
            (35.6812, 139.7671),
            ("Shinjuku", "Shibuya", "Ginza", "Asakusa", "Roppongi", "Ueno"),
            {
                "Tokyo Tower": (35.6586, 139.7454),
                "Senso-ji": (35.7148, 139.7967),
                "Shibuya Crossing": (35.6595, 139.7005),
                "Imperial Palace": (35.6852, 139.7528),
            },
        ),
        City(
            "San Francisco",
            "United States",
            ("SFO", "OAK"),
            (37.7749, -122.4194),
            ("Union Square", "Nob Hill", "SoMa", "Fisherman's Wharf", "Mission", "Embarcadero"),
            {
                "Golden Gate Bridge": (37.8199, -122.4783),
                "Union Square": (37.7880, -122.4075),
                "Fisherman's Wharf": (37.8080, -122.4177),
            },
        ),
        City(
            "Berlin",
            "Germany",
            ("BER",),
            (52.5200, 13.4050),
            ("Mitte", "Kreuzberg", "Prenzlauer Berg", "Charlottenburg", "Friedrichshain", "Tiergarten"),
            {
                "Brandenburg Gate": (52.5163, 13.3777),
                "Museum Island": (52.5169, 13.4019),
                "East Side Gallery": (52.5050, 13.4397),
            },
        ),
        City(
            "Rome",
            "Italy",
            ("FCO",),
            (41.9028, 12.4964),
            ("Trastevere", "Monti", "Prati", "Centro Storico", "Testaccio", "Esquilino"),
            {
                "Colosseum": (41.8902, 12.4922),
                "Vatican Museums": (41.9065, 12.4536),
                "Trevi Fountain": (41.9009, 12.4833),
                "Pantheon": (41.8986, 12.4769),
            },
        ),
        City(
            "Amsterdam",
            "Netherlands",
            ("AMS",),
            (52.3676, 4.9041),
            ("Jordaan", "De Pijp", "Centrum", "Oud-West", "Oost", "Zuid"),
            {"Rijksmuseum": (52.3600, 4.8852), "Anne Frank House": (52.3752, 4.8840)},
        ),
        City(
            "Barcelona",
            "Spain",
            ("BCN",),
            (41.3874, 2.1686),
            ("Eixample", "Gothic Quarter", "Gracia", "El Born", "Barceloneta", "Raval"),
            {"Sagrada Familia": (41.4036, 2.1744), "Park Guell": (41.4145, 2.1527)},
        ),
    )
}

# --- hand-written data behind the seed examples --------------------------------------------------


@dataclass(frozen=True)
class _Route:
    airline: str
    number: int
    departure: str
    minutes: int
    via: tuple[str, ...]
    price: int


# SFO -> CDG, as in the v1 seed's planning example (Air France $850 direct, Delta $920 one stop).
_CURATED_ROUTES: Final[dict[tuple[str, str], tuple[_Route, ...]]] = {
    ("SFO", "CDG"): (
        _Route("AF", 123, "10:00", 10 * 60 + 55, (), 850),
        _Route("KL", 606, "13:35", 13 * 60 + 20, ("AMS",), 895),
        _Route("DL", 456, "07:15", 14 * 60 + 5, ("ATL",), 920),
        _Route("LH", 455, "15:50", 13 * 60 + 40, ("FRA",), 980),
        _Route("UA", 990, "17:05", 10 * 60 + 45, (), 1045),
        _Route("BA", 284, "19:30", 13 * 60 + 55, ("LHR",), 1120),
        _Route("AF", 83, "15:40", 10 * 60 + 40, (), 1180),
    ),
}


@dataclass(frozen=True)
class _Hotel:
    name: str
    stars: int
    price: int
    north_km: float  # position relative to the anchor point given with the list
    east_km: float
    address: str
    amenities: tuple[str, ...]
    rating: float


# Paris hotels placed by offset from the Eiffel Tower, so the distances in the seed come out exact.
_PARIS_ANCHOR: Final = (48.8584, 2.2945)
_CURATED_HOTELS: Final[dict[str, tuple[_Hotel, ...]]] = {
    "paris": (
        _Hotel(
            "Hotel Eiffel Palace", 4, 180, 0.3, 0.4, "12 Avenue de Suffren, 75007 Paris",
            ("wifi", "breakfast", "gym", "bar"), 4.6,
        ),
        _Hotel(
            "Le Meridien Etoile", 4, 210, 0.96, 0.72, "81 Boulevard Gouvion Saint-Cyr, 75017 Paris",
            ("wifi", "breakfast", "gym", "restaurant", "bar"), 4.3,
        ),
        _Hotel(
            "Hotel du Champ de Mars", 3, 135, -0.6, 0.5, "7 Rue du Champ de Mars, 75007 Paris",
            ("wifi", "breakfast"), 4.4,
        ),
        _Hotel(
            "Citadines Tour Eiffel", 3, 150, -0.8, -0.6, "132 Boulevard de Grenelle, 75015 Paris",
            ("wifi", "kitchen", "laundry"), 4.0,
        ),
        _Hotel(
            "Shangri-La Paris", 5, 950, 0.7, -0.3, "10 Avenue d'Iena, 75116 Paris",
            ("wifi", "breakfast", "spa", "pool", "restaurant", "bar", "gym"), 4.8,
        ),
        _Hotel(
            "Hotel Louvre Lumiere", 4, 240, 0.6, 3.2, "4 Rue de Rivoli, 75001 Paris",
            ("wifi", "breakfast", "bar"), 4.2,
        ),
        _Hotel(
            "Le Grand Vendome", 5, 1150, 1.5, 3.1, "15 Place Vendome, 75001 Paris",
            ("wifi", "breakfast", "spa", "pool", "restaurant", "bar", "gym", "parking"), 4.9,
        ),
        _Hotel(
            "Marais Boutique Hotel", 3, 120, 0.1, 5.3, "22 Rue des Archives, 75004 Paris",
            ("wifi",), 4.1,
        ),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _Activity:
    name: str
    category: str
    price: int
    hours: float
    rating: float
    closed_weekdays: tuple[int, ...] = ()  # date.weekday(): Monday is 0


_CURATED_ACTIVITIES: Final[dict[str, tuple[_Activity, ...]]] = {
    "paris": (
        _Activity("Eiffel Tower Summit Access", "tour", 75, 2.0, 4.7),
        _Activity("Louvre Museum Guided Tour", "museum", 89, 3.0, 4.8, closed_weekdays=(1,)),
        _Activity("Musee d'Orsay Skip-the-Line Entry", "museum", 45, 2.5, 4.7, closed_weekdays=(0,)),
        _Activity("Seine River Dinner Cruise", "food", 135, 2.5, 4.5),
        _Activity("Montmartre Walking Tour", "tour", 35, 2.0, 4.6),
        _Activity("French Pastry Cooking Class", "food", 110, 3.0, 4.9),
        _Activity("Versailles Palace Day Trip", "culture", 150, 8.0, 4.6, closed_weekdays=(0,)),
        _Activity("Moulin Rouge Show", "nightlife", 160, 2.0, 4.4),
        _Activity("Luxembourg Gardens Picnic and Bike Ride", "outdoor", 55, 3.0, 4.3),
    ),
}

_ACTIVITY_TEMPLATES: Final = (
    ("{landmark} Guided Visit", "tour", 40, 2.0),
    ("{district} Food Walk", "food", 85, 3.0),
    ("{city} Museum Pass", "museum", 60, 4.0),
    ("{city} by Bike", "outdoor", 50, 3.0),
    ("{district} Street Art Tour", "culture", 30, 2.0),
    ("{city} Night Lights Tour", "nightlife", 55, 2.5),
    ("Cooking Class in {district}", "food", 95, 3.5),
    ("Day Trip from {city}", "outdoor", 140, 9.0),
)

_HOTEL_PREFIXES: Final = (
    "Grand Hotel",
    "Hotel",
    "Residence",
    "Boutique Hotel",
    "Park Hotel",
    "The Parkside",
    "Palace Hotel",
    "Inn",
)
_AMENITY_POOL: Final = ("wifi", "breakfast", "gym", "bar", "restaurant", "spa", "pool", "parking", "laundry")
_STAR_BASE_PRICE: Final = {1: 60, 2: 85, 3: 130, 4: 210, 5: 480}


# --- public searches ---------------------------------------------------------------------------------


def search_flights(
    origin: str,
    destination: str,
    departure_date: str,
    return_date: str | None = None,
    max_price: float | None = None,
    airline_alliance: str | None = None,
    cabin: str = "economy",
    passengers: int = 1,
) -> dict[str, Any]:
    """Flight offers for one route and date, cheapest first (matching alliance first when asked)."""
    org = _airport_code("origin", origin)
    dst = _airport_code("destination", destination)
    if org == dst:
        raise TravelDataError(f"origin and destination are the same airport {org!r}; choose two airports")
    depart = _parse_date("departure_date", departure_date)
    back = _parse_date("return_date", return_date) if return_date is not None else None
    if back is not None and back < depart:
        raise TravelDataError(
            f"return_date {back.isoformat()!r} is before departure_date {depart.isoformat()!r}; "
            "the return must be on or after the departure"
        )
    cabin_key = _choice("cabin", cabin, CABINS)
    alliance = _choice("airline_alliance", airline_alliance, ALLIANCES) if airline_alliance else None
    if not 1 <= passengers <= _MAX_PASSENGERS:
        raise TravelDataError(f"passengers must be between 1 and {_MAX_PASSENGERS}, got {passengers}")
    if max_price is not None and max_price <= 0:
        raise TravelDataError(f"max_price must be positive, got {max_price}")

    offers = []
    for route in _routes(org, dst, depart):
        offer = _offer(route, org, dst, depart, cabin_key, passengers)
        if back is not None:
            offer["return"] = _return_leg(route, dst, org, back)
        offers.append(offer)
    if max_price is not None:
        offers = [o for o in offers if o["price"] <= max_price]
    offers.sort(
        key=lambda o: (alliance is not None and o["alliance"] != alliance, o["price"], o["flight_number"])
    )
    return {
        "flights": offers,
        "count": len(offers),
        "search": {
            "origin": org,
            "destination": dst,
            "departure_date": depart.isoformat(),
            "return_date": back.isoformat() if back else None,
            "trip_type": "round_trip" if back else "one_way",
            "max_price": max_price,
            "airline_alliance": alliance,
            "cabin": cabin_key,
            "passengers": passengers,
            "currency": CURRENCY,
        },
        "synthetic": True,
    }


def search_hotels(
    city: str,
    check_in: str,
    check_out: str,
    star_rating: int | None = None,
    landmark: str | None = None,
    max_price_per_night: float | None = None,
    amenities: list[str] | None = None,
) -> dict[str, Any]:
    """Hotels in a city for a stay: nearest to the landmark first when one is given, else cheapest."""
    city_name, known = _city(city)
    arrive = _parse_date("check_in", check_in)
    leave = _parse_date("check_out", check_out)
    nights = (leave - arrive).days
    if nights < 1:
        raise TravelDataError(
            f"check_out {leave.isoformat()!r} must be after check_in {arrive.isoformat()!r} "
            "(a stay is at least one night)"
        )
    if nights > _MAX_NIGHTS:
        raise TravelDataError(f"stays are limited to {_MAX_NIGHTS} nights, got {nights}")
    if star_rating is not None and not 1 <= star_rating <= 5:
        raise TravelDataError(f"star_rating must be between 1 and 5, got {star_rating}")
    if max_price_per_night is not None and max_price_per_night <= 0:
        raise TravelDataError(f"max_price_per_night must be positive, got {max_price_per_night}")
    wanted = sorted({a.strip().lower() for a in amenities or [] if a.strip()})

    centre = known.centre if known else _synthetic_centre(city_name)
    point, point_name, note = centre, "city centre", None
    if landmark:
        found = _landmark(known, landmark)
        if found is not None:
            point_name, point = found
        else:
            note = (
                f"landmark {landmark!r} is not known for {city_name}; distances are from the city centre"
                + (f" (known landmarks: {', '.join(known.landmarks)})" if known and known.landmarks else "")
            )

    hotels = []
    for h, (lat, lon) in _hotels(city_name, known, centre):
        if star_rating is not None and h.stars != star_rating:
            continue
        if max_price_per_night is not None and h.price > max_price_per_night:
            continue
        if not set(wanted) <= set(h.amenities):
            continue
        hotels.append(
            {
                "name": h.name,
                "stars": h.stars,
                "price_per_night": h.price,
                "currency": CURRENCY,
                "nights": nights,
                "total_price": h.price * nights,
                "address": h.address,
                "distance_km": round(_haversine_km((lat, lon), point), 1),
                "landmark": point_name,
                "amenities": list(h.amenities),
                "rating": h.rating,
                "synthetic": True,
            }
        )
    if landmark:
        hotels.sort(key=lambda h: (h["distance_km"], h["price_per_night"], h["name"]))
    else:
        hotels.sort(key=lambda h: (h["price_per_night"], h["name"]))
    search: dict[str, Any] = {
        "city": city_name,
        "check_in": arrive.isoformat(),
        "check_out": leave.isoformat(),
        "nights": nights,
        "star_rating": star_rating,
        "landmark": landmark,
        "distance_from": point_name,
        "max_price_per_night": max_price_per_night,
        "amenities": wanted,
        "currency": CURRENCY,
    }
    if note:
        search["note"] = note
    return {"hotels": hotels, "count": len(hotels), "search": search, "synthetic": True}


def search_activities(city: str, date: str | None = None, category: str | None = None) -> dict[str, Any]:
    """Things to do in a city, best rated first; ``date`` drops activities closed that weekday."""
    city_name, known = _city(city)
    on = _parse_date("date", date) if date is not None else None
    cat = _choice("category", category, CATEGORIES) if category else None
    activities: list[dict[str, Any]] = [
        {
            "name": a.name,
            "category": a.category,
            "price": a.price,
            "currency": CURRENCY,
            "duration_hours": a.hours,
            "rating": a.rating,
            "synthetic": True,
        }
        for a in _activities(city_name, known)
        if (cat is None or a.category == cat) and (on is None or on.weekday() not in a.closed_weekdays)
    ]
    activities.sort(key=lambda a: (-a["rating"], a["price"], a["name"]))
    return {
        "activities": activities,
        "count": len(activities),
        "search": {"city": city_name, "date": on.isoformat() if on else None, "category": cat},
        "synthetic": True,
    }


# --- flights -------------------------------------------------------------------------------------------


def _routes(org: str, dst: str, day: date) -> list[_Route]:
    curated = _CURATED_ROUTES.get((org, dst))
    if curated is not None:
        return list(curated)
    rng = _rng("flights", org, dst, day.isoformat())
    km = _distance(org, dst) or rng.uniform(600, 9000)
    # Airlines based at either end fly direct; the rest connect through the hub with the least detour,
    # and sit out routes where every hub of theirs is far off the way (no LHR-SFO-HND itineraries).
    local = [c for c, al in AIRLINES.items() if {org, dst} & set(al.hubs)]
    connecting: dict[str, tuple[str, float]] = {}
    for code, airline in AIRLINES.items():
        if code in local:
            continue
        legs = [(hub, (_distance(org, hub) or km) + (_distance(hub, dst) or km / 4)) for hub in airline.hubs]
        hub, flown = min(legs, key=lambda leg: leg[1])
        if flown <= km * 1.35:
            connecting[code] = (hub, flown)
    picks = rng.sample(sorted(connecting), k=min(len(connecting), rng.randint(3, 4)))
    routes = []
    for code in [*local[:3], *picks]:
        via, flown = ((), km) if code in local else ((connecting[code][0],), connecting[code][1])
        minutes = int(flown / 820 * 60) + 35 + (rng.randint(70, 210) if via else 0)
        fare = max(79.0, km * rng.uniform(0.085, 0.15) + 60) * (0.9 if via else 1.0)
        hour, five = rng.randint(6, 22), rng.randint(0, 11)
        routes.append(
            _Route(code, rng.randint(10, 989), f"{hour:02d}:{five * 5:02d}", minutes, via, round(fare))
        )
    return routes


def _distance(a: str, b: str) -> float | None:
    """Great-circle km between two airports, or None when either is not in the reference table."""
    x, y = AIRPORTS.get(a), AIRPORTS.get(b)
    return _haversine_km((x.lat, x.lon), (y.lat, y.lon)) if x and y else None


def _offer(route: _Route, org: str, dst: str, day: date, cabin: str, passengers: int) -> dict[str, Any]:
    airline = AIRLINES[route.airline]
    dep = datetime.combine(day, datetime.strptime(route.departure, "%H:%M").time())
    arr = dep + timedelta(minutes=route.minutes) + timedelta(hours=_offset(dst) - _offset(org))
    price = round(route.price * _CABIN_FACTOR[cabin])
    return {
        "airline": airline.name,
        "flight_number": f"{airline.code}{route.number}",
        "alliance": airline.alliance,
        "origin": org,
        "destination": dst,
        "departure_date": day.isoformat(),
        "departure_time": dep.strftime("%H:%M"),
        "arrival_date": arr.date().isoformat(),
        "arrival_time": arr.strftime("%H:%M"),
        "duration": f"{route.minutes // 60}h {route.minutes % 60:02d}m",
        "stops": len(route.via),
        "via": list(route.via),
        "price": price,
        "total_price": price * passengers,
        "currency": CURRENCY,
        "cabin": cabin,
        "synthetic": True,
    }


def _return_leg(route: _Route, org: str, dst: str, day: date) -> dict[str, Any]:
    """The inbound leg of a round trip: same airline and routing, the next flight number."""
    rng = _rng("return", route.airline, str(route.number), org, dst, day.isoformat())
    dep = datetime.combine(day, datetime.min.time()) + timedelta(
        hours=rng.randint(7, 20), minutes=5 * rng.randint(0, 11)
    )
    arr = dep + timedelta(minutes=route.minutes + 40) + timedelta(hours=_offset(dst) - _offset(org))
    return {
        "flight_number": f"{route.airline}{route.number + 1}",
        "origin": org,
        "destination": dst,
        "departure_date": day.isoformat(),
        "departure_time": dep.strftime("%H:%M"),
        "arrival_date": arr.date().isoformat(),
        "arrival_time": arr.strftime("%H:%M"),
        "stops": len(route.via),
    }


def _offset(code: str) -> float:
    airport = AIRPORTS.get(code)
    return airport.utc_offset if airport else 0.0


# --- hotels and activities -----------------------------------------------------------------------------


def _hotels(
    city_name: str, known: City | None, centre: tuple[float, float]
) -> list[tuple[_Hotel, tuple[float, float]]]:
    key = city_name.lower()
    if key in _CURATED_HOTELS:
        return [(h, _shift(_PARIS_ANCHOR, h.north_km, h.east_km)) for h in _CURATED_HOTELS[key]]
    rng = _rng("hotels", key)
    districts = (
        known.districts if known else ("Old Town", "Riverside", "Station", "Harbour", "Market", "Park")
    )
    hotels = []
    names: set[str] = set()
    for stars in (2, 3, 3, 3, 4, 4, 4, 5, 5):
        district = rng.choice(districts)
        name = f"{rng.choice(_HOTEL_PREFIXES)} {district}"
        while name in names:
            name = f"{rng.choice(_HOTEL_PREFIXES)} {district} {rng.choice(('North', 'South', 'Central'))}"
        names.add(name)
        extra = rng.sample(_AMENITY_POOL[1:], k=min(len(_AMENITY_POOL) - 1, stars + rng.randint(-1, 1)))
        hotel = _Hotel(
            name=name,
            stars=stars,
            price=round(_STAR_BASE_PRICE[stars] * rng.uniform(0.8, 1.35)),
            north_km=rng.uniform(-4.5, 4.5),
            east_km=rng.uniform(-4.5, 4.5),
            address=f"{rng.randint(1, 180)} {district} Street, {city_name}",
            amenities=("wifi", *sorted(extra)),
            rating=round(rng.uniform(3.4, 4.3) + 0.1 * (stars - 3), 1),
        )
        hotels.append((hotel, _shift(centre, hotel.north_km, hotel.east_km)))
    return hotels


def _activities(city_name: str, known: City | None) -> list[_Activity]:
    key = city_name.lower()
    if key in _CURATED_ACTIVITIES:
        return list(_CURATED_ACTIVITIES[key])
    rng = _rng("activities", key)
    landmarks = list(known.landmarks) if known and known.landmarks else [f"{city_name} Old Town"]
    districts = known.districts if known else ("Old Town", "Riverside", "Market")
    out = []
    for template, category, price, hours in _ACTIVITY_TEMPLATES:
        name = template.format(city=city_name, landmark=rng.choice(landmarks), district=rng.choice(districts))
        out.append(
            _Activity(
                name, category, round(price * rng.uniform(0.8, 1.3)), hours, round(rng.uniform(4.0, 4.9), 1)
            )
        )
    return out


def _landmark(known: City | None, wanted: str) -> tuple[str, tuple[float, float]] | None:
    """Match loosely ("the eiffel tower", "Eiffel"), since planners and people phrase landmarks freely."""
    if known is None:
        return None
    key = _norm(wanted).removeprefix("the ")
    for name, point in known.landmarks.items():
        if _norm(name) == key:
            return name, point
    for name, point in known.landmarks.items():
        norm = _norm(name)
        if key and (key in norm or norm in key):
            return name, point
    return None


# --- normalisation and validation ----------------------------------------------------------------------


def _airport_code(field_name: str, value: str) -> str:
    """An IATA code, or a known city name mapped to its main airport (planners often send "Paris")."""
    raw = str(value).strip()
    code = raw.upper()
    if _IATA.match(code):
        return code
    city = CITIES.get(_norm(raw))
    if city is not None:
        return city.airports[0]
    raise TravelDataError(
        f"{field_name} must be a 3-letter IATA airport code such as 'SFO' or 'CDG', got {value!r}"
    )


def _city(value: str) -> tuple[str, City | None]:
    raw = " ".join(str(value).split())
    if not raw:
        raise TravelDataError("city must not be empty; give a city name such as 'Paris'")
    known = CITIES.get(_norm(raw))
    if known is None and _IATA.match(raw.upper()) and raw.upper() in AIRPORTS:
        known = CITIES.get(AIRPORTS[raw.upper()].city.lower())
    if known is not None:
        return known.name, known
    return raw.title(), None


def _parse_date(field_name: str, value: str) -> date:
    text = str(value).strip()
    try:
        if not _ISO_DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise TravelDataError(f"{field_name} must be an ISO date YYYY-MM-DD, got {value!r}") from None


def _choice(field_name: str, value: str | None, allowed: tuple[str, ...]) -> str:
    # "Star Alliance", "star_alliance" and "staralliance" all name the same option.
    wanted = _norm(str(value)).replace(" ", "")
    for option in allowed:
        if _norm(option).replace(" ", "") == wanted:
            return option
    raise TravelDataError(f"{field_name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _norm(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).split())


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _synthetic_centre(city_name: str) -> tuple[float, float]:
    rng = _rng("centre", city_name.lower())
    return (round(rng.uniform(-50, 60), 4), round(rng.uniform(-120, 140), 4))


def _shift(point: tuple[float, float], north_km: float, east_km: float) -> tuple[float, float]:
    lat, lon = point
    return (lat + north_km / 110.574, lon + east_km / (111.320 * math.cos(math.radians(lat))))


def _haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))
