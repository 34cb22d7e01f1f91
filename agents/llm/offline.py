"""The offline provider: deterministic, no network, and honestly *not* a language model.

It exists so that the demo and the test suite run anywhere without a model. Instead of generating text it
reads what it was given (the outputs of the step's dependencies in ``request.context`` and the workflow
input), recognises the shapes the bundled demo connectors return (flights, hotels, activities, CRM
contacts, opportunities, leads) and renders them as a short markdown summary; anything else is rendered
generically. It never states a fact that is not in its input: with no data it says so, and a structured
output it cannot fill from the context is an error rather than a guess.
"""

from __future__ import annotations

import enum
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import jsonschema

from agents.llm.base import LLMProvider, LLMRequest, LLMResult, check_output_schema
from orchestrator.core.errors import StepError

MODEL: Final = "offline-summarizer"

_MAX_ITEMS: Final = 6  # items listed per section; the rest are counted, not dropped silently
_MAX_TEXT: Final = 800  # characters of a string output (for example another LLM step's answer)
_MAX_INLINE: Final = 160
_SEARCH_DEPTH: Final = 6
_CHUNK_WORDS: Final = 4  # words per streamed chunk

_SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

# Keys that mark a known shape, singular forms included, mapped to the section they feed.
_SHAPES: Final = {
    "flights": "flights",
    "flight": "flights",
    "hotels": "hotels",
    "hotel": "hotels",
    "activities": "activities",
    "activity": "activities",
    "contacts": "contacts",
    "contact": "contacts",
    "opportunities": "opportunities",
    "opportunity": "opportunities",
    "leads": "leads",
    "lead": "leads",
}
_SECTION_ORDER: Final = ("flights", "hotels", "activities", "contacts", "opportunities", "leads")
_SECTION_TITLES: Final = {
    "flights": ("Flights", "flights"),
    "hotels": ("Hotels", "hotels"),
    "activities": ("Activities", "activities"),
    "contacts": ("Contacts", "contacts"),
    "opportunities": ("Opportunities", "opportunities"),
    "leads": ("Leads", "leads"),
}

# Structured mode: string properties with these names may carry the text summary when nothing in the
# context has them, and they stand in for each other when searching the context.
_SUMMARY_NAMES: Final = frozenset(
    {"summary", "analysis", "answer", "response", "result", "finalresult", "report", "overview", "text"}
)
_SUMMARY_SYNONYMS: Final = ("summary", "analysis", "answer", "finalresult", "report", "overview")
_SYNONYMS: Final = {
    "summary": _SUMMARY_SYNONYMS,
    "analysis": _SUMMARY_SYNONYMS,
    "answer": _SUMMARY_SYNONYMS,
    "finalresult": _SUMMARY_SYNONYMS,
    "email": ("email", "emailaddress"),
    "emailaddress": ("emailaddress", "email"),
    "phone": ("phone", "phonenumber"),
    "phonenumber": ("phonenumber", "phone"),
    "company": ("company", "account", "accountname", "organization"),
    "stars": ("stars", "starrating"),
    "starrating": ("starrating", "stars"),
}


class _Sentinel(enum.Enum):
    MISSING = enum.auto()


# "Not found" must differ from a found ``None``.
_MISSING: Final = _Sentinel.MISSING


