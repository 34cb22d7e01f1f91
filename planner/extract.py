"""Parameter values read out of a sentence: places, dates, money limits, star ratings, landmarks, counts and
CRM entities.

Rule-based on purpose: the offline planner has to be deterministic, explainable and fast (it runs on every
``POST /api/v1/plan`` without an LLM), so every pattern is compiled once at import and each extractor is a
few regex scans. Nothing here reads the clock: relative dates and "the next June 1" are resolved against the
``today`` the caller passes in (STYLE 7), and an explicit year in the context wins over both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any, Literal

from planner.places import Place, PlaceMention, find_places, landmark_city, lookup_place

__all__ = [
    "DateRange",
    "Extraction",
    "Money",
    "Period",
    "Person",
    "PlaceRoles",
    "context_year",
    "extract",
    "extract_alliance",
    "extract_amenities",
    "extract_cabin",
    "extract_companies",
    "extract_company",
    "extract_count",
    "extract_dates",
    "extract_emails",
    "extract_landmark",
    "extract_limit",
    "extract_money",
    "extract_payload",
    "extract_period",
    "extract_person",
    "extract_project_id",
    "extract_project_ids",
    "extract_source",
    "extract_stage",
    "extract_stars",
    "extract_status",
    "extract_title",
    "match_enum",
    "place_roles",
    "strip_counts_and_emails",
]

# ----------------------------------------------------------------------------------------------- vocabulary

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("january", "jan"),
        ("february", "feb"),
        ("march", "mar"),
        ("april", "apr"),
        ("may",),
        ("june", "jun"),
        ("july", "jul"),
        ("august", "aug"),
        ("september", "sept", "sep"),
        ("october", "oct"),
        ("november", "nov"),
        ("december", "dec"),
    ),
    start=1,
):
    for _name in _names:
        _MONTHS[_name] = _number

_WEEKDAYS = {
    name: index
    for index, names in enumerate(
        (
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday", "sun"),
        )
    )
    for name in names
}

_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "couple": 2,
    "pair": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}


def _to_int(word: str) -> int | None:
    word = word.strip().lower()
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


_MONTH_ALT = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUM_WORD_ALT = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))

# ----------------------------------------------------------------------------------------------- places


@dataclass(frozen=True, slots=True)
class PlaceRoles:
    """Who is who among the places of a sentence: ``from X to Y`` gives origin and destination, ``in Y``
    a location; ``mentions`` keeps every place in order for the fallbacks."""

    origin: Place | None = None
    destination: Place | None = None
    location: Place | None = None
    mentions: tuple[PlaceMention, ...] = ()

    @property
    def city(self) -> Place | None:
        """The place a city-scoped search is about: where the user will be."""
        if self.location is not None:
            return self.location
        if self.destination is not None:
            return self.destination
        if len(self.mentions) == 1 and self.origin is None:
            return self.mentions[0].place
        return None


_ROLE_WORD = re.compile(
    r"(?i)\b(from|to|into|towards|toward|between|and|in|at|near|around|visiting|visit|leaving|departing|via"
    r"|out of)"
    r"\s+(?:the\s+)?$"
)
_ORIGIN_WORDS = frozenset({"from", "leaving", "departing", "out of"})
_DESTINATION_WORDS = frozenset({"to", "into", "towards", "toward", "visiting", "visit"})
_LOCATION_WORDS = frozenset({"in", "at", "near", "around"})
_ARROW = re.compile(r"^\s*(?:-|\u2013|\u2014|->|\u2192|to)\s*$")


def place_roles(text: str) -> PlaceRoles:
    mentions = find_places(text)
    origin = destination = location = None
    between = arrow_to = False
    unassigned: list[Place] = []
    for index, mention in enumerate(mentions):
        before = text[max(0, mention.start - 24) : mention.start]
        match = _ROLE_WORD.search(before)
        word = match.group(1).lower() if match else ""
        if arrow_to:
            destination, arrow_to = destination or mention.place, False
        elif word == "between":
            origin, between = origin or mention.place, True
        elif word == "and" and between:
            destination, between = destination or mention.place, False
        elif word in _ORIGIN_WORDS:
            origin = origin or mention.place
        elif word in _DESTINATION_WORDS:
            destination = destination or mention.place
        elif word in _LOCATION_WORDS:
            location = location or mention.place
        elif index + 1 < len(mentions) and _ARROW.match(text[mention.end : mentions[index + 1].start]):
            # "SFO-CDG", "SF to Paris": an arrow-joined pair is origin and destination.
            origin, arrow_to = origin or mention.place, True
        elif not word:
            unassigned.append(mention.place)
    if origin is not None and destination is None and location is None:
        # "Lisbon next month, leaving from Berlin": the place named without a role is where the user goes.
        destination = next((p for p in unassigned if p.city != origin.city), None)
    return PlaceRoles(origin=origin, destination=destination, location=location, mentions=tuple(mentions))


# ------------------------------------------------------------------------------------------------ dates


@dataclass(frozen=True, slots=True)
class DateRange:
    start: date | None = None
    end: date | None = None
    dates: tuple[date, ...] = ()  # every date mentioned, in order of appearance

    @property
    def single(self) -> date | None:
        """The one day a day-scoped search is about, when the sentence names exactly one."""
        return self.start if self.end is None else None


_D = r"(\d{1,2})(?:st|nd|rd|th)?"
_M = rf"({_MONTH_ALT})\.?"
_Y = r"(?:,?\s*(\d{4}))?"
_DASH = r"\s*(?:-|\u2013|\u2014|to|through|thru|until|till|and)\s*"
_NOT_A_DAY_AFTER = (
    r"(?![\d:]|\s*(?:-?\s*stars?|people|persons|adults|guests|passengers|travell?ers|nights?|days?|"
    r"weeks?|hours?|%|am\b|pm\b|k\b))"
)
_ISO = r"(\d{4})-(\d{1,2})-(\d{1,2})"
_WEEKDAY_ALT = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# "Monday the 8th of September", "Fri, 3 Oct": the weekday only restates the date that follows it.
_WD = rf"(?:(?:{_WEEKDAY_ALT}|mon|tues?|wed|thu(?:rs)?|fri|sat|sun)\.?,?\s+(?:the\s+)?)?"
_ORDINAL_WORDS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_ORDINAL_WORDS |= {"last": -1, "final": -1}
_ORDINAL_ALT = "|".join(_ORDINAL_WORDS)
_WEEKDAY_TO = r"\s*(?:-|\u2013|\u2014|to|through|thru|until|till)\s*"

# (kind, pattern); earlier patterns win where matches overlap.
_DATE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("iso_range", rf"\b{_ISO}{_DASH}{_ISO}\b"),
        ("md_md", rf"\b{_WD}{_M}\s+{_D}{_Y}{_DASH}(?:the\s+)?{_WD}{_M}\s+{_D}{_Y}\b"),
        ("dm_dm", rf"\b{_WD}{_D}\s+(?:of\s+)?{_M}{_DASH}(?:the\s+)?{_WD}{_D}\s+(?:of\s+)?{_M}{_Y}\b"),
        ("md_d", rf"\b{_WD}{_M}\s+{_D}{_DASH}(?:the\s+)?{_D}{_NOT_A_DAY_AFTER}{_Y}\b"),
        ("d_dm", rf"\b{_WD}{_D}{_DASH}(?:the\s+)?{_D}\s+(?:of\s+)?{_M}{_Y}\b"),
        ("iso", rf"\b{_ISO}\b"),
        ("md", rf"\b{_WD}{_M}\s+(?:the\s+)?{_D}{_NOT_A_DAY_AFTER}{_Y}\b"),
        ("dm", rf"\b{_WD}{_D}\s+(?:of\s+)?{_M}{_Y}\b"),
        # "the first weekend of September", "last weekend in October": Saturday and Sunday.
        ("nth_weekend", rf"\b({_ORDINAL_ALT})\s+weekend\s+(?:of|in)\s+{_M}{_Y}\b"),
        ("us", r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])"),
        (
            "relative",
            r"\b(day after tomorrow|today|tonight|tomorrow|(?:next|this|coming|on)\s+(?:week|weekend)"
            r"|(?:the)\s+weekend)\b",
        ),
        # "Friday to Monday", "from Fri - Sun": the end is the first such day after the start.
        ("weekday_range", rf"\b(?:(next|this|coming)\s+)?({_WEEKDAY_ALT}){_WEEKDAY_TO}({_WEEKDAY_ALT})\b"),
        ("weekday", rf"\b(?:(next|this|coming)\s+)?({_WEEKDAY_ALT})\b"),
        # "in two weeks", "in 3 days", "two weeks from now": one day, counted from today.
        (
            "in_n",
            rf"\bin\s+(\d+|{_NUM_WORD_ALT})\s+(days?|weeks?)(?:'?\s*time)?\b"
            rf"|\b(\d+|{_NUM_WORD_ALT})\s+(days?|weeks?)\s+from\s+(?:now|today)\b",
        ),
        # "next month": a period; it starts the stay ("Lisbon next month for a week").
        ("month_rel", r"\b(next|this|coming)\s+month\b"),
    )
)
_DATE_GUARD = {
    "iso_range": "iso",
    "iso": "iso",
    "md_md": "month",
    "dm_dm": "month",
    "md_d": "month",
    "d_dm": "month",
    "md": "month",
    "dm": "month",
    "us": "us",
    "relative": "relative",
    "nth_weekend": "relative",
    "weekday_range": "relative",
    "weekday": "relative",
    "in_n": "relative",
    "month_rel": "relative",
}
_FROM_WEEKDAY = frozenset({"weekday", "weekday_range"})
_ANY_DIGIT = re.compile(r"\d")
_ISO_HINT = re.compile(r"\d{4}-\d")
_MONTH_WORD = re.compile(rf"(?i)\b(?:{_MONTH_ALT})\b")
_RELATIVE_WORD = re.compile(
    rf"(?i)\b(?:today|tonight|tomorrow|next|this|coming|on|weekend|weeks?|days?|month|{_WEEKDAY_ALT})\b"
)
_DURATION = re.compile(rf"(?i)\bfor\s+(\d+|{_NUM_WORD_ALT})\s+(nights?|days?|weeks?)\b")
_END_MARKER = re.compile(
    r"(?i)\b(?:return(?:ing)?|back|check(?:ing)?[- ]?out|until|till|coming back|fly(?:ing)? back)\s*(?:on\s+)?$"
)
_ISO_ANYWHERE = re.compile(r"\b(\d{4})-\d{2}-\d{2}\b")


def context_year(context: Mapping[str, Any] | None) -> int | None:
    """The year the context pins: ``year`` itself, else the year of the first ISO date in any value."""
    if not context:
        return None
    year = context.get("year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    if isinstance(year, str) and year.strip().isdigit():
        return int(year)

    def walk(value: Any) -> int | None:
        if isinstance(value, str):
            match = _ISO_ANYWHERE.search(value)
            return int(match.group(1)) if match else None
        if isinstance(value, Mapping):
            value = list(value.values())
        if isinstance(value, list | tuple):
            for item in value:
                found = walk(item)
                if found is not None:
                    return found
        return None

    return walk(list(context.values()))


def _month_day(month: int, day: int, year: int | None, *, today: date, year_hint: int | None) -> date | None:
    """A calendar date; without an explicit year, the context's year, else the next occurrence from today."""
    try:
        if year is not None:
            return date(year, month, day)
        if year_hint is not None:
            return date(year_hint, month, day)
        candidate = date(today.year, month, day)
        return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def _year(raw: str | None) -> int | None:
    if not raw:
        return None
    value = int(raw)
    return value + 2000 if value < 100 else value


