"""The offline planner: the embedded default when no LLM is configured. It is not a language model, and
``Plan.planner == "offline"`` says so.

How it reads a query:

1. Split it into requests at "and", commas, semicolons, sentences and "then" ("find flights under $1000 and
   4-star hotels" is two requests). A piece that asks for nothing adds detail to the request before it;
   pieces before the first request ("Plan a business trip from SF to Paris for June 1-7") describe the whole
   query.
2. Match each request to capabilities by keywords (simple stemming and synonyms) against capability names
   (strong evidence), descriptions and parameter names (weak evidence). A capability that changes data
   (``create_lead``) needs its verb in the request, so "find leads" never creates one.
3. Fill parameters from what the request says, then from what the whole query says (places, dates, head
   counts, company), then from ``context`` (exact names, ``preferences``, ``hotel_amenities`` ->
   ``amenities`` on a hotel capability). Limits that belong to one request (a price, a star rating, a
   landmark) are never borrowed by another.
4. A step whose required parameters cannot be filled is left out with a warning that says what to add; when
   none is left, :class:`~orchestrator.core.errors.PlanningFailed` lists what is missing.
5. Requests for the generic analyst (analyse, summarise, recommend) next to data steps become instructions
   of the final synthesis step rather than a second LLM call; alone, they are the plan.

Requests are independent (parallel) unless joined by "then"; ``sequential`` chains everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from typing import Any, cast

from agents.connectors.base import CapabilitySpec, ParameterSpec
from orchestrator.core.errors import PlanningFailed
from planner.extract import (
    Extraction,
    context_year,
    extract,
    match_enum,
    strip_counts_and_emails,
)
from planner.models import (
    EXECUTION_MODES,
    CatalogAgent,
    ExecutionMode,
    Plan,
    PlanStep,
    StepType,
    apply_execution_mode,
    infer_domain,
    pick_synthesis_agent,
    synthesis_step,
)
from planner.places import Place, find_places, lookup_place

__all__ = ["MUTATING_VERBS", "plan_offline", "split_requests"]

# ------------------------------------------------------------------------------------------------ words

_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\bthings to (?:do|see)\b|\bwhat to (?:do|see)\b|\bplaces to (?:visit|see)\b", " activity "),
        (
            r"\b(?:what|anything|something|stuff|lots)(?:'s|\s+is|\s+are)?(?:\s+there)?\s+to\s+(?:do|see)\b",
            " activity ",
        ),
        (r"\b(?:places|where) to stay\b", " hotel "),
        (r"\b(?:somewhere|someplace|anywhere|a place|place)\s+to\s+stay\b", " hotel "),
        (r"\bwhere\s+(?:should|can|could|do|shall|would)\s+(?:i|we)\s+stay\b", " hotel "),
        (r"\bb\s*&\s*b\b", " hotel "),
        # A round trip is a flight, not a trip that needs somewhere to stay.
        (r"\bround[- ]trips?\b|\bone[- ]way\b|\breturn tickets?\b", " flight "),
        # "Is proj_12 over budget?": a project id names a project.
        (r"\b(?:proj|prj)_\d+\b", " project "),
        (r"\blook(?:ing)? (?:up|for)\b", " find "),
        (r"\bsum up\b", " summarize "),
        (r"\bsign up\b", " create "),
        (r"\bper (?:person|night)\b", " "),
    )
)

_SYNONYMS: dict[str, str] = {}
for _meaning, _spellings in {
    "flight": "flight flights fly flying flies airfare airfares fare fares plane planes",
    "hotel": "hotel hotels stay stays staying accommodation accommodations lodging lodgings room rooms motel "
    "motels hostel hostels resort resorts bnb airbnb ryokan ryokans inn inns guesthouse guesthouses "
    "guest-house guest-houses lodge lodges pension pensions",
    "activity": "activity activities tour tours sightseeing attraction attractions excursion excursions "
    "experience experiences museum museums sight sights",
    "contact": "contact contacts people person persons customer customers client clients",
    "opportunity": "opportunity opportunities opp opps deal deals pipeline",
    "lead": "lead leads prospect prospects",
    "create": "add adding create creating register registering enter insert log record capture make",
    "find": "search searching find finding look looking lookup show showing get getting fetch pull "
    "retrieve check query querying see display give",
    "list": "list listing enumerate",
    "update": "update change modify edit",
    "delete": "delete remove",
    "project": "project projects",
    "analyze": "analyze analyse analyzing analysing analysis evaluate evaluation assess assessment compare "
    "comparison examine insight insights",
    "summarize": "summarize summarise summarizing summarising summary summaries recap overview digest tldr "
    "rundown",
    "recommend": "recommend recommends recommendation recommendations suggest suggestion suggestions advise "
    "advice propose",
}.items():
    for _spelling in _spellings.split():
        _SYNONYMS[_spelling] = _meaning

# Verbs say what to do, not what about: they break ties but never select a capability on their own.
_VERBS = frozenset({"find", "list", "create", "update", "delete", "book", "cancel", "send", "set"})

MUTATING_VERBS: frozenset[str] = frozenset(
    {"create", "add", "update", "delete", "remove", "insert", "book", "cancel", "send", "set", "write"}
    | {"post", "put", "patch", "upsert", "assign", "close", "register", "submit", "reserve", "purchase"}
)

_STOPWORD_TEXT = (
    "a an the for from to in on at of with and or me my our us i we you your please can could would will "
    "some any that this these those is are be by near under over as it its about into what which who how "
    "also plan need want like just there their them they per each every via up down out off than then do "
    "does did have has between within around best good cheap cheapest great nice first last largest "
    "smallest one same next optionally based their e g eg etc other others all"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TRIP_WORDS = frozenset({"trip", "travel", "vacation", "holiday", "getaway", "itinerary", "journey"})
_WORD = re.compile(r"[a-z][a-z'-]*")


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _canon(word: str) -> str:
    word = word.strip("'-")
    if word in _SYNONYMS:
        return _SYNONYMS[word]
    stem = _stem(word)
    return _SYNONYMS.get(stem, stem)


def _tokens(text: str) -> set[str]:
    lowered = text.lower()
    for pattern, replacement in _PHRASES:
        lowered = pattern.sub(replacement, lowered)
    return {_canon(w) for w in _WORD.findall(lowered) if w not in _STOPWORDS} - _STOPWORDS


def _split_name(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z][a-z]*|[A-Z]+(?![a-z])", name)]


# ------------------------------------------------------------------------------------------ capabilities


@dataclass(frozen=True, slots=True)
class _Profile:
    nouns: frozenset[str]
    verbs: frozenset[str]
    description: frozenset[str]
    parameters: frozenset[str]
    raw_nouns: tuple[str, ...]  # singular name words as written ("hotel"), for context keys like hotel_*
    mutating: bool


@lru_cache(maxsize=1024)
def _profile(name: str, description: str, parameters: tuple[str, ...], binding_mode: str) -> _Profile:
    words = _split_name(name)
    canon = [_canon(w) for w in words]
    verbs = frozenset(c for c in canon if c in _VERBS)
    nouns = frozenset(c for c in canon if c not in _VERBS and c not in _STOPWORDS)
    described = _tokens(description) - nouns - verbs - _VERBS
    params = {_canon(w) for p in parameters for w in _split_name(p)} - _STOPWORDS - nouns - described
    mutating = binding_mode in {"execute", "mutate", "write"} or bool(words and words[0] in MUTATING_VERBS)
    raw = tuple(_stem(w) for w in words if _canon(w) not in _VERBS)
    return _Profile(nouns, verbs, frozenset(described), frozenset(params), raw, mutating)


_PROFILES: dict[int, tuple[CapabilitySpec, _Profile]] = {}


def _profile_of(capability: CapabilitySpec) -> _Profile:
    # By identity first: a catalog is reused across requests, and this runs for every parameter.
    cached = _PROFILES.get(id(capability))
    if cached is not None and cached[0] is capability:
        return cached[1]
    if len(_PROFILES) > 4096:
        _PROFILES.clear()
    profile = _build_profile(capability)
    _PROFILES[id(capability)] = (capability, profile)
    return profile


def _build_profile(capability: CapabilitySpec) -> _Profile:
    binding = capability.binding or {}
    mode = binding.get("mode")
    method = binding.get("method")
    if not isinstance(mode, str) and isinstance(method, str) and method.upper() in {"POST", "PUT", "PATCH"}:
        mode = "execute"
    return _profile(
        capability.name,
        capability.description or "",
        tuple(capability.parameters),
        mode if isinstance(mode, str) else "",
    )


# --------------------------------------------------------------------------------------------- requests


@dataclass(slots=True)
class _Fragment:
    text: str
    then: bool  # introduced by "then": depends on the request before it
    start: int = 0  # where the piece stands in the query, so merged pieces keep the words between them
    end: int = 0


_SEPARATOR = re.compile(
    r"\s*(?:;|,(?!\s*\d)\s*(?:and\s+)?(?P<then1>then\s+)?|\.\s+(?=[A-Z])|\s+and\s+(?P<then2>then)\s+|"
    r"\s+(?P<then3>then|after that|afterwards|and afterwards)\s+|\s+and\s+also\s+|\s+and\s+|\s+as well as\s+|"
    r"\s+plus\s+|\s+also\s+)\s*",
    re.IGNORECASE,
)
_BETWEEN = re.compile(r"(?i)\bbetween\b")


def split_requests(query: str) -> list[tuple[str, bool]]:
    """The query's pieces and whether each was introduced by "then"."""
    return [(p.text, p.then) for p in _fragments(query)]