class OfflineProvider(LLMProvider):
    """Summarises dependency outputs with fixed rules; the default when no LLM endpoint is configured."""

    name = "offline"
    model = MODEL

    async def complete(self, request: LLMRequest) -> LLMResult:
        output: Any
        if request.output_schema is not None:
            output = self.fill(request, request.output_schema)
            completion = json.dumps(output, ensure_ascii=False, default=str)
        else:
            output = self.summarize(request)
            completion = output
        return LLMResult(
            output=output,
            model=MODEL,
            provider=self.name,
            usage={"prompt_tokens": _prompt_tokens(request), "completion_tokens": _words(completion)},
        )

    async def stream(self, request: LLMRequest) -> AsyncIterator[str | LLMResult]:
        """The same answer as :meth:`complete`, in chunks of a few words (a structured output as its JSON
        text), so live streams show the offline provider's text arriving the way a model's would."""
        result = await self.complete(request)
        output = result.output
        text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str)
        for chunk in text_chunks(text):
            yield chunk
        yield result

    def summarize(self, request: LLMRequest) -> str:
        """Render the context as markdown. Public so that the offline planner words its answer the same."""
        return _Summary(request).render()

    def fill(self, request: LLMRequest, schema: dict[str, Any]) -> Any:
        """Fill ``schema`` from values found in the context, then validate; never invents a value."""
        check_output_schema(schema)
        filler = _Filler(request, lambda: self.summarize(request))
        if _is_object_schema(schema):
            output, missing = filler.fill_object(schema, filler.scope, with_summary=True)
        else:
            value = filler.fill_value(None, schema)
            output, missing = value, ["<root>"] if value is _MISSING else []
        if missing:
            raise StepError(
                f"offline provider could not fill required output properties {missing!r} from the outputs of "
                "the previous steps; make a dependency return them, give them a default in the schema, "
                "or configure a language model (ORCH_LLM_PROVIDER=openai)",
                retryable=False,
                code="LLM_INVALID_OUTPUT",
            )
        problems = _schema_problems(schema, output)
        if problems:
            raise StepError(
                f"offline provider output does not match the output schema: {problems[0]}",
                retryable=False,
                code="LLM_INVALID_OUTPUT",
            )
        return output


# --------------------------------------------------------------------------------------------- text mode


@dataclass
class _Found:
    """One recognised item and the object that held it (which may carry currency, nights or landmark)."""

    item: Mapping[str, Any]
    holder: Mapping[str, Any]


@dataclass
class _Sections:
    items: dict[str, list[_Found]] = field(default_factory=dict)

    def add(self, kind: str, found: Iterable[_Found]) -> None:
        self.items.setdefault(kind, []).extend(found)


