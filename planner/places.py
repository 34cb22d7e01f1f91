"""A bundled table of cities and airports, so the offline planner turns "San Francisco" into ``SFO`` without
a network call or a geocoding service.

It is deliberately small (the world's busiest business destinations and the cities the demo data uses);
anything not here is left for the user or the LLM planner to spell out. Names and longer aliases match case-
insensitively; IATA codes and short abbreviations ("SF", "LA", "NYC") only in capitals, so "la" in a
sentence or "sin" never becomes an airport.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LANDMARKS",
    "PLACES",
    "Place",
    "PlaceMention",
    "find_places",
    "landmark_city",
    "lookup_place",
]


@dataclass(frozen=True, slots=True)
class Place:
    city: str
    airport: str  # the main (usually international) airport's IATA code
    city_code: str  # IATA metropolitan area code where one exists (PAR, LON, NYC, TYO), else the airport
    country: str  # ISO 3166 alpha-2


@dataclass(frozen=True, slots=True)
class PlaceMention:
    start: int
    end: int
    text: str
    place: Place


# city, main airport, metro code, country, aliases (names match case-insensitively)
_CITIES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("San Francisco", "SFO", "SFO", "US", ("San Fran", "Frisco", "Bay Area", "SF")),
    ("Los Angeles", "LAX", "LAX", "US", ()),
    ("San Diego", "SAN", "SAN", "US", ()),
    ("San Jose", "SJC", "SJC", "US", ("Silicon Valley",)),
    ("Seattle", "SEA", "SEA", "US", ()),
    ("Portland", "PDX", "PDX", "US", ()),
    ("Las Vegas", "LAS", "LAS", "US", ("Vegas",)),
    ("Phoenix", "PHX", "PHX", "US", ()),
    ("Denver", "DEN", "DEN", "US", ()),
    ("Dallas", "DFW", "DFW", "US", ("Fort Worth",)),
    ("Houston", "IAH", "HOU", "US", ()),
    ("Austin", "AUS", "AUS", "US", ()),
    ("Chicago", "ORD", "CHI", "US", ()),
    ("Minneapolis", "MSP", "MSP", "US", ()),
    ("Detroit", "DTW", "DTT", "US", ()),
    ("Atlanta", "ATL", "ATL", "US", ()),
    ("Miami", "MIA", "MIA", "US", ()),
    ("Orlando", "MCO", "ORL", "US", ()),
    ("New York", "JFK", "NYC", "US", ("New York City", "Manhattan", "Big Apple", "NYC")),
    ("Boston", "BOS", "BOS", "US", ()),
    ("Washington", "IAD", "WAS", "US", ("Washington DC", "Washington D.C.")),
    ("Philadelphia", "PHL", "PHL", "US", ("Philly",)),
    ("Honolulu", "HNL", "HNL", "US", ("Hawaii",)),
    ("Toronto", "YYZ", "YTO", "CA", ()),
    ("Vancouver", "YVR", "YVR", "CA", ()),
    ("Montreal", "YUL", "YMQ", "CA", ("Montréal",)),
    ("Mexico City", "MEX", "MEX", "MX", ("Ciudad de México",)),
    ("Cancun", "CUN", "CUN", "MX", ("Cancún",)),
    ("São Paulo", "GRU", "SAO", "BR", ("Sao Paulo",)),
    ("Rio de Janeiro", "GIG", "RIO", "BR", ("Rio",)),
    ("Buenos Aires", "EZE", "BUE", "AR", ()),
    ("Lima", "LIM", "LIM", "PE", ()),
    ("Bogotá", "BOG", "BOG", "CO", ("Bogota",)),
    ("London", "LHR", "LON", "GB", ()),
    ("Paris", "CDG", "PAR", "FR", ()),
    ("Nice", "NCE", "NCE", "FR", ()),
    ("Amsterdam", "AMS", "AMS", "NL", ()),
    ("Brussels", "BRU", "BRU", "BE", ("Bruxelles",)),
    ("Frankfurt", "FRA", "FRA", "DE", ("Frankfurt am Main",)),
    ("Munich", "MUC", "MUC", "DE", ("München", "Muenchen")),
    ("Berlin", "BER", "BER", "DE", ()),
    ("Zurich", "ZRH", "ZRH", "CH", ("Zürich",)),
    ("Geneva", "GVA", "GVA", "CH", ("Genève",)),
    ("Vienna", "VIE", "VIE", "AT", ("Wien",)),
    ("Rome", "FCO", "ROM", "IT", ("Roma",)),
    ("Milan", "MXP", "MIL", "IT", ("Milano",)),
    ("Madrid", "MAD", "MAD", "ES", ()),
    ("Barcelona", "BCN", "BCN", "ES", ()),
    ("Lisbon", "LIS", "LIS", "PT", ("Lisboa",)),
    ("Dublin", "DUB", "DUB", "IE", ()),
    ("Copenhagen", "CPH", "CPH", "DK", ()),
    ("Stockholm", "ARN", "STO", "SE", ()),
    ("Oslo", "OSL", "OSL", "NO", ()),
    ("Helsinki", "HEL", "HEL", "FI", ()),
    ("Prague", "PRG", "PRG", "CZ", ("Praha",)),
    ("Warsaw", "WAW", "WAW", "PL", ()),
    ("Athens", "ATH", "ATH", "GR", ()),
    ("Edinburgh", "EDI", "EDI", "GB", ()),
    ("Manchester", "MAN", "MAN", "GB", ()),
    ("Porto", "OPO", "OPO", "PT", ("Oporto",)),
    ("Seville", "SVQ", "SVQ", "ES", ("Sevilla",)),
    ("Florence", "FLR", "FLR", "IT", ("Firenze",)),
    ("Venice", "VCE", "VCE", "IT", ("Venezia",)),
    ("Naples", "NAP", "NAP", "IT", ("Napoli",)),
    ("Budapest", "BUD", "BUD", "HU", ()),
    ("Krakow", "KRK", "KRK", "PL", ("Kraków", "Cracow")),
    ("Reykjavik", "KEF", "REK", "IS", ("Reykjavík",)),
    ("Marrakech", "RAK", "RAK", "MA", ("Marrakesh",)),
    ("Istanbul", "IST", "IST", "TR", ()),
    ("Dubai", "DXB", "DXB", "AE", ()),
    ("Doha", "DOH", "DOH", "QA", ()),
    ("Tel Aviv", "TLV", "TLV", "IL", ()),
    ("Cairo", "CAI", "CAI", "EG", ()),
    ("Johannesburg", "JNB", "JNB", "ZA", ()),
    ("Cape Town", "CPT", "CPT", "ZA", ()),
    ("Nairobi", "NBO", "NBO", "KE", ()),
    ("Mumbai", "BOM", "BOM", "IN", ("Bombay",)),
    ("Delhi", "DEL", "DEL", "IN", ("New Delhi",)),
    ("Bangalore", "BLR", "BLR", "IN", ("Bengaluru",)),
    ("Singapore", "SIN", "SIN", "SG", ()),
    ("Bangkok", "BKK", "BKK", "TH", ()),
    ("Hong Kong", "HKG", "HKG", "HK", ()),
    ("Shanghai", "PVG", "SHA", "CN", ()),
    ("Beijing", "PEK", "BJS", "CN", ("Peking",)),
    ("Seoul", "ICN", "SEL", "KR", ()),
    ("Tokyo", "NRT", "TYO", "JP", ()),
    ("Osaka", "KIX", "OSA", "JP", ()),
    # Kyoto has no airport of its own: Kansai (KIX) serves it; UKY is its IATA city code.
    ("Kyoto", "KIX", "UKY", "JP", ()),
    ("Taipei", "TPE", "TPE", "TW", ()),
    ("Manila", "MNL", "MNL", "PH", ()),
    ("Kuala Lumpur", "KUL", "KUL", "MY", ()),
    ("Jakarta", "CGK", "JKT", "ID", ()),
    ("Bali", "DPS", "DPS", "ID", ("Denpasar",)),
    ("Ho Chi Minh City", "SGN", "SGN", "VN", ("Saigon",)),
    ("Sydney", "SYD", "SYD", "AU", ()),
    ("Melbourne", "MEL", "MEL", "AU", ()),
    ("Auckland", "AKL", "AKL", "NZ", ()),
)

# Abbreviations that are only meant in capitals: "LA" is Los Angeles, "la" is not. ("SF" and "NYC" are
# names above: nobody writes "sf" or "nyc" meaning anything else.)
_SHORT_ALIASES: dict[str, str] = {
    "LA": "Los Angeles",
    "L.A.": "Los Angeles",
    "NY": "New York",
    "DC": "Washington",
    "D.C.": "Washington",
    "HK": "Hong Kong",
    "KL": "Kuala Lumpur",
    "CDMX": "Mexico City",
    "HCMC": "Ho Chi Minh City",
}

# Secondary airports: naming one picks that airport (and its city).
_AIRPORTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("JFK", "New York", ("Kennedy", "John F. Kennedy")),
    ("EWR", "New York", ("Newark",)),
    ("LGA", "New York", ("LaGuardia", "La Guardia")),
    ("LHR", "London", ("Heathrow",)),
    ("LGW", "London", ("Gatwick",)),
    ("STN", "London", ("Stansted",)),
    ("LCY", "London", ("London City Airport",)),
    ("CDG", "Paris", ("Charles de Gaulle", "Roissy")),
    ("ORY", "Paris", ("Orly",)),
    ("NRT", "Tokyo", ("Narita",)),
    ("HND", "Tokyo", ("Haneda",)),
    ("ORD", "Chicago", ("O'Hare", "OHare")),
    ("MDW", "Chicago", ("Midway",)),
    ("OAK", "San Francisco", ("Oakland",)),
    ("DCA", "Washington", ("Reagan National",)),
    ("IAD", "Washington", ("Dulles",)),
    ("BWI", "Washington", ()),
    ("FCO", "Rome", ("Fiumicino",)),
    ("LIN", "Milan", ("Linate",)),
    ("MXP", "Milan", ("Malpensa",)),
    ("SJC", "San Jose", ()),
    ("HOU", "Houston", ("Hobby",)),
    ("ICN", "Seoul", ("Incheon",)),
    ("GMP", "Seoul", ("Gimpo",)),
    ("PVG", "Shanghai", ("Pudong",)),
    ("SHA", "Shanghai", ("Hongqiao",)),
    ("PEK", "Beijing", ()),
    ("PKX", "Beijing", ("Daxing",)),
    ("KIX", "Osaka", ("Kansai",)),
    ("DXB", "Dubai", ()),
)

# Well-known landmarks, so "hotels near the Eiffel Tower" knows the city even when it is not named.
LANDMARKS: dict[str, str] = {
    "eiffel tower": "Paris",
    "louvre": "Paris",
    "notre dame": "Paris",
    "champs elysees": "Paris",
    "champs-élysées": "Paris",
    "arc de triomphe": "Paris",
    "big ben": "London",
    "tower bridge": "London",
    "buckingham palace": "London",
    "times square": "New York",
    "central park": "New York",
    "empire state building": "New York",
    "golden gate bridge": "San Francisco",
    "union square": "San Francisco",
    "colosseum": "Rome",
    "vatican": "Rome",
    "sagrada familia": "Barcelona",
    "brandenburg gate": "Berlin",
    "shibuya": "Tokyo",
    "shinjuku": "Tokyo",
    "burj khalifa": "Dubai",
    "marina bay": "Singapore",
    "opera house": "Sydney",
}

PLACES: dict[str, Place] = {}  # city name -> Place
_BY_NAME: dict[str, Place] = {}  # lower-cased name/alias -> Place
_BY_CODE: dict[str, Place] = {}  # exact capitals (IATA codes, short aliases) -> Place

for _city, _airport, _metro, _country, _aliases in _CITIES:
    _place = Place(city=_city, airport=_airport, city_code=_metro, country=_country)
    PLACES[_city] = _place
    for _alias in (_city, *_aliases):
        _BY_NAME[_alias.lower()] = _place
    _BY_CODE.setdefault(_airport, _place)
    _BY_CODE.setdefault(_metro, _place)

for _code, _city, _aliases in _AIRPORTS:
    _base = PLACES[_city]
    _at_airport = Place(city=_base.city, airport=_code, city_code=_base.city_code, country=_base.country)
    _BY_CODE[_code] = _at_airport
    for _alias in _aliases:
        _BY_NAME[_alias.lower()] = _at_airport

for _short, _city in _SHORT_ALIASES.items():
    _BY_CODE[_short] = PLACES[_city]


def _alternation(words: list[str]) -> str:
    # Longest first, so "New York City" wins over "New York" and "San Jose" never splits.
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PLACE_RE = re.compile(
    r"(?<![\w.])(?:(?i:"
    + _alternation(list(_BY_NAME))
    + r")|(?:"
    + _alternation(list(_BY_CODE))
    + r"))(?![\w])"
)
# Names that are also ordinary words: only a capitalised mention is the place ("nice hotels" is not Nice).
_CAPITALISED_ONLY: frozenset[str] = frozenset({"nice", "midway", "hobby", "rio", "kennedy", "phoenix"})

_LANDMARK_RE = re.compile(r"(?i)\b(?:" + _alternation(list(LANDMARKS)) + r")\b")


def lookup_place(name: str) -> Place | None:
    """The place a name, alias, IATA code or airport name stands for, or None."""
    text = name.strip()
    return _BY_CODE.get(text) or _BY_NAME.get(text.lower())


def find_places(text: str) -> list[PlaceMention]:
    """Every place mentioned in ``text``, in order of appearance."""
    mentions: list[PlaceMention] = []
    for match in _PLACE_RE.finditer(text):
        word = match.group(0)
        lowered = word.lower()
        if lowered in _CAPITALISED_ONLY and not word[0].isupper():
            continue
        place = _BY_CODE.get(word) or _BY_NAME.get(lowered)
        if place is not None:
            mentions.append(PlaceMention(match.start(), match.end(), word, place))
    return mentions


def landmark_city(landmark: str) -> Place | None:
    """The city of a well-known landmark mentioned in ``landmark``, or None."""
    match = _LANDMARK_RE.search(landmark)
    return PLACES.get(LANDMARKS[match.group(0).lower()]) if match else None