def _fragments(query: str) -> list[_Fragment]:
    pieces: list[_Fragment] = []
    start = 0
    then = False
    for match in _SEPARATOR.finditer(query):
        piece = query[start : match.start()]
        if (
            match.group(0).strip().lower() == "and"
            and _BETWEEN.search(piece)
            and " and " not in piece.lower()
        ):
            continue  # "between Paris and London", "between June 1 and June 7"
        if piece.strip():
            begin = start + len(piece) - len(piece.lstrip())
            pieces.append(_Fragment(piece.strip(), then, begin, begin + len(piece.strip())))
        then = bool(match.group("then1") or match.group("then2") or match.group("then3"))
        start = match.end()
    tail = query[start:].strip().rstrip(".!?")
    if tail:
        begin = start + len(query[start:]) - len(query[start:].lstrip())
        pieces.append(_Fragment(tail, then, begin, begin + len(tail)))
    return pieces


@dataclass(slots=True)
class _Request:
    text: str
    then: bool
    matches: list[tuple[CatalogAgent, CapabilitySpec]] = field(default_factory=list)
    start: int = 0  # where the request begins in the query


@dataclass(slots=True)
class _Candidate:
    agent: CatalogAgent
    capability: CapabilitySpec
    profile: _Profile
    score: float
    strong: bool
    matched_nouns: frozenset[str]
    missing: int = 0