class _Summary:
    def __init__(self, request: LLMRequest) -> None:
        self.request = request
        self.sections = _Sections()
        self.generic: list[tuple[str, Any]] = []
        self.default_currency = _str(_first(_deep_values([request.input], ("currency",))))

    def render(self) -> str:
        lines = [self._header()]
        outputs = [(str(name), value) for name, value in self.request.context.items() if not _empty(value)]
        if not outputs:
            lines += ["", "There was no data to summarise: the previous steps returned no output."]
            return "\n".join(lines)
        for name, value in outputs:
            if not _find_shapes(value, self.sections, depth=0):
                self.generic.append((name, value))
        for kind in _SECTION_ORDER:
            if kind in self.sections.items:
                lines += ["", *self._section(kind, self.sections.items[kind])]
            if kind == "activities":
                # The trip's total closes the travel part, before any CRM or other data.
                total = self._total()
                if total:
                    lines += ["", total]
        for name, value in self.generic:
            lines += ["", f"**{_humanize(name)}:**", *_render_generic(value)]
        return "\n".join(lines)

    def _header(self) -> str:
        prompt = self.request.prompt.strip()
        if not prompt and self.request.messages:
            users = [m for m in self.request.messages if m.get("role") == "user"]
            prompt = (_str(users[-1].get("content")) if users else None) or ""
        if not prompt:
            return "Here is a summary of what the previous steps returned:"
        return f"Here is what I found for: {_first_sentence(prompt)}"

    def _section(self, kind: str, found: list[_Found]) -> list[str]:
        title, noun = _SECTION_TITLES[kind]
        if kind == "leads" and len(found) == 1:
            title = "Lead"
        lines = [f"**{title}:**"]
        if not found:
            return [*lines, f"- No {noun} found."]
        render: Callable[[_Found], str] = getattr(self, f"_{kind}_line")
        lines += [f"- {render(entry)}" for entry in found[:_MAX_ITEMS]]
        if len(found) > _MAX_ITEMS:
            lines.append(f"- …and {len(found) - _MAX_ITEMS} more")
        if kind == "opportunities":
            pipeline = self._pipeline(found)
            if pipeline:
                lines.append(pipeline)
        return lines

    def _currency(self, entry: _Found) -> str | None:
        price = entry.item.get("price")
        nested = price.get("currency") if isinstance(price, Mapping) else None
        return _str(entry.item.get("currency") or nested or entry.holder.get("currency")) or (
            self.default_currency
        )

    def _flights_line(self, entry: _Found) -> str:
        item = entry.item
        airline = _name(
            _pick(item, "airline", "airline_name", "carrier", "carrier_name", "operating_carrier")
        )
        number = _str(_pick(item, "flight_number", "flight_no", "number", "flight", "code"))
        label = " ".join(part for part in (airline, number) if part) or "Flight"
        parts: list[str] = []
        price = _num(_pick(item, "price", "total_price", "fare", "amount"))
        stops = _stops_text(item)
        priced = " ".join(
            p for p in (_money(price, self._currency(entry)) if price is not None else "", stops) if p
        )
        if priced:
            parts.append(priced)
        departure = _pick(item, "departure_time", "depart_time", "departs_at", "departure_at", "departure")
        if isinstance(departure, Mapping):
            departure = _pick(departure, "time", "at", "datetime", "scheduled")
        if departure not in (None, ""):
            parts.append(f"departing {_when(departure)}")
        back = item.get("return")
        if isinstance(back, Mapping):
            leg = _str(_pick(back, "flight_number", "flight_no", "number")) or ""
            day = _str(back.get("departure_date"))
            hour = _str(back.get("departure_time"))
            when = " ".join(p for p in (day, hour) if p)
            parts.append(" ".join(p for p in ("return", leg, f"on {when}" if when else "") if p))
        return f"{label}: {', '.join(parts)}" if parts else label

    def _hotels_line(self, entry: _Found) -> str:
        item = entry.item
        label = _str(_pick(item, "name", "hotel_name", "title")) or "Hotel"
        stars = _num(_pick(item, "stars", "star_rating", "category"))
        if stars is not None:
            label += f" ({_fmt_number(stars)}-star)"
        parts: list[str] = []
        currency = self._currency(entry)
        nightly = _num(_pick(item, "price_per_night", "nightly_rate", "rate", "price"))
        total = _num(_pick(item, "total_price", "total"))
        if nightly is not None:
            parts.append(f"{_money(nightly, currency)}/night")
        elif total is not None:
            parts.append(f"{_money(total, currency)} total")
        distance = _pick(item, "distance_km", "distance")
        if distance is not None:
            landmark = _str(
                _pick(item, "landmark", "near", "distance_to")
                or _pick(entry.holder, "landmark", "near")
                or _first(_deep_values([self.request.input], ("landmark",)))
            )
            # A bare number is kilometres (the demo servers' ``distance_km``); a string keeps its own unit.
            amount = _num(distance) if not isinstance(distance, str) else None
            where = f"{_fmt_number(amount)} km" if amount is not None else str(distance)
            parts.append(f"{where} from {landmark}" if landmark else f"{where} away")
        rating = _num(_pick(item, "rating", "guest_rating", "review_score"))
        if rating is not None and stars is None:
            parts.append(f"rated {_fmt_number(rating)}")
        return f"{label}: {', '.join(parts)}" if parts else label

    def _activities_line(self, entry: _Found) -> str:
        item = entry.item
        label = _str(_pick(item, "name", "title", "activity")) or "Activity"
        parts: list[str] = []
        price = _num(_pick(item, "price", "price_per_person", "cost"))
        if price is not None:
            parts.append(_money(price, self._currency(entry)))
        duration = _pick(item, "duration", "duration_hours")
        if duration is not None:
            hours = _num(duration) if "duration" not in item else None
            parts.append(f"{_fmt_number(hours)} h" if hours is not None else str(duration))
        when = _pick(item, "date", "start_time", "time")
        if when is not None:
            parts.append(f"on {_when(when)}")
        rating = _num(_pick(item, "rating"))
        if rating is not None:
            parts.append(f"rated {_fmt_number(rating)}")
        return f"{label}: {', '.join(parts)}" if parts else label

    def _contacts_line(self, entry: _Found) -> str:
        item = entry.item
        label = _person(item) or "Contact"
        role = _str(_pick(item, "title", "job_title", "role"))
        company = _name(_pick(item, "company", "account", "account_name", "organization"))
        detail = ", ".join(p for p in (role, company) if p)
        if detail:
            label += f" ({detail})"
        reach = ", ".join(p for p in (_str(item.get("email")), _str(item.get("phone"))) if p)
        return f"{label}: {reach}" if reach else label

    def _opportunities_line(self, entry: _Found) -> str:
        item = entry.item
        label = _str(_pick(item, "name", "title")) or "Opportunity"
        company = _name(_pick(item, "account", "account_name", "company"))
        if company:
            label += f" ({company})"
        parts: list[str] = []
        amount = _num(_pick(item, "amount", "value"))
        if amount is not None:
            parts.append(_money(amount, self._currency(entry)))
        stage = _str(_pick(item, "stage", "status"))
        if stage:
            parts.append(f"stage {stage}")
        probability = _num(item.get("probability"))
        if probability is not None:
            percent = probability * 100 if probability <= 1 else probability
            parts.append(f"{_fmt_number(percent)}% probability")
        close = _pick(item, "close_date", "expected_close", "expected_close_date")
        if close is not None:
            parts.append(f"closing {_when(close)}")
        return f"{label}: {', '.join(parts)}" if parts else label

    def _leads_line(self, entry: _Found) -> str:
        item = entry.item
        label = _person(item) or _str(item.get("name")) or "Lead"
        company = _name(_pick(item, "company", "account", "organization"))
        if company:
            label += f" ({company})"
        parts = [p for p in (_str(item.get("email")), _str(item.get("phone"))) if p]
        status = _str(item.get("status"))
        if status:
            parts.append(f"status {status}")
        lead_id = _str(_pick(item, "id", "lead_id"))
        if lead_id:
            parts.append(f"id {lead_id}")
        return f"{label}: {', '.join(parts)}" if parts else label

    def _pipeline(self, found: list[_Found]) -> str | None:
        amounts = [_num(_pick(e.item, "amount", "value")) for e in found]
        currencies = {self._currency(e) for e in found}
        if len(found) < 2 or None in amounts or len(currencies) != 1:
            return None
        total = sum(a for a in amounts if a is not None)
        return f"Total pipeline: {_money(total, currencies.pop())} across {len(found)} opportunities"

    def _total(self) -> str | None:
        """Cheapest and dearest flight plus cheapest and dearest stay, only from prices actually given."""
        flights = self.sections.items.get("flights") or []
        hotels = self.sections.items.get("hotels") or []
        if not flights or not hotels:
            return None
        # total_price covers every passenger where the connector tells it apart from the per-seat price.
        fares = [
            p for p in (_num(_pick(e.item, "total_price", "price", "fare")) for e in flights) if p is not None
        ]
        stays = [s for s in (self._stay(e) for e in hotels) if s is not None]
        currencies = {c for c in (self._currency(e) for e in [*flights, *hotels]) if c}
        if not fares or not stays or len(currencies) > 1:
            return None
        currency = next(iter(currencies), None)
        low, high = min(fares) + min(stays), max(fares) + max(stays)
        span = _money(low, currency) if low == high else f"{_money(low, currency)}-{_money(high, currency)}"
        line = f"Total estimated cost: {span}"
        budget = self._budget()
        if budget is not None and (budget[1] is None or currency is None or budget[1] == currency):
            amount = _money(budget[0], budget[1] or currency)
            if high <= budget[0]:
                line += f" (within your {amount} budget)"
            elif low > budget[0]:
                line += f" (over your {amount} budget)"
            else:
                line += f" (the cheapest options fit your {amount} budget, the dearest do not)"
        return line

    def _stay(self, entry: _Found) -> float | None:
        total = _num(_pick(entry.item, "total_price", "total"))
        if total is not None:
            return total
        nightly = _num(_pick(entry.item, "price_per_night", "nightly_rate", "rate"))
        nights = self._nights(entry)
        return nightly * nights if nightly is not None and nights is not None else None

    def _nights(self, entry: _Found) -> int | None:
        sources = [entry.item, entry.holder, self.request.input, self.request.context]
        for source in sources:
            nights = _num(_first(_deep_values([source], ("nights",))))
            if nights is not None and nights > 0:
                return int(nights)
        for start, end in (
            ("checkin", "checkout"),
            ("departuredate", "returndate"),
            ("startdate", "enddate"),
        ):
            for source in sources:
                first = _date(_first(_deep_values([source], (start,))))
                last = _date(_first(_deep_values([source], (end,))))
                if first and last and last > first:
                    return (last - first).days
        return None

    def _budget(self) -> tuple[float, str | None] | None:
        raw = _first(_deep_values([self.request.input, self.request.context], ("budget",)))
        amount = _num(raw)
        if amount is None:
            return None
        currency = _str(raw.get("currency")) if isinstance(raw, Mapping) else None
        return amount, (currency or self.default_currency)