def _range(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    if start is None or end is None:
        return start, end
    if end < start:
        # "Dec 28 - Jan 3": the end is in the following year.
        try:
            end = end.replace(year=end.year + 1)
        except ValueError:
            return start, None
    return start, end


def _relative(phrase: str, today: date) -> tuple[date, date | None]:
    phrase = " ".join(phrase.lower().split())
    if phrase in {"today", "tonight"}:
        return today, None
    if phrase == "tomorrow":
        return today + timedelta(days=1), None
    if phrase == "day after tomorrow":
        return today + timedelta(days=2), None
    qualifier, _, what = phrase.partition(" ")
    if what == "weekend":
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        if qualifier == "next":
            saturday += timedelta(days=7)
        return saturday, saturday + timedelta(days=1)
    if what == "week":
        monday = today + timedelta(days=7 - today.weekday())
        return monday, monday + timedelta(days=6)
    ahead = (_WEEKDAYS[what] - today.weekday()) % 7
    if qualifier == "next" and ahead == 0:
        ahead = 7
    return today + timedelta(days=ahead), None


def _weekday_on_or_after(day: date, weekday: str) -> date:
    return day + timedelta(days=(_WEEKDAYS[weekday.lower()] - day.weekday()) % 7)


def _nth_weekend(ordinal: str, month: int, year: int) -> tuple[date, date] | None:
    """Saturday and Sunday of the n-th (or last) weekend whose Saturday falls in the month."""
    nth = _ORDINAL_WORDS[ordinal.lower()]
    first = _weekday_on_or_after(date(year, month, 1), "saturday")
    saturdays = [first + timedelta(days=7 * k) for k in range(5)]
    saturdays = [d for d in saturdays if d.month == month]
    if nth == -1:
        saturday = saturdays[-1]
    elif nth <= len(saturdays):
        saturday = saturdays[nth - 1]
    else:
        return None
    return saturday, saturday + timedelta(days=1)


def _parse_date_match(
    kind: str, groups: tuple[str | None, ...], *, today: date, year_hint: int | None
) -> tuple[date | None, date | None]:
    g = [group or "" for group in groups]

    def md(month: str, day: str, year: str) -> date | None:
        return _month_day(_MONTHS[month.lower()], int(day), _year(year), today=today, year_hint=year_hint)

    try:
        if kind == "iso_range":
            return _range(date(int(g[0]), int(g[1]), int(g[2])), date(int(g[3]), int(g[4]), int(g[5])))
        if kind == "iso":
            return date(int(g[0]), int(g[1]), int(g[2])), None
        if kind == "md_md":  # month day [year] - month day [year]
            start, end = md(g[0], g[1], g[2] or g[5]), md(g[3], g[4], g[5] or g[2])
            if start and end and end < start and not g[2] and g[5]:
                start = md(g[0], g[1], str(int(g[5]) - 1))  # "Dec 28 - Jan 3, 2026"
            return _range(start, end)
        if kind == "dm_dm":  # day month - day month [year]
            return _range(md(g[1], g[0], g[4]), md(g[3], g[2], g[4]))
        if kind in {"md_d", "d_dm"}:  # June 1-7, 1-7 June
            month, first, last = (g[0], g[1], g[2]) if kind == "md_d" else (g[2], g[0], g[1])
            start = md(month, first, g[3])
            if start is None or int(last) < int(first):
                return start, None
            return start, start.replace(day=int(last))
        if kind == "md":
            return md(g[0], g[1], g[2]), None
        if kind == "dm":
            return md(g[1], g[0], g[2]), None
        if kind == "us":
            month_num, day_num = int(g[0]), int(g[1])
            if not 1 <= month_num <= 12:
                return None, None
            return _month_day(month_num, day_num, _year(g[2]), today=today, year_hint=year_hint), None
        if kind == "relative":
            return _relative(g[0] if g[0].lower() != "the weekend" else "this weekend", today)
        if kind == "nth_weekend":
            month_number = _MONTHS[g[1].lower()]
            year = _year(g[2]) or year_hint or today.year
            found = _nth_weekend(g[0], month_number, year)
            if found is not None and found[1] < today and not g[2] and year_hint is None:
                found = _nth_weekend(g[0], month_number, year + 1)
            return found if found is not None else (None, None)
        if kind == "weekday_range":
            start, _ = _relative(f"{g[0] or 'on'} {g[1]}", today)
            return start, _weekday_on_or_after(start + timedelta(days=1), g[2])
        if kind == "weekday":
            return _relative(f"{g[0] or 'on'} {g[1]}", today)[0], None
        if kind == "in_n":
            amount = _to_int(g[0] or g[2]) or 0
            unit = (g[1] or g[3]).lower()
            return today + timedelta(days=amount * (7 if unit.startswith("week") else 1)), None
        if kind == "month_rel":
            if g[0].lower() == "this":
                return today, None
            return (today.replace(day=1) + timedelta(days=32)).replace(day=1), None
    except ValueError:  # June 31, 2025-02-30
        return None, None
    return None, None


def extract_dates(text: str, *, today: date, year: int | None = None) -> DateRange:
    """The date range a sentence describes: an explicit range ("June 1-7", "Jun 3 - Jun 10" with any dash,
    "2025-06-01 to 2025-06-07"), else the first two dates, else one date plus a duration ("for 6 nights")."""
    has_digit = _ANY_DIGIT.search(text) is not None
    if not has_digit and not _RELATIVE_WORD.search(text):
        return DateRange()
    # Cheap guards first: most pieces of a query have no month name, no ISO date and no slash.
    possible = {
        "month": has_digit and _MONTH_WORD.search(text) is not None,
        "iso": has_digit and _ISO_HINT.search(text) is not None,
        "us": has_digit and "/" in text,
        "relative": _RELATIVE_WORD.search(text) is not None,
    }
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, int, date | None, date | None]] = []
    weekday_starts: set[int] = set()  # where bare weekdays begin: an end weekday comes after the start
    for kind, pattern in _DATE_PATTERNS:
        if not possible[_DATE_GUARD[kind]]:
            continue
        for match in pattern.finditer(text):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            start, end = _parse_date_match(kind, match.groups(), today=today, year_hint=year)
            if start is None:
                continue
            taken.append(span)
            found.append((span[0], span[1], start, end))
            if kind in _FROM_WEEKDAY:
                weekday_starts.add(span[0])
    if not found:
        return DateRange()
    found.sort(key=lambda item: item[0])
    dates: list[date] = []
    for _, _, start, end in found:
        dates.extend(d for d in (start, end) if d is not None)

    ranged = next(((s, e) for _, _, s, e in found if e is not None), None)
    if ranged is not None:
        return DateRange(start=ranged[0], end=ranged[1], dates=tuple(dates))

    singles = [(begin, start) for begin, _, start, _ in found if start is not None]
    start_date: date | None = None
    end_date: date | None = None
    for begin, day in singles:
        if begin in weekday_starts and start_date is not None and day <= start_date:
            day += timedelta(days=7 * ((start_date - day).days // 7 + 1))  # "Tuesday, returning Thursday"
        if _END_MARKER.search(text[max(0, begin - 24) : begin]):
            if end_date is None:
                end_date = day
        elif start_date is None:
            start_date = day
        elif end_date is None and day > start_date:
            end_date = day
    if start_date is None and end_date is not None:
        start_date, end_date = end_date, None
    if start_date is not None and end_date is None:
        duration = _DURATION.search(text)
        if duration:
            amount = _to_int(duration.group(1)) or 0
            unit = duration.group(2).lower()
            days = amount * 7 if unit.startswith("week") else amount - 1 if unit.startswith("day") else amount
            if days > 0:
                end_date = start_date + timedelta(days=days)
    start_date, end_date = _range(start_date, end_date)
    return DateRange(start=start_date, end=end_date, dates=tuple(dates))


# ---------------------------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period ("Q3", "last quarter", "H2 2025", "this year"): a filter on data, never a name."""

    label: str
    start: date
    end: date


_PERIOD = re.compile(
    r"(?i)\b(?:(?P<q>q[1-4])|(?P<h>h[12]))(?:\s*(?:of\s+)?(?:'|fy)?(?P<qy>\d{4}|\d{2})\b)?(?!\w)"
    r"|\b(?P<rel>this|last|next|current|previous|past|coming)\s+(?P<unit>quarter|year|month|half)\b"
    r"|\b(?P<ytd>ytd|year[- ]to[- ]date)\b"
    r"|\bfy\s?'?(?P<fy>\d{4}|\d{2})\b"
)


def _quarter(year: int, number: int) -> tuple[date, date]:
    start = date(year, 3 * number - 2, 1)
    end = date(year + (number == 4), 1 if number == 4 else 3 * number + 1, 1) - timedelta(days=1)
    return start, end


def extract_period(text: str, *, today: date) -> Period | None:
    """The reporting period a sentence filters by. A quarter or half without a year is this year's (calendar
    quarters: a fiscal calendar would need the context to say so)."""
    match = _PERIOD.search(text)
    if not match:
        return None
    label = " ".join(match.group(0).split())
    if match.group("q") or match.group("h"):
        year = _year(match.group("qy")) or today.year
        number = int((match.group("q") or match.group("h"))[1])
        if match.group("q"):
            start, end = _quarter(year, number)
        else:
            start, end = (
                date(year, 1 if number == 1 else 7, 1),
                date(year, 6 if number == 1 else 12, 30 + (number == 2)),
            )
        return Period(label.upper() if not match.group("qy") else label, start, end)
    if match.group("ytd"):
        return Period(label, date(today.year, 1, 1), today)
    if match.group("fy"):
        year = _year(match.group("fy")) or today.year
        return Period(label, date(year, 1, 1), date(year, 12, 31))
    rel, unit = match.group("rel").lower(), match.group("unit").lower()
    shift = {"last": -1, "previous": -1, "past": -1, "next": 1, "coming": 1}.get(rel, 0)
    if unit == "year":
        return Period(label, date(today.year + shift, 1, 1), date(today.year + shift, 12, 31))
    if unit == "quarter":
        index = (today.month - 1) // 3 + shift  # quarters since January of this year, from 0
        year, number = today.year + index // 4, index % 4 + 1
        start, end = _quarter(year, number)
        return Period(label, start, end)
    if unit == "half":
        index = (today.month - 1) // 6 + shift
        year, half = today.year + index // 2, index % 2
        start = date(year, 1 + 6 * half, 1)
        end = date(year, 6, 30) if half == 0 else date(year, 12, 31)
        return Period(label, start, end)
    months = today.year * 12 + today.month - 1 + shift
    start = date(months // 12, months % 12 + 1, 1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return Period(label, start, end)


# ------------------------------------------------------------------------------------------------ money


@dataclass(frozen=True, slots=True)
class Money:
    amount: int | float
    bound: Literal["max", "min", "about"]
    per_night: bool = False
    currency: str | None = None


_MAX_WORDS = (
    r"under|below|less than|lower than|cheaper than|no more than|not more than|not over|at most|up to|"
    r"max(?:imum)?(?:\s+of)?|within|budget(?:\s+of)?|<=|<|≤"
)
_MIN_WORDS = (
    r"over|above|more than|greater than|bigger than|larger than|at least|min(?:imum)?(?:\s+of)?|"
    r"exceeding|upwards of|in excess of|worth over|>=|>|≥"
)
_ABOUT_WORDS = r"around|about|approximately|roughly|~"
_QUALIFIER = rf"(?P<qual>{_MAX_WORDS}|{_MIN_WORDS}|{_ABOUT_WORDS})"
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MULTIPLIER = r"k|m|mm|bn|million|thousand|billion"
_CODES = r"USD|EUR|GBP|JPY|CAD|AUD|CHF|dollars?|euros?|pounds?|bucks"
_PER_NIGHT = r"(?P<night>\s*(?:a|per|/|each|every)\s*night\b|\s*nightly\b)?"
_MONEY_WITH_CURRENCY = re.compile(
    rf"(?i)(?:(?<!\w){_QUALIFIER}\s*:?\s*(?:a\s+|of\s+)?)?"
    rf"(?:(?P<sym>[$€£¥])\s?(?P<n1>{_NUMBER})(?:\s?(?P<mul1>{_MULTIPLIER})\b)?(?:\s*(?P<code1>{_CODES})\b)?"
    rf"|(?P<n2>{_NUMBER})(?:\s?(?P<mul2>{_MULTIPLIER}))?\s*(?P<code2>{_CODES})\b)"
    rf"{_PER_NIGHT}"
)
_MONEY_QUALIFIED = re.compile(
    rf"(?i)\b(?P<qual>{_MAX_WORDS}|{_MIN_WORDS})\s+(?P<n>{_NUMBER})(?:\s?(?P<mul>k))?\b"
    r"(?!\s*(?:-?\s*stars?|people|persons|adults|guests|passengers|travell?ers|nights?|days?|weeks?|"
    r"hours?|minutes?|km|kilomet|miles?|m\b|meters?|%|percent|am\b|pm\b|results|rows|contacts|deals|"
    r"leads|projects|records|items|words))"
    rf"{_PER_NIGHT}"
)
_MAX_SET = re.compile(rf"(?i)^(?:{_MAX_WORDS})$")
_MIN_SET = re.compile(rf"(?i)^(?:{_MIN_WORDS})$")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_CODE_NAMES = {"dollar": "USD", "dollars": "USD", "bucks": "USD", "euro": "EUR", "euros": "EUR"}
_CODE_NAMES |= {"pound": "GBP", "pounds": "GBP"}


def _amount(number: str, multiplier: str | None) -> int | float:
    value = float(number.replace(",", ""))
    factor = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
    value *= factor.get((multiplier or "").lower(), 1)
    return int(value) if value.is_integer() else round(value, 2)


def _bound(qualifier: str | None) -> Literal["max", "min", "about"]:
    if not qualifier:
        return "about"
    qualifier = " ".join(qualifier.lower().split())
    if _MAX_SET.match(qualifier):
        return "max"
    if _MIN_SET.match(qualifier):
        return "min"
    return "about"


def extract_money(text: str) -> list[Money]:
    """Money amounts with the limit they express: "under $1000" (max), "deals over $50k" (min),
    "max $200 a night" (max, per night). Bare numbers count only after a limit word ("under 1000")."""
    found: list[tuple[int, Money]] = []
    taken: list[tuple[int, int]] = []
    for match in _MONEY_WITH_CURRENCY.finditer(text):
        number = match.group("n1") or match.group("n2")
        multiplier = match.group("mul1") or match.group("mul2")
        code = match.group("code1") or match.group("code2")
        symbol = match.group("sym")
        currency = _SYMBOLS.get(symbol or "") or (
            _CODE_NAMES.get(code.lower(), code.upper()) if code else None
        )
        money = Money(
            amount=_amount(number, multiplier),
            bound=_bound(match.group("qual")),
            per_night=bool(match.group("night")),
            currency=currency,
        )
        found.append((match.start(), money))
        taken.append(match.span())
    for match in _MONEY_QUALIFIED.finditer(text):
        if any(match.start() < end and start < match.end() for start, end in taken):
            continue
        money = Money(
            amount=_amount(match.group("n"), match.group("mul")),
            bound=_bound(match.group("qual")),
            per_night=bool(match.group("night")),
        )
        found.append((match.start(), money))
    found.sort(key=lambda item: item[0])
    return [money for _, money in found]


# ----------------------------------------------------------------------------------- hotels and travellers

_STARS = re.compile(r"(?i)\b([1-5]|one|two|three|four|five)\s*\+?\s*(?:-\s*)?(?:stars?\b|★)")
_LANDMARK = re.compile(
    r"(?i)\b(?:near|close to|next to|nearby|walking distance (?:of|to|from)|a short walk from|"
    r"within walking distance (?:of|to|from))\s+(?:the\s+)?"
    r"(?P<landmark>[^,.;!?()\n]+?)"
    r"(?=\s+(?:and|with|for|from|under|below|in|on|at|between|during|then|that|which|who|over|above|less|"
    r"max|maximum|costing|priced|starting|checking|check|arriving|leaving|departing|by|within)\b|[,.;!?()\n]|$)"
)
_COUNT = re.compile(
    rf"(?i)\b(?:for\s+)?(?:a\s+(?:party|group|family)\s+of\s+(?P<party>\d+|{_NUM_WORD_ALT})"
    rf"|(?P<n>\d+|{_NUM_WORD_ALT})\s+(?:people|persons|travell?ers|passengers|adults|guests|pax)\b)"
)
_CABIN = re.compile(r"(?i)\b(premium economy|economy|coach|business|first)(?:\s+|-)(?:class|cabin)\b")
_CABIN_IN = re.compile(r"(?i)\b(?:in|fly(?:ing)?)\s+(premium economy|economy|coach)\b")
_ALLIANCE = re.compile(r"(?i)\b(sky\s?team|star alliance|one\s?world)\b")
_ALLIANCES = {"skyteam": "SkyTeam", "staralliance": "Star Alliance", "oneworld": "oneworld"}
_AMENITY_WORDS: dict[str, str] = {
    "wifi": "wifi",
    "wi-fi": "wifi",
    "wireless internet": "wifi",
    "internet": "wifi",
    "breakfast": "breakfast",
    "pool": "pool",
    "swimming pool": "pool",
    "gym": "gym",
    "fitness center": "gym",
    "fitness centre": "gym",
    "parking": "parking",
    "spa": "spa",
    "airport shuttle": "airport_shuttle",
    "shuttle": "airport_shuttle",
    "pet friendly": "pet_friendly",
    "pet-friendly": "pet_friendly",
    "air conditioning": "air_conditioning",
    "kitchen": "kitchen",
    "restaurant": "restaurant",
}
_AMENITY = re.compile(
    r"(?i)\b(" + "|".join(re.escape(w) for w in sorted(_AMENITY_WORDS, key=len, reverse=True)) + r")\b"
)


def extract_stars(text: str) -> int | None:
    match = _STARS.search(text)
    return _to_int(match.group(1)) if match else None


def extract_landmark(text: str) -> str | None:
    """What a hotel should be near ("near the Eiffel Tower" -> "Eiffel Tower"); a known city is a place,
    not a landmark ("near Paris")."""
    for match in _LANDMARK.finditer(text):
        landmark = match.group("landmark").strip()
        if not landmark or landmark[0].isdigit() or landmark[0] in "$€£":
            continue
        if lookup_place(landmark) is not None:
            continue
        first = landmark.split()[0].lower().rstrip(".")
        if first in _MONTHS or first in _WEEKDAYS:
            continue
        return landmark
    return None


def extract_count(text: str) -> int | None:
    """How many people travel: "for 2 people", "3 passengers", "a family of 4"."""
    match = _COUNT.search(text)
    if not match:
        return None
    return _to_int(match.group("party") or match.group("n"))


def extract_cabin(text: str) -> str | None:
    """A cabin only when named as one ("business class"): a "business trip" is not a cabin."""
    match = _CABIN.search(text) or _CABIN_IN.search(text)
    if not match:
        return None
    cabin = match.group(1).lower()
    return {"coach": "economy", "premium economy": "premium_economy"}.get(cabin, cabin)


def extract_alliance(text: str) -> str | None:
    match = _ALLIANCE.search(text)
    if not match:
        return None
    return _ALLIANCES.get(re.sub(r"\s", "", match.group(1).lower()))


def extract_amenities(text: str) -> list[str]:
    amenities: list[str] = []
    for match in _AMENITY.finditer(text):
        name = _AMENITY_WORDS[match.group(1).lower()]
        if name not in amenities:
            amenities.append(name)
    return amenities


# --------------------------------------------------------------------------------------------------- CRM


@dataclass(frozen=True, slots=True)
class Person:
    first_name: str
    last_name: str | None = None
    from_email: bool = False  # guessed from the address's local part, not written out

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_NAME = r"(?P<name>[A-Z][a-z][a-zA-Z'\u2019-]*(?:\s+[A-Z][a-z][a-zA-Z'\u2019-]*){1,2})"
_PERSON_AFTER_VERB = re.compile(
    r"\b(?i:add|create|register|enter|log|insert|record|capture|named|called|lead\s+for|contact\s+for)\s+"
    r"(?:(?i:a|an)\s+)?(?:(?i:new)\s+)?(?:(?i:lead|contact|prospect)\s+(?:(?i:for|named|called)\s+)?)?"
    + _NAME
    + r"\b"
)
_PERSON_BEFORE_EMAIL = re.compile(_NAME + r"\s*[(<,]?\s*(?:(?i:email)\s*:?\s*)?(?=[\w.+-]+@)")
_COMPANY_SUFFIXES = frozenset(
    {"inc", "corp", "corporation", "llc", "ltd", "gmbh", "co", "group", "industries", "labs", "systems"}
    | {"technologies", "partners", "holdings", "company", "plc", "sa", "ag"}
)
_COMPANY = re.compile(
    r"\b(?i:at|from|with|for|of|company|account|customer|client|employer)\s*:?\s+"
    r"(?P<company>[A-Z][\w&'.-]*(?:\s+(?:&\s+)?[A-Z][\w&'.-]*)*)"
)
_COMPANY_WITH_SUFFIX = re.compile(
    r"\b(?P<company>[A-Z][\w&'.-]*(?:\s+[A-Z][\w&'.-]*)*\s+(?i:inc|corp|corporation|llc|ltd|gmbh|plc|ag|sa)\b\.?)"
)
# "VP of Sales", "Head of Marketing": a department in a job title, not a company.
_TITLE_BEFORE_OF = re.compile(
    r"(?i)\b(?:vp|vice president|head|director|chief|manager|president|svp|evp)\s+$"
)
# "Acme and Globex", "Acme, Globex or Initech": more companies of the same list.
_MORE_COMPANIES = re.compile(
    r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&|vs\.?|versus)\s+)(?P<company>[A-Z][\w&'.-]*)"
)
_COMPANY_BEFORE_NOUN = re.compile(
    r"(?P<company>[A-Z][\w&'.-]*(?:\s+[A-Z][\w&'.-]*)*)(?:'s)?\s+"
    r"(?i:contacts|deals|opportunities|opportunity|leads|accounts?|pipeline|people)\b"
)
_NOT_A_COMPANY = frozenset(
    {"the", "a", "an", "i", "me", "my", "our", "we", "find", "show", "list", "get", "query", "search"}
    | {"all", "any", "new", "open", "top", "add", "create", "please", "then", "and", "also", "plan"}
    | {"crm", "salesforce", "it", "this", "that", "us", "usd", "eur"}
    # Sentence openers and adjectives that stand capitalised before a noun ("Which opportunities ...").
    | {"which", "what", "who", "whose", "how", "any", "biggest", "largest", "latest", "recent", "current"}
    | {"total", "pipeline", "big", "small", "key", "summarize", "summarise", "compare", "give", "pull"}
)
# Periods are filters, never names: "our Q3 pipeline", "FY25 deals", "H2".
_PERIOD_WORD = re.compile(r"(?i)^(?:q[1-4]|h[12]|fy\s?'?\d{2,4}|ytd|\d{4})$")
_PER_PERSON = re.compile(r"(?i)\bper\s+(?:person|passenger|traveller|traveler|guest|adult)\b")
_FREEMAIL = frozenset({"gmail", "yahoo", "hotmail", "outlook", "icloud", "proton", "protonmail", "aol"})
_FREEMAIL |= {"example", "mail", "live", "msn", "gmx"}


def strip_counts_and_emails(text: str) -> str:
    """The text without head counts and email addresses, so "for 2 people" or "people@acme.com" never reads
    as a request for CRM contacts."""
    return _EMAIL.sub(" ", _COUNT.sub(" ", _PER_PERSON.sub(" ", text)))


def extract_emails(text: str) -> list[str]:
    return [m.group(0).rstrip(".") for m in _EMAIL.finditer(text)]


def _is_place_or_time(words: list[str]) -> bool:
    first = words[0].lower().rstrip(".,")
    return (
        first in _MONTHS
        or first in _WEEKDAYS
        or lookup_place(" ".join(words)) is not None
        or lookup_place(words[0]) is not None
    )


def extract_person(text: str) -> Person | None:
    """The person a lead or contact is about: "add John Smith ...", "John Smith (john@acme.com)", else the
    email's local part ("john.smith@...")."""
    for pattern in (_PERSON_AFTER_VERB, _PERSON_BEFORE_EMAIL):
        for match in pattern.finditer(text):
            words = match.group("name").split()
            if _is_place_or_time(words) or words[-1].lower().rstrip(".") in _COMPANY_SUFFIXES:
                continue
            if words[0].lower() in _NOT_A_COMPANY:
                words = words[1:]
                if len(words) < 2:
                    continue
            return Person(words[0], " ".join(words[1:]))
    emails = extract_emails(text)
    if emails:
        local = emails[0].split("@", 1)[0]
        parts = [p for p in re.split(r"[._-]+", local) if p.isalpha()]
        if len(parts) >= 2:
            return Person(parts[0].capitalize(), parts[-1].capitalize(), from_email=True)
        if len(parts) == 1:
            return Person(parts[0].capitalize(), from_email=True)
    return None


def _clean_company(raw: str) -> str | None:
    words = re.sub(r"['\u2019]s$", "", raw.rstrip(".,;:")).split()
    while words and words[0].lower() in _NOT_A_COMPANY:
        words = words[1:]
    if not words or _is_place_or_time(words):
        return None
    if words[0].lower() in _NOT_A_COMPANY or words[0][0].isdigit():
        return None
    while words and _PERIOD_WORD.match(words[-1]):
        words = words[:-1]
    if not words or _PERIOD_WORD.match(words[0]):
        return None
    return " ".join(words)


def extract_company(text: str, *, exclude: Iterable[str] = (), guess_from_email: bool = True) -> str | None:
    """A company or account named in the sentence ("at Acme Corp", "from Globex", "Initech's deals"), else
    (with ``guess_from_email``) the organisation of a non-freemail email address."""
    found = extract_companies(text, exclude=exclude)
    if found:
        return found[0]
    if not guess_from_email:
        return None
    for email in extract_emails(text):
        domain = email.split("@", 1)[1].split(".")
        if len(domain) >= 2 and domain[-2].lower() not in _FREEMAIL:
            return domain[-2].capitalize()
    return None


def extract_companies(text: str, *, exclude: Iterable[str] = ()) -> list[str]:
    """Every company a sentence names as one list ("for Acme and Globex" -> both), first one first."""
    excluded = {e.lower() for e in exclude if e}
    for pattern in (_COMPANY, _COMPANY_WITH_SUFFIX, _COMPANY_BEFORE_NOUN):
        for match in pattern.finditer(text):
            if pattern is _COMPANY and _TITLE_BEFORE_OF.search(text[: match.start()]):
                continue
            raw = match.group("company")
            company = _clean_company(raw)
            if not company or company.lower() in excluded or extract_alliance(raw) is not None:
                continue
            companies = [company]
            joined = False  # "Umbrella Corp, VP of Sales" is no list: a list ends in "and" or "or"
            position = match.end("company")
            while more := _MORE_COMPANIES.match(text, position):
                other = _clean_company(more.group("company"))
                if not other or other.lower() in excluded or other in companies:
                    break
                companies.append(other)
                joined = (
                    joined
                    or "," not in more.group(0)
                    or bool(re.search(r"(?i)\b(?:and|or)\b", more.group(0)))
                )
                position = more.end()
            return companies if joined else companies[:1]
    return []


_STAGES: dict[str, str] = {
    "prospecting": "Prospecting",
    "prospect": "Prospecting",
    "qualification": "Qualification",
    "qualifying": "Qualification",
    "qualified": "Qualification",
    "needs analysis": "Needs Analysis",
    "value proposition": "Value Proposition",
    "proposal": "Proposal",
    "proposals": "Proposal",
    "quote": "Proposal",
    "negotiation": "Negotiation",
    "negotiations": "Negotiation",
    "negotiating": "Negotiation",
    "closed won": "Closed Won",
    "closed-won": "Closed Won",
    "won": "Closed Won",
    "closed lost": "Closed Lost",
    "closed-lost": "Closed Lost",
    "lost": "Closed Lost",
}
_STAGE = re.compile(
    r"(?i)\b(" + "|".join(re.escape(s) for s in sorted(_STAGES, key=len, reverse=True)) + r")\b"
)


def extract_stage(text: str) -> str | None:
    """An opportunity stage in Salesforce's spelling ("negotiating" -> "Negotiation", "won" -> "Closed Won")."""
    match = _STAGE.search(text)
    return _STAGES[match.group(1).lower()] if match else None


_STATUSES: dict[str, str] = {
    "active": "active",
    "ongoing": "active",
    "running": "active",
    "in progress": "active",
    "inactive": "inactive",
    "open": "open",
    "closed": "closed",
    "completed": "completed",
    "complete": "completed",
    "finished": "completed",
    "done": "completed",
    "pending": "pending",
    "planned": "planned",
    "upcoming": "planned",
    "on hold": "on_hold",
    "on-hold": "on_hold",
    "paused": "on_hold",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "archived": "archived",
}
_STATUS = re.compile(
    r"(?i)\b(" + "|".join(re.escape(s) for s in sorted(_STATUSES, key=len, reverse=True)) + r")\b"
)


def extract_status(text: str) -> str | None:
    match = _STATUS.search(text)
    return _STATUSES[match.group(1).lower()] if match else None


_LIMIT = re.compile(
    r"(?i)\b(?:top|first|last|latest|limit(?:\s+to)?|up to|at most)\s+(\d+)\b(?!\s*(?:%|k\b|stars?|nights?|days?))"
    r"|\b(\d+)\s+(?:contacts|deals|opportunities|leads|projects|results|records|rows|items|accounts)\b"
)


def extract_limit(text: str) -> int | None:
    """How many rows the user wants: "top 5", "first 10", "10 contacts"."""
    match = _LIMIT.search(text)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


_PROJECT_ID = re.compile(
    r"(?i)\b(?:project|proj|prj)\b\s*(?:id\s*)?(?:#|no\.?|number)?\s*[:=]?\s*(?P<id>[a-z]{0,6}[_-]?\d+)\b"
    r"|\b(?P<bare>[a-z]{2,6}_\d+|[A-Z]{1,5}-\d{1,6})\b"
)


def extract_project_id(text: str) -> str | None:
    match = _PROJECT_ID.search(text)
    return (match.group("id") or match.group("bare")) if match else None


def extract_project_ids(text: str) -> list[str]:
    """Every project id, in order ("proj_2 and proj_5")."""
    found: list[str] = []
    for match in _PROJECT_ID.finditer(text):
        project = match.group("id") or match.group("bare")
        if project not in found:
            found.append(project)
    return found


_TITLE = re.compile(
    r"\b(?:(?i:title|job title|role|position)\s*(?:is|:|=|of)?\s*"
    r"(?P<named>[A-Z][\w&/-]*(?:\s+(?:of\s+|&\s+)?[A-Z][\w&/-]*)*)"
    r"|(?P<known>C[ETFOMI]O|VP(?:\s+of\s+[A-Z]\w+)?|Head\s+of\s+[A-Z]\w+|"
    r"(?:[A-Z]\w+\s+)?(?:Director|Manager|Engineer|Architect|Analyst)(?:\s+of\s+[A-Z]\w+)?))\b"
)


def extract_title(text: str) -> str | None:
    match = _TITLE.search(text)
    if not match:
        return None
    return (match.group("named") or match.group("known")).strip()


_SOURCE = re.compile(
    r"(?i)\b(?:source\s*[:=]?\s*|via\s+(?:the\s+|a\s+|our\s+)?|from\s+(?:the\s+|a\s+|our\s+))"
    r"(webinar|referral|website|web|trade show|conference|event|linkedin|email campaign|cold call|partner)\b"
)


def extract_source(text: str) -> str | None:
    match = _SOURCE.search(text)
    return match.group(1).lower() if match else None


# ----------------------------------------------------------------------------------------------- generic

_PAYLOAD_COLON = re.compile(r"(?<!\d):(?!\d)\s*(?P<payload>.+)$", re.DOTALL)
_PAYLOAD_QUOTED = re.compile(r"[\"“](?P<payload>[^\"”]{3,})[\"”]")


def extract_payload(text: str) -> str | None:
    """The material to analyse when the sentence carries it: after a colon or in quotes."""
    match = _PAYLOAD_QUOTED.search(text) or _PAYLOAD_COLON.search(text)
    if not match:
        return None
    payload = match.group("payload").strip()
    return payload or None


def _normal(text: str) -> str:
    return " " + re.sub(r"[\s_\-/]+", " ", text.lower()).strip() + " "


def match_enum(text: str, values: Iterable[Any], *, skip: Iterable[str] = ()) -> Any:
    """The enum value the text names (whole words, plural tolerated, underscores read as spaces), preferring
    the one mentioned first; ``skip`` lists values that are too generic to count (a capability's own noun)."""
    haystack = _normal(text)
    skipped = {_normal(s) for s in skip}
    best: tuple[int, int, Any] | None = None
    for value in values:
        if not isinstance(value, str):
            continue
        needle = _normal(value)
        if needle in skipped:
            continue
        for variant in (needle, needle[:-1] + "s ", needle[:-1] + "es "):
            position = haystack.find(variant)
            if position >= 0:
                key = (position, -len(variant), value)
                if best is None or key[:2] < best[:2]:
                    best = key
                break
    return best[2] if best else None


# ---------------------------------------------------------------------------------------------- together


_ONE_WAY = re.compile(r"(?i)\bone[- ]way\b")


class Extraction:
    """Everything one piece of text says, each field found independently and only when first asked for:
    a travel request never pays for the CRM patterns. The offline planner decides which field fills which
    parameter."""

    def __init__(self, text: str, *, today: date, year: int | None = None) -> None:
        self.text = text
        self.today = today
        self.year = year

    @cached_property
    def places(self) -> PlaceRoles:
        return place_roles(self.text)

    @cached_property
    def dates(self) -> DateRange:
        return extract_dates(self.text, today=self.today, year=self.year)

    @cached_property
    def money(self) -> list[Money]:
        return extract_money(self.text)

    @cached_property
    def stars(self) -> int | None:
        return extract_stars(self.text)

    @cached_property
    def landmark(self) -> str | None:
        return extract_landmark(self.text)

    @cached_property
    def count(self) -> int | None:
        return extract_count(self.text)

    @cached_property
    def cabin(self) -> str | None:
        return extract_cabin(self.text)

    @cached_property
    def alliance(self) -> str | None:
        return extract_alliance(self.text)

    @cached_property
    def amenities(self) -> list[str]:
        return extract_amenities(self.text)

    @cached_property
    def emails(self) -> list[str]:
        return extract_emails(self.text)

    @cached_property
    def person(self) -> Person | None:
        return extract_person(self.text)

    @cached_property
    def company(self) -> str | None:
        """A company the text names; see ``company_guess`` for one read from an email address."""
        person = self.person
        exclude = [person.full_name] if person else ()
        return extract_company(self.text, exclude=exclude, guess_from_email=False)

    @cached_property
    def companies(self) -> list[str]:
        """Every company of the list the text names ("for Acme and Globex")."""
        person = self.person
        return extract_companies(self.text, exclude=[person.full_name] if person else ())

    @cached_property
    def project_ids(self) -> list[str]:
        return extract_project_ids(self.text)

    @cached_property
    def period(self) -> Period | None:
        return extract_period(self.text, today=self.today)

    @cached_property
    def company_guess(self) -> str | None:
        return self.company or extract_company(self.text, exclude=(), guess_from_email=True)

    @cached_property
    def stage(self) -> str | None:
        return extract_stage(self.text)

    @cached_property
    def status(self) -> str | None:
        return extract_status(self.text)

    @cached_property
    def limit(self) -> int | None:
        return extract_limit(self.text)

    @cached_property
    def project_id(self) -> str | None:
        return extract_project_id(self.text)

    @cached_property
    def title(self) -> str | None:
        return extract_title(self.text)

    @cached_property
    def source(self) -> str | None:
        return extract_source(self.text)

    @cached_property
    def payload(self) -> str | None:
        return extract_payload(self.text)

    @cached_property
    def one_way(self) -> bool:
        return bool(_ONE_WAY.search(self.text))

    @cached_property
    def landmark_place(self) -> Place | None:
        return landmark_city(self.landmark) if self.landmark else None

    def money_limit(self, *, per_night: bool | None = None) -> Money | None:
        """The upper limit the text sets (bare amounts count as one), optionally only nightly ones."""
        candidates = [m for m in self.money if m.bound != "min"]
        if per_night is not None:
            candidates = [m for m in candidates if m.per_night == per_night]
        explicit = [m for m in candidates if m.bound == "max"]
        chosen = explicit or candidates
        return chosen[0] if chosen else None

    def money_floor(self) -> Money | None:
        return next((m for m in self.money if m.bound == "min"), None)

    def as_dict(self) -> dict[str, Any]:
        """Every field, computed; for debugging and tests."""
        names = [n for n, v in type(self).__dict__.items() if isinstance(v, cached_property)]
        return {n: getattr(self, n) for n in names}


def extract(text: str, *, today: date, year: int | None = None) -> Extraction:
    """What ``text`` says; fields are extracted on first access."""
    return Extraction(text, today=today, year=year)