def _candidates(
    text: str, catalog: Sequence[CatalogAgent], extra_tokens: set[str] | None = None
) -> list[_Candidate]:
    tokens = _tokens(strip_counts_and_emails(text)) | (extra_tokens or set())
    if not tokens:
        return []
    found: list[_Candidate] = []
    for agent in catalog:
        for capability in agent.capabilities:
            profile = _profile_of(capability)
            nouns = tokens & profile.nouns
            verbs = tokens & profile.verbs
            described = tokens & profile.description
            params = tokens & profile.parameters
            if profile.mutating and not (verbs or tokens & {"create", "update", "delete"}):
                # "New lead: John Smith ..." creates one; "find new leads" does not.
                if "new" not in tokens or tokens & {"find", "list"}:
                    continue
                verbs = {"new"}
            if not nouns and not described:
                continue
            score = 3 * len(nouns) + len(verbs) + len(described) + 0.5 * len(params)
            strong = bool(nouns)
            if not strong and score < 2:
                continue
            found.append(_Candidate(agent, capability, profile, score, strong, frozenset(nouns)))
    return found


def _choose(candidates: list[_Candidate]) -> list[_Candidate]:
    """Every strongly matched capability that is not dominated by a better one about the same nouns; when
    none is strong, the single best weak match."""
    strong = [c for c in candidates if c.strong]
    if not strong:
        weak = sorted(candidates, key=lambda c: (c.missing, -c.score))
        return weak[:1]

    def rank(c: _Candidate) -> tuple[int, float]:
        return (-c.missing, c.score)

    chosen: list[_Candidate] = []
    for c in strong:
        dominated = any(
            other is not c
            and c.matched_nouns <= other.matched_nouns
            and (rank(other) > rank(c) or (rank(other) == rank(c) and strong.index(other) < strong.index(c)))
            for other in strong
        )
        if not dominated:
            chosen.append(c)
    return chosen


# ------------------------------------------------------------------------------------------- parameters

_KINDS: dict[str, str] = {}
for _param_kind, _param_names in {
    "origin": "origin from source_airport origin_airport departure_airport from_airport origin_code",
    "destination": "destination to destination_airport arrival_airport to_airport destination_code",
    "city": "city location destination_city city_name place",
    "start": "departure_date depart_date check_in checkin check_in_date start_date from_date start date_from "
    "outbound_date arrival_date",
    "end": "return_date check_out checkout check_out_date end_date to_date end date_to inbound_date",
    "day": "date day on_date",
    "max_price": "max_price price_max max_cost max_fare price_limit max_total max_budget",
    "max_night": "max_price_per_night max_nightly_rate max_rate price_per_night nightly_rate_max",
    "min_amount": "min_amount amount_min min_value minimum_amount min_deal_size min_deal_amount",
    "stars": "star_rating stars min_stars hotel_class hotel_stars",
    "landmark": "landmark near nearby point_of_interest poi",
    "count": "passengers travelers travellers adults guests people party_size num_passengers num_guests pax",
    "cabin": "cabin cabin_class travel_class seat_class",
    "alliance": "airline_alliance alliance",
    "amenities": "amenities facilities",
    "category": "category activity_type kind interest interests",
    "company": "company account company_name account_name organization organisation org employer",
    "name": "name contact_name full_name person",
    "first_name": "first_name firstname given_name",
    "last_name": "last_name lastname surname family_name",
    "email": "email email_address mail",
    "stage": "stage opportunity_stage deal_stage sales_stage",
    "status": "status state",
    "limit": "limit max_results top page_size",
    "project_id": "project_id project project_key",
    "title": "title job_title position role",
    "source": "source lead_source channel",
    "text": "text content document body",
    "question": "question task instruction instructions goal topic",
    "data": "data dataset records",
    "constraints": "constraints constraint limits",
    "currency": "currency",
    "budget": "budget total_budget",
}.items():
    for _param_name in _param_names.split():
        _KINDS[_param_name] = _param_kind

_HINTS = {
    "origin": "say where the trip starts, e.g. 'from San Francisco'",
    "destination": "say where to go, e.g. 'to Paris'",
    "city": "name the city, e.g. 'in Paris'",
    "start": "give the dates, e.g. 'June 1-7'",
    "end": "give the end date, e.g. 'June 1-7' or 'for 6 nights'",
    "day": "give the date, e.g. 'on June 3'",
    "company": "name the company, e.g. 'from Acme'",
    "first_name": "give the person's full name, e.g. 'John Smith'",
    "last_name": "give the person's full name, e.g. 'John Smith'",
    "email": "include the email address",
    "project_id": "give the project id, e.g. 'proj_123'",
}