def _find_shapes(value: Any, sections: _Sections, *, depth: int) -> bool:
    """Collect recognised lists under known keys, looking a few objects deep (results are often wrapped)."""
    if depth > _SEARCH_DEPTH or not isinstance(value, Mapping):
        return False
    found = False
    for key, sub in value.items():
        kind = _SHAPES.get(str(key).lower())
        if kind is not None and isinstance(sub, list) and all(isinstance(x, Mapping) for x in sub):
            sections.add(kind, (_Found(x, value) for x in sub))
            found = True
        elif kind is not None and isinstance(sub, Mapping) and sub:
            sections.add(kind, [_Found(sub, value)])
            found = True
        elif isinstance(sub, Mapping):
            found = _find_shapes(sub, sections, depth=depth + 1) or found
    return found


def _render_generic(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_truncate(value.strip(), _MAX_TEXT)]
    if isinstance(value, list) and value and all(not isinstance(x, Mapping | list) for x in value):
        return [f"- {_inline(value)} ({len(value)} {'item' if len(value) == 1 else 'items'})"]
    if isinstance(value, list):
        lines = [f"- {_inline(item)}" for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            lines.append(f"- …and {len(value) - _MAX_ITEMS} more")
        return lines or ["- (empty list)"]
    if isinstance(value, Mapping):
        lines = []
        for key, sub in list(value.items())[:_MAX_ITEMS]:
            if isinstance(sub, list) and sub and all(isinstance(x, Mapping) for x in sub):
                lines.append(f"- {key} ({len(sub)} {'item' if len(sub) == 1 else 'items'}):")
                lines += [f"  - {_inline(x)}" for x in sub[:3]]
                if len(sub) > 3:
                    lines.append(f"  - …and {len(sub) - 3} more")
            else:
                lines.append(f"- {key}: {_inline(sub)}")
        if len(value) > _MAX_ITEMS:
            lines.append(f"- …and {len(value) - _MAX_ITEMS} more fields")
        return lines
    return [f"- {_inline(value)}"]


def _inline(value: Any, limit: int = _MAX_INLINE) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_inline(v, 48)}" for k, v in value.items())
    elif isinstance(value, list) and all(not isinstance(x, Mapping | list) for x in value):
        text = ", ".join(_inline(x, 48) for x in value)
    elif isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    elif isinstance(value, float):
        text = _fmt_number(value)
    elif value is None:
        text = "none"
    else:
        text = " ".join(str(value).split())
    return _truncate(text, limit)


# ----------------------------------------------------------------------------------------- structured mode


class _Filler:
    def __init__(self, request: LLMRequest, summary: Callable[[], str]) -> None:
        self.scope: list[Any] = [request.context, request.input]
        self._summary = summary
        self._summary_text: str | None = None

    def summary(self) -> str:
        if self._summary_text is None:
            self._summary_text = self._summary()
        return self._summary_text

    def fill_object(
        self, schema: Mapping[str, Any], roots: list[Any], *, with_summary: bool
    ) -> tuple[dict[str, Any], list[str]]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        if not properties:
            # A bare object schema: the summary is the one thing there honestly is to say.
            if with_summary and schema.get("additionalProperties") is not False:
                return {"summary": self.summary()}, []
            return {}, required
        output: dict[str, Any] = {}
        missing: list[str] = []
        for name, sub in properties.items():
            value = self.fill_value(
                name, sub, roots=roots, with_summary=with_summary, required=name in required
            )
            if value is _MISSING:
                if name in required:
                    missing.append(name)
                continue
            output[name] = value
        return output, missing

    def fill_value(
        self,
        name: str | None,
        schema: Any,
        *,
        roots: list[Any] | None = None,
        with_summary: bool = True,
        required: bool = True,
    ) -> Any:
        roots = self.scope if roots is None else roots
        schema = schema if isinstance(schema, Mapping) else {}
        if name is not None:
            for candidate in _deep_values(roots, _keys_for(name)):
                value = self.coerce(candidate, schema)
                if value is not _MISSING:
                    return value
        if "default" in schema:
            return schema["default"]
        if with_summary and _accepts(schema, "string") and (name is None or _norm(name) in _SUMMARY_NAMES):
            return self.summary()
        if _accepts(schema, "array"):
            return []
        if _is_object_schema(schema) and schema.get("properties"):
            output, missing = self.fill_object(schema, roots, with_summary=with_summary)
            if not missing and (output or required):
                return output
        if required and _accepts(schema, "null"):
            return None
        return _MISSING

    def coerce(self, value: Any, schema: Mapping[str, Any]) -> Any:
        """Fit a found value to ``schema`` by simple conversions only; ``_MISSING`` when it does not fit."""
        for combinator in ("anyOf", "oneOf"):
            if isinstance(schema.get(combinator), list):
                for option in schema[combinator]:
                    fitted = self.coerce(value, option if isinstance(option, Mapping) else {})
                    if fitted is not _MISSING:
                        return fitted
                return _MISSING
        types = schema.get("type")
        if types is None:
            types = ["object"] if "properties" in schema else ["array"] if "items" in schema else []
        elif isinstance(types, str):
            types = [types]
        result: Any = value if not types else _MISSING
        for kind in types:
            result = self._coerce_type(value, kind, schema)
            if result is not _MISSING:
                break
        if result is not _MISSING and "enum" in schema and result not in schema["enum"]:
            return _MISSING
        if result is not _MISSING and "const" in schema and result != schema["const"]:
            return _MISSING
        return result

    def _coerce_type(self, value: Any, kind: str, schema: Mapping[str, Any]) -> Any:
        if kind == "string":
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return _fmt_number(value)
            return _MISSING
        if kind in ("integer", "number"):
            number = _num(value) if not isinstance(value, Mapping) else None
            if number is None:
                return _MISSING
            if kind == "number":
                return value if isinstance(value, int | float) else number
            return int(number) if number.is_integer() else _MISSING
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
                return value.strip().lower() in ("true", "yes")
            return _MISSING
        if kind == "null":
            return None if value is None else _MISSING
        if kind == "array":
            if not isinstance(value, list):
                return _MISSING
            items = schema.get("items")
            if not isinstance(items, Mapping):
                return list(value)
            coerced = [self.coerce(x, items) for x in value]
            return _MISSING if any(x is _MISSING for x in coerced) else coerced
        if kind == "object":
            if not isinstance(value, Mapping):
                return _MISSING
            if not schema.get("properties"):
                return dict(value)
            output, missing = self.fill_object(schema, [value], with_summary=False)
            return _MISSING if missing else output
        return _MISSING