_EXAMPLE_ID = re.compile(r"\be\.g\.?\s+([a-z]+_)\d+")


@lru_cache(maxsize=4096)
def _kind(name: str) -> str | None:
    lowered = name.lower()
    if lowered in _KINDS:
        return _KINDS[lowered]
    if lowered.endswith("_date"):
        return "day"
    for part, kind in (("email", "email"), ("city", "city"), ("company", "company"), ("amenit", "amenities")):
        if part in lowered:
            return kind
    return None


@lru_cache(maxsize=1024)
def _kinds_of(names: tuple[str, ...]) -> frozenset[str | None]:
    return frozenset(_kind(n) for n in names)


@dataclass(slots=True)
class _Scope:
    """What one request knows: its own text, the whole query, the context."""

    local: Extraction
    whole: Extraction
    context: Mapping[str, Any]
    query: str
    # One entity of a list the request names ("hotels in Amsterdam and Brussels"): kind -> value.
    override: Mapping[str, Any] = field(default_factory=dict)


def _value(kind: str, name: str, spec: ParameterSpec, cap: CapabilitySpec, scope: _Scope) -> Any:
    """The value the text gives a parameter of this kind. Facts about the whole trip or account (places,
    dates, head count, company) fall back to the whole query; limits and filters (price, stars, landmark,
    stage, status) come only from the request itself, so "flights under $1000" never caps the hotels."""
    local, whole = scope.local, scope.whole
    if kind in scope.override:
        return scope.override[kind]
    lp, wp = local.places, whole.places
    kinds = _kinds_of(tuple(cap.parameters))
    if kind == "origin":
        place = lp.origin or wp.origin
        return place.airport if place else None
    if kind == "destination":
        place = lp.destination or wp.destination
        if place is None:
            # "hotels in Paris ... and flights from SF": where the user will be is where they fly to.
            origin = lp.origin or wp.origin
            place = next((p for p in (lp.location, wp.location) if p is not None and p != origin), None)
        return place.airport if place else None
    if kind == "city":
        place = lp.city or local.landmark_place or wp.city or whole.landmark_place
        return place.city if place else None
    if kind == "start":
        return local.dates.start or whole.dates.start
    if kind == "end":
        if local.one_way or whole.one_way:
            return None
        return local.dates.end if local.dates.start else whole.dates.end
    if kind == "day":
        day = local.dates.single or (None if local.dates.start else whole.dates.single)
        if day is None and spec.required:
            day = local.dates.start or whole.dates.start
        return day
    if kind == "max_price":
        money = local.money_limit(per_night=False) or (
            None if "max_night" in kinds else local.money_limit(per_night=True)
        )
        return money.amount if money else None
    if kind == "max_night":
        money = local.money_limit(per_night=True) or (
            None if "max_price" in kinds else local.money_limit(per_night=False)
        )
        return money.amount if money else None
    if kind == "min_amount":
        money = local.money_floor()
        return money.amount if money else None
    if kind == "stars":
        return local.stars
    if kind == "landmark":
        return local.landmark
    if kind == "count":
        return local.count or whole.count
    if kind == "cabin":
        return local.cabin or whole.cabin
    if kind == "alliance":
        return local.alliance or whole.alliance
    if kind == "amenities":
        return local.amenities or None
    if kind == "category":
        return match_enum(local.text, spec.enum) if spec.enum else None
    if kind == "company":
        # An email's domain is only a guess at the company: good enough to create a lead, not to filter by.
        found = local.company or whole.company
        if found is None and spec.required:
            found = local.company_guess or whole.company_guess
        return found
    if kind == "name":
        person = local.person
        return person.full_name if person and not person.from_email and not local.emails else None
    if kind in {"first_name", "last_name"}:
        person = local.person or whole.person
        if person is None:
            return None
        return person.first_name if kind == "first_name" else person.last_name
    if kind == "email":
        emails = local.emails or whole.emails
        return emails[0] if emails else None
    if kind == "stage":
        stage = local.stage
        if spec.enum:
            return match_enum(stage, spec.enum) if stage else match_enum(local.text, spec.enum)
        return stage
    if kind == "status":
        if spec.enum:
            if local.status is not None and local.status in spec.enum:
                return local.status
            text = _PROSPECTS.sub("lead", local.text) if "lead" in spec.enum else local.text
            return match_enum(text, spec.enum, skip=_profile_of(cap).raw_nouns)
        return local.status
    if kind == "limit":
        return local.limit
    if kind == "project_id":
        project = local.project_id or whole.project_id
        if project and project.isdigit():
            example = _EXAMPLE_ID.search(spec.description or "")
            if example:
                project = example.group(1) + project
        return project
    if kind == "title":
        return local.title
    if kind == "source":
        return local.source
    if kind == "text":
        return local.payload or (scope.query if spec.required else None)
    if kind == "question":
        return None if local.payload else local.text
    if kind == "data":
        return scope.context.get("data")
    if kind == "constraints":
        budget = scope.context.get("budget")
        if budget is None:
            return None
        return f"Budget: {budget} {scope.context.get('currency') or 'USD'}".strip()
    if kind == "currency":
        money = next((m for m in local.money if m.currency), None)
        return (money.currency if money else None) or scope.context.get("currency")
    if kind == "budget":
        return scope.context.get("budget")
    return None


_PROSPECTS = re.compile(r"(?i)\bprospects?\b")

# Between two places of one list: "Paris, Rome and Madrid", "to Paris and to Rome", "Amsterdam or Brussels".
_PLACE_LIST_GAP = re.compile(
    r"(?i)^\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&|vs\.?|versus)\s+)(?:to\s+|in\s+)?$"
)


def _variants(cap: CapabilitySpec, scope: _Scope) -> list[dict[str, Any]]:
    """One override per entity when the request names several of the kind the capability is scoped by
    ("hotels in Amsterdam and Brussels": one search each); a single empty override otherwise."""
    kinds = _kinds_of(tuple(cap.parameters))
    local = scope.local
    if kinds & {"city", "destination"}:
        places = _place_list(local)
        if len(places) > 1:
            return [
                {k: v for k, v in (("city", p.city), ("destination", p.airport)) if k in kinds}
                for p in places
            ]
    if "company" in kinds and not _profile_of(cap).mutating and len(local.companies) > 1:
        return [{"company": company} for company in local.companies]
    if "project_id" in kinds and len(local.project_ids) > 1:
        return [{"project_id": project} for project in local.project_ids]
    return [{}]


def _place_list(local: Extraction) -> list[Place]:
    """The places of the list that holds where the request is about ("in Paris, Rome and Madrid")."""
    roles = local.places
    mentions = [m for m in roles.mentions if roles.origin is None or m.place.city != roles.origin.city]
    if len(mentions) < 2:
        return []
    listed = [mentions[0]]
    for mention in mentions[1:]:
        if not _PLACE_LIST_GAP.match(local.text[listed[-1].end : mention.start]):
            break
        listed.append(mention)
    places: list[Place] = []
    for mention in listed:
        if all(p.city != mention.place.city for p in places):
            places.append(mention.place)
    return places if len(places) > 1 else []


_SUBJECTS = frozenset({"hotel", "flight", "activity", "contact", "lead", "project", "opportunity"})
# Top-level context keys that describe the requester rather than the request ("name" is the user's name,
# not a contact to search for); inside ``preferences`` they are taken at their word.
_NOT_PARAMETERS = frozenset({"preferences", "name", "email", "user", "id", "title", "role"})


def _from_context(name: str, kind: str | None, profile: _Profile, context: Mapping[str, Any]) -> Any:
    """A context value for a parameter: its exact name, then a key prefixed with the capability's subject
    (``hotel_amenities`` for ``search_hotels``), then any key of the same meaning (``alliance`` for
    ``airline_alliance``); top-level context first, then ``preferences``. A key prefixed with another
    subject (``hotel_amenities`` on a flight search) is never used."""
    sources: list[Mapping[str, Any]] = [{k: v for k, v in context.items() if k not in _NOT_PARAMETERS}]
    preferences = context.get("preferences")
    if isinstance(preferences, Mapping):
        sources.append(preferences)
    value: Any = None
    for source in sources:
        if name in source:
            value = source[name]
            break
        prefixed = next((f"{n}_{name}" for n in profile.raw_nouns if f"{n}_{name}" in source), None)
        if prefixed:
            value = source[prefixed]
            break
    if value is None and kind is not None:
        for source in sources:
            for key, candidate in source.items():
                prefix, _, rest = key.partition("_")
                if rest and prefix in _SUBJECTS:
                    if prefix in profile.raw_nouns and _kind(rest) == kind:
                        value = candidate
                        break
                    continue
                if _kind(key) == kind:
                    value = candidate
                    break
            if value is not None:
                break
    if isinstance(value, str) and kind in {"origin", "destination", "city"}:
        place = lookup_place(value)
        if place is not None:
            return place.city if kind == "city" else place.airport
    return value


def _coerce(value: Any, spec: ParameterSpec) -> Any:
    """The value in the parameter's declared type, or None when it cannot be."""
    if isinstance(value, date):
        value = value.isoformat()
    kind = spec.type
    try:
        if kind == "string":
            return value if isinstance(value, str) else str(value)
        if kind == "integer":
            if isinstance(value, bool):
                return None
            number = float(value)
            return int(number) if number.is_integer() else None
        if kind == "number":
            if isinstance(value, bool):
                return None
            number = float(value)
            return int(number) if number.is_integer() else number
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            return str(value).lower() in {"true", "yes", "1"}
        if kind == "array":
            return list(value) if isinstance(value, list | tuple) else [value]
        if kind == "object":
            return value if isinstance(value, dict) else None
    except (TypeError, ValueError):
        return None
    return value