def _schema_problems(schema: Mapping[str, Any], value: Any) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: (list(map(str, e.path)), e.message))
    return [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "object"
        or (isinstance(kind, list) and "object" in kind)
        or (kind is None and "properties" in schema)
    )


def _accepts(schema: Mapping[str, Any], kind: str) -> bool:
    types = schema.get("type")
    if isinstance(types, str):
        return types == kind
    if isinstance(types, list):
        return kind in types
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        return any(isinstance(o, Mapping) and _accepts(o, kind) for o in options)
    return False


def _keys_for(name: str) -> tuple[str, ...]:
    key = _norm(name)
    return (key, *(s for s in _SYNONYMS.get(key, ()) if s != key))


# ----------------------------------------------------------------------------------------------- helpers


def _deep_values(roots: Iterable[Any], keys: tuple[str, ...]) -> Iterator[Any]:
    """Values under any of ``keys`` (normalised), per root breadth first, so the shallowest wins.

    All roots are searched for the first key before the next key is tried: a synonym never beats the
    property's own name.
    """
    roots = list(roots)
    for key in keys:
        for root in roots:
            queue: deque[tuple[Any, int]] = deque([(root, 0)])
            while queue:
                node, depth = queue.popleft()
                children: Iterable[Any]
                if isinstance(node, Mapping):
                    for k, v in node.items():
                        if _norm(str(k)) == key:
                            yield v
                    children = node.values()
                elif isinstance(node, list):
                    children = node
                else:
                    continue
                if depth < _SEARCH_DEPTH:
                    queue.extend((child, depth + 1) for child in children)