def _in_enum(value: Any, enum: list[Any]) -> Any:
    if value in enum:
        return value
    if isinstance(value, str):
        wanted = re.sub(r"[^a-z0-9]", "", value.lower())
        for option in enum:
            if isinstance(option, str) and re.sub(r"[^a-z0-9]", "", option.lower()) == wanted:
                return option
    return None


def _parameters(
    agent: CatalogAgent, cap: CapabilitySpec, scope: _Scope
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Filled parameters, the required ones still missing, and warnings about values that did not fit."""
    profile = _profile_of(cap)
    params: dict[str, Any] = {}
    missing: list[str] = []
    warnings: list[str] = []
    for name, spec in cap.parameters.items():
        kind = _kind(name)
        value = _value(kind, name, spec, cap, scope) if kind else None
        if value is None or value == []:
            value = _from_context(name, kind, profile, scope.context)
        if value is None and spec.required and spec.default is not None:
            value = spec.default
        if value is not None:
            value = _coerce(value, spec)
        if value is not None and spec.enum:
            fitted = _in_enum(value, spec.enum)
            if fitted is None:
                warnings.append(
                    f"{cap.name}: {value!r} is not one of {spec.enum!r} for {name!r}; left it out"
                )
            value = fitted
        if value is None:
            if spec.required:
                missing.append(name)
            continue
        params[name] = value
    return params, missing, warnings


# ------------------------------------------------------------------------------------------------ steps

_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def _money(amount: Any, currency: str | None) -> str:
    sign = _CURRENCY_SIGNS.get((currency or "USD").upper())
    text = str(amount)
    return f"{sign}{text}" if sign else f"{text} {currency}"


def _describe(cap: CapabilitySpec, params: Mapping[str, Any], currency: str | None) -> str:
    """A one-line description in the seed's style: "Search for flights from SFO to CDG under $1000"."""
    words = _split_name(cap.name)
    if len(words) < 2:
        # "analyze", "summarize": the capability's own description says it better than its name.
        return cap.description.strip().rstrip(".") or cap.name.replace("_", " ").capitalize()
    verb, subject = words[0], " ".join(words[1:])
    kinds = {_kind(k): v for k, v in params.items()}
    if "stars" in kinds:
        subject = f"{kinds['stars']}-star {subject}"
    phrase = f"{verb.capitalize()} for {subject}" if verb == "search" else f"{verb.capitalize()} {subject}"
    if "first_name" in kinds or "last_name" in kinds:
        phrase += " " + " ".join(str(kinds[k]) for k in ("first_name", "last_name") if k in kinds)
    if "project_id" in kinds:
        phrase += f" {kinds['project_id']}"
    if "origin" in kinds and "destination" in kinds:
        phrase += f" from {kinds['origin']} to {kinds['destination']}"
    elif "destination" in kinds:
        phrase += f" to {kinds['destination']}"
    if "city" in kinds:
        phrase += f" in {kinds['city']}"
    if "company" in kinds:
        phrase += f" at {kinds['company']}"
    if "email" in kinds and not ("first_name" in kinds or "last_name" in kinds):
        phrase += f" with email {kinds['email']}"
    if "stage" in kinds:
        phrase += f" in stage {kinds['stage']}"
    if "status" in kinds:
        phrase += f" with status {kinds['status']}"
    if "landmark" in kinds:
        phrase += f" near {kinds['landmark']}"
    if "max_price" in kinds:
        phrase += f" under {_money(kinds['max_price'], currency)}"
    if "max_night" in kinds:
        phrase += f" under {_money(kinds['max_night'], currency)}/night"
    if "min_amount" in kinds:
        phrase += f" over {_money(kinds['min_amount'], currency)}"
    if "start" in kinds and "end" in kinds:
        phrase += f" ({kinds['start']} to {kinds['end']})"
    elif "day" in kinds:
        phrase += f" on {kinds['day']}"
    elif "start" in kinds:
        phrase += f" on {kinds['start']}"
    return phrase


# ------------------------------------------------------------------------------------------------- plan


def plan_offline(
    query: str,
    *,
    domain: str | None,
    execution_mode: str = "auto",
    context: Mapping[str, Any] | None = None,
    catalog: Sequence[CatalogAgent],
    today: date,
) -> Plan:
    """Plan ``query`` over ``catalog`` without an LLM. ``today`` resolves dates without a year (the next
    June 1 on or after it) unless ``context`` pins a year. Raises ``PlanningFailed`` when nothing in the
    catalog matches or no matched step can be given its required parameters."""
    text = " ".join(query.split())
    if not text:
        raise PlanningFailed("the query is empty", details={"reason": "empty_query"})
    if execution_mode not in EXECUTION_MODES:
        raise PlanningFailed(
            f"unknown execution_mode {execution_mode!r}",
            details={"reason": "invalid_execution_mode", "allowed": sorted(EXECUTION_MODES)},
        )
    session = _Session(text, dict(context or {}), today)
    fragments = _fragments(text)
    pieces = [(f.text, f.then) for f in fragments]
    requests: list[_Request] = []
    for fragment in fragments:
        piece, then = fragment.text, fragment.then
        chosen = _match(piece, catalog, session)
        if chosen and requests and not then and _same_request(chosen, requests[-1], piece):
            # "things to do in Tokyo, especially museums": the request runs on, with the words between.
            requests[-1].text = text[requests[-1].start : fragment.end]
        elif chosen:
            requests.append(
                _Request(piece, then, [(c.agent, c.capability) for c in chosen], start=fragment.start)
            )
        elif requests:
            # detail for the request before it ("..., 4-star", "in Amsterdam and Brussels")
            requests[-1].text = text[requests[-1].start : fragment.end]
    if not requests and (_tokens(text) & _TRIP_WORDS or _is_journey(session.whole)):
        # "Plan a trip from SF to Paris for June 1-7": a trip means getting there and somewhere to stay.
        chosen = _match(text, catalog, session, extra={"flight", "hotel"})
        if chosen:
            requests.append(_Request(text, False, [(c.agent, c.capability) for c in chosen]))
    if not requests:
        raise PlanningFailed(
            "no capability in the catalog matches the query",
            details={
                "reason": "no_matching_capability",
                "requests": [piece for piece, _ in pieces],
                "capabilities": [f"{a.id}.{c.name}" for a in catalog for c in a.capabilities],
                "hint": "name what to look up or do, e.g. 'find flights from SF to Paris on June 1'",
            },
        )
    return _build(session, requests, domain, execution_mode, catalog)


def _is_journey(whole: Extraction) -> bool:
    """ "Lisbon next month for a week, leaving from Berlin": a start, somewhere else to go and a date is a
    trip even when no trip word is written."""
    places = whole.places
    there = places.destination or places.location
    return (
        places.origin is not None
        and there is not None
        and there.city != places.origin.city
        and whole.dates.start is not None
    )


class _Session:
    """One planning call: the query, what the whole query says, the context, and extractions by text so
    that no piece is read twice."""

    def __init__(self, query: str, context: dict[str, Any], today: date) -> None:
        self.query = query
        self.context = context
        self.today = today
        self.year = context_year(context)
        self._extractions: dict[str, Extraction] = {}
        self.whole = self.extraction(query)
        self.nothing = Extraction("", today=today)

    def extraction(self, text: str) -> Extraction:
        found = self._extractions.get(text)
        if found is None:
            found = self._extractions[text] = extract(text, today=self.today, year=self.year)
        return found

    def scope(self, text: str) -> _Scope:
        return _Scope(self.extraction(text), self.whole, self.context, self.query)


def _same_request(chosen: list[_Candidate], previous: _Request, piece: str) -> bool:
    """A piece asking for the same capabilities without a place or date of its own refines the request
    before it; "flights to Paris and flights to Rome" stays two requests."""
    keys = {(c.agent.id, c.capability.name) for c in chosen}
    if keys != {(a.id, c.name) for a, c in previous.matches}:
        return False
    return not find_places(piece) and not _HAS_DATE.search(piece)


_HAS_DATE = re.compile(r"(?i)\d|\b(?:today|tomorrow|tonight|next|this)\b")


def _match(
    piece: str, catalog: Sequence[CatalogAgent], session: _Session, extra: set[str] | None = None
) -> list[_Candidate]:
    candidates = _candidates(piece, catalog, extra)
    if len(candidates) > 1:
        # Break ties with the parameters: a capability the query cannot feed loses to one it can, and a
        # required parameter the piece itself supplies ("project proj_1") is evidence for its capability.
        scope = session.scope(piece)
        own = _Scope(scope.local, session.nothing, {}, session.query)
        for c in candidates:
            _, missing, _ = _parameters(c.agent, c.capability, scope)
            c.missing = len(missing)
            for name, spec in c.capability.parameters.items():
                kind = _kind(name)
                if spec.required and kind and _value(kind, name, spec, c.capability, own) is not None:
                    c.score += 1
    return _choose(candidates)


_UNKNOWN_PLACE = re.compile(
    r"\b(?i:in|to|from|at|near|around|visiting|leaving|out of)\s+(?P<name>[A-Z][\w'\u2019-]*(?:\s+[A-Z][\w'\u2019-]*)*)"
)


def _unknown_places(text: str, missing: list[str]) -> str:
    """A note naming the place the table does not know, when a place parameter is what is missing."""
    if not any(_kind(m) in {"city", "origin", "destination"} for m in missing):
        return ""
    names = [
        m.group("name")
        for m in _UNKNOWN_PLACE.finditer(text)
        if lookup_place(m.group("name")) is None
        and not find_places(m.group("name"))
        and m.group("name").split()[0].lower() not in _NOT_PLACES
    ]
    if not names:
        return ""
    listed = ", ".join(repr(n) for n in dict.fromkeys(names))
    return f" ({listed} is not in the offline planner's place table; name a known city or an airport code)"


_NOT_PLACES = frozenset(
    {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october"}
    | {"november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct"}
    | {"nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "q1"}
    | {"q2", "q3", "q4", "h1", "h2", "i"}
)


def _period_notes(
    session: _Session,
    requests: list[_Request],
    drafted: list[tuple[int, CatalogAgent, CapabilitySpec, dict[str, Any], bool]],
) -> list[tuple[str, str]]:
    """A reporting period ("Q3", "last quarter") is a filter. Steps whose capability takes no dates cannot
    apply it, so the synthesis is told to, and a warning says so: it is never taken as a name."""
    notes: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, _agent, cap, _params, generic in drafted:
        if generic or _kinds_of(tuple(cap.parameters)) & {"start", "end", "day"}:
            continue
        period = session.extraction(requests[index].text).period or session.whole.period
        if period is None or period.label in seen:
            continue
        seen.add(period.label)
        span = f"{period.start.isoformat()} to {period.end.isoformat()}"
        notes.append(
            (
                f"{cap.name} has no date filter; the period {period.label!r} ({span}) is applied in the summary",
                f"only consider records of {period.label} ({span}); say which ones the results do not date",
            )
        )
    return notes


def _build(
    session: _Session,
    requests: list[_Request],
    domain: str | None,
    execution_mode: str,
    catalog: Sequence[CatalogAgent],
) -> Plan:
    query, context = session.query, session.context
    currency = context.get("currency") if isinstance(context.get("currency"), str) else None
    warnings: list[str] = []
    missing_report: list[dict[str, Any]] = []
    # (request index, agent, capability, params, is_generic)
    drafted: list[tuple[int, CatalogAgent, CapabilitySpec, dict[str, Any], bool]] = []
    folded: list[str] = []
    for index, request in enumerate(requests):
        base = session.scope(request.text)
        for agent, cap in request.matches:
            for override in _variants(cap, base):
                scope = replace(base, override=override) if override else base
                params, missing, notes = _parameters(agent, cap, scope)
                warnings.extend(notes)
                if missing:
                    hints = "; ".join(_HINTS.get(_kind(m) or "", f"give a value for {m!r}") for m in missing)
                    unknown = _unknown_places(request.text, missing)
                    warnings.append(
                        f"left out {cap.name!r} ({agent.id}): missing required "
                        f"{', '.join(repr(m) for m in missing)} - {hints}{unknown}"
                    )
                    missing_report.append(
                        {
                            "agent": agent.id,
                            "capability": cap.name,
                            "missing": missing,
                            "request": request.text,
                            "generic": agent.domain == "generic",
                            "note": unknown.strip(" ()"),
                        }
                    )
                    continue
                drafted.append((index, agent, cap, params, agent.domain == "generic"))

    # An analysis of data the plan cannot fetch is a wrong plan: "compare hotels in Amsterdam and Brussels"
    # without dates must fail naming the dates, not become a lone LLM call about hotels.
    lost_data = [m for m in missing_report if not m["generic"]]
    if not drafted or (lost_data and all(generic for *_, generic in drafted)):
        reported = lost_data or missing_report
        raise PlanningFailed(
            "the matching capabilities need parameters the query does not give: "
            + "; ".join(
                f"{m['capability']} needs {', '.join(m['missing'])}"
                + (f" ({m['note']})" if m["note"] else "")
                for m in reported
            ),
            details={"reason": "missing_parameters", "missing": reported, "warnings": warnings},
        )
    for note in _period_notes(session, requests, drafted):
        warnings.append(note[0])
        folded.append(note[1])

    has_data = any(not generic for *_, generic in drafted)
    if has_data:
        kept = []
        for item in drafted:
            if item[4]:
                text = requests[item[0]].text
                if text not in folded:
                    folded.append(text)
            else:
                kept.append(item)
        drafted = kept

    steps: list[PlanStep] = []
    names: dict[str, int] = {}
    by_request: dict[int, list[str]] = {}
    for position, (index, agent, cap, params, generic) in enumerate(drafted, start=1):
        names[cap.name] = names.get(cap.name, 0) + 1
        name = cap.name if names[cap.name] == 1 else f"{cap.name}_{names[cap.name]}"
        step_id = f"step_{position}_{name}"
        depends: list[str] = []
        if requests[index].then:
            earlier = [i for i in by_request if i < index]
            if earlier:
                depends = list(by_request[max(earlier)])
        if generic and position == len(drafted):
            depends = [s.id for s in steps]  # a plan of analyses ends in the last one, which sees them all
        step_type: StepType = (
            "llm" if generic else "mcp_execute" if _profile_of(cap).mutating else "mcp_query"
        )
        steps.append(
            PlanStep(
                id=step_id,
                name=name,
                type=step_type,
                description=_describe(cap, params, currency),
                depends_on=depends,
                agent=agent.id,
                capability=cap.name,
                parameters=params,
            )
        )
        by_request.setdefault(index, []).append(step_id)

    plan_domain = infer_domain(domain, steps, catalog)
    if has_data:
        steps.append(
            synthesis_step(
                len(steps) + 1,
                query=query,
                context=context,
                depends_on=[s.id for s in steps],
                agent=pick_synthesis_agent(catalog),
                domain=plan_domain,
                extra=folded,
            )
        )
    return Plan(
        query=query,
        domain=plan_domain,
        execution_mode=cast(ExecutionMode, execution_mode),
        steps=apply_execution_mode(steps, execution_mode),
        planner="offline",
        warnings=warnings,
    )


# Keep the place table warm at import: the first plan should cost what every plan costs.
lookup_place("Paris")