def _first(values: Iterator[Any]) -> Any:
    return next(values, None)


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _pick(item: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = item.get(key)
        if value is not None and value != "":
            return value
    return None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = " ".join(str(value).split())
    return text or None


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return _str(_pick(value, "name", "title", "code"))
    return _str(value)


def _person(item: Mapping[str, Any]) -> str | None:
    full = _str(_pick(item, "name", "full_name"))
    if full:
        return full
    return " ".join(p for p in (_str(item.get("first_name")), _str(item.get("last_name"))) if p) or None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"[^\d\-.]*(-?\d+(?:\.\d+)?)\s*[A-Za-z/%]*", value.replace(",", "").strip())
        return float(match.group(1)) if match else None
    if isinstance(value, Mapping):
        return _num(_pick(value, "amount", "total", "value", "max"))
    return None


def _fmt_number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0")


def _money(amount: float, currency: str | None) -> str:
    text = f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"
    if currency is None:
        return text
    symbol = _SYMBOLS.get(currency.upper())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def _stops_text(item: Mapping[str, Any]) -> str:
    raw = _pick(item, "stops", "num_stops", "number_of_stops", "stop_count")
    stops = len(raw) if isinstance(raw, list) else _num(raw)
    if stops is None:
        nonstop = _pick(item, "direct", "nonstop")
        return "direct" if nonstop is True else ""
    if stops == 0:
        return "direct"
    return f"with {int(stops)} stop{'s' if stops != 1 else ''}"


def _when(value: Any) -> str:
    text = str(value).strip()
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", text
    )
    return f"{match.group(1)} {match.group(2)}" if match else text


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _humanize(name: str) -> str:
    text = re.sub(r"[_\-]+", " ", name).strip()
    return text[:1].upper() + text[1:] if text else name


def _first_sentence(text: str) -> str:
    # a line break ends the restated request as surely as a full stop does
    text = next((line for line in text.splitlines() if line.strip()), text)
    text = " ".join(text.split())
    match = re.match(r"(.+?[.!?])(?:\s|$)", text)
    sentence = (match.group(1) if match else text).rstrip(".")
    return _truncate(sentence, _MAX_INLINE)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _words(text: str) -> int:
    return len(text.split())


def text_chunks(text: str, words: int = _CHUNK_WORDS) -> Iterator[str]:
    """``text`` in pieces of ``words`` words each, whitespace kept, so the pieces join back exactly."""
    pieces = re.findall(r"\s*\S+|\s+", text) if text else []
    for start in range(0, len(pieces), words):
        yield "".join(pieces[start : start + words])


def _prompt_tokens(request: LLMRequest) -> int:
    parts = [request.system or "", request.prompt]
    parts += [_str(m.get("content")) or "" for m in request.messages or []]
    for payload in (request.context, request.input):
        if payload:
            parts.append(json.dumps(payload, ensure_ascii=False, default=str))
    return sum(_words(p) for p in parts)
