"""Queries as people write them, with the plan shape the offline planner should give.

Each case names the data steps it expects, in order (the capability and the key parameters; a parameter
set to ``ABSENT`` must not be there), or the ``PLANNING_FAILED`` it expects and the parameters its message
must name. The synthesis step is not listed: every plan with data steps ends in one. Dates are resolved
against ``TODAY`` (a Thursday) unless a case says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = ["ABSENT", "CORPUS", "CRM", "PROJECTS", "TODAY", "TRAVEL", "Case", "Fail"]

TODAY = date(2025, 8, 14)  # a Thursday: "this weekend" is Aug 16-17, "next month" is September


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Fail:
    """``PLANNING_FAILED`` whose message names every one of ``names``."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", names)


Steps = list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Case:
    query: str
    expect: Steps | Fail
    domain: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    today: date = TODAY


def _hotels(city: str, check_in: str, check_out: str, **more: Any) -> tuple[str, dict[str, Any]]:
    return ("search_hotels", {"city": city, "check_in": check_in, "check_out": check_out, **more})


def _flights(origin: str, destination: str, departure: str, **more: Any) -> tuple[str, dict[str, Any]]:
    return (
        "search_flights",
        {"origin": origin, "destination": destination, "departure_date": departure, **more},
    )


def _activities(city: str, **more: Any) -> tuple[str, dict[str, Any]]:
    return ("search_activities", {"city": city, **more})


def _deals(**more: Any) -> tuple[str, dict[str, Any]]:
    return ("query_opportunities", more)


def _contacts(**more: Any) -> tuple[str, dict[str, Any]]:
    return ("query_contacts", more)


def _project(project_id: str) -> tuple[str, dict[str, Any]]:
    return ("get_project", {"project_id": project_id})


def _projects(**more: Any) -> tuple[str, dict[str, Any]]:
    return ("list_projects", more)


TRAVEL: list[Case] = [
    Case(
        "Compare hotels in Amsterdam and Brussels for the first weekend of September",
        [
            _hotels("Amsterdam", "2025-09-06", "2025-09-07"),
            _hotels("Brussels", "2025-09-06", "2025-09-07"),
        ],
    ),
    Case("a ryokan in Kyoto from 3rd to 6th of November", [_hotels("Kyoto", "2025-11-03", "2025-11-06")]),
    Case(
        "Lisbon next month for a week, leaving from Berlin",
        [
            _flights("BER", "LIS", "2025-09-01", return_date="2025-09-08"),
            _hotels("Lisbon", "2025-09-01", "2025-09-08"),
        ],
    ),
    Case(
        "Any cheap flights from London to Rome this weekend?",
        [_flights("LHR", "FCO", "2025-08-16", return_date="2025-08-17")],
    ),
    Case(
        "I need a hotel in Barcelona from the 12th to the 15th of October",
        [_hotels("Barcelona", "2025-10-12", "2025-10-15")],
    ),
    Case("flights Paris to New York 6 Nov", [_flights("CDG", "JFK", "2025-11-06", return_date=ABSENT)]),
    Case(
        "Somewhere to stay in Vienna for 3 nights starting Friday",
        [_hotels("Vienna", "2025-08-15", "2025-08-18")],
    ),
    Case("What is there to do in Prague this weekend?", [_activities("Prague")]),
    Case("Fly me from Chicago to Miami in two weeks", [_flights("ORD", "MIA", "2025-08-28")]),
    Case(
        "Round trip NYC to LA, out Friday back Sunday",
        [_flights("JFK", "LAX", "2025-08-15", return_date="2025-08-17")],
    ),
    Case("Book me an inn in Dublin Sept 19-21", [_hotels("Dublin", "2025-09-19", "2025-09-21")]),
    Case(
        "Lodging near Central Park from 6 Nov to 9 Nov",
        [_hotels("New York", "2025-11-06", "2025-11-09", landmark="Central Park")],
    ),
    Case("Things to do in Rome on Saturday", [_activities("Rome", date="2025-08-16")]),
    Case(
        "hotels in Paris, Rome and Madrid for 2 nights from Oct 3",
        [
            _hotels("Paris", "2025-10-03", "2025-10-05"),
            _hotels("Rome", "2025-10-03", "2025-10-05"),
            _hotels("Madrid", "2025-10-03", "2025-10-05"),
        ],
    ),
    Case(
        "Flights from Berlin to Paris and to Rome on 2 October",
        [_flights("BER", "CDG", "2025-10-02"), _flights("BER", "FCO", "2025-10-02")],
    ),
    Case(
        "Cheap flights from Madrid to Lisbon next Tuesday, returning Thursday",
        [_flights("MAD", "LIS", "2025-08-19", return_date="2025-08-21")],
    ),
    Case(
        "Where should I stay in Tokyo from Dec 1 to Dec 5? Something near Shinjuku",
        [_hotels("Tokyo", "2025-12-01", "2025-12-05", landmark="Shinjuku")],
    ),
    Case(
        "Museums in Amsterdam on 14 September",
        [_activities("Amsterdam", date="2025-09-14", category="museum")],
    ),
    Case(
        "Flights for 2 adults from Toronto to Vancouver on the 3rd of October",
        [_flights("YYZ", "YVR", "2025-10-03", passengers=2)],
    ),
    Case(
        "Find me a B&B in Edinburgh for Oct 3-5",
        [_hotels("Edinburgh", "2025-10-03", "2025-10-05")],
    ),
    Case("Need a flight out of Boston to Denver tomorrow morning", [_flights("BOS", "DEN", "2025-08-15")]),
    Case(
        "Weekend getaway to Nice from Paris, Sept 5-7",
        [
            _flights("CDG", "NCE", "2025-09-05", return_date="2025-09-07"),
            _hotels("Nice", "2025-09-05", "2025-09-07"),
        ],
    ),
    Case(
        "Can you find me somewhere to stay in Berlin from Friday to Monday?",
        [_hotels("Berlin", "2025-08-15", "2025-08-18")],
    ),
    Case("Tours in Dubai in two weeks", [_activities("Dubai", date="2025-08-28", category="tour")]),
    Case("Food tours in Bangkok tomorrow", [_activities("Bangkok", date="2025-08-15", category="food")]),
    Case(
        "Any outdoor activities around Vancouver this Sunday?",
        [_activities("Vancouver", date="2025-08-17", category="outdoor")],
    ),
    Case("Hotel in Singapore 6-9 Nov with a pool", [_hotels("Singapore", "2025-11-06", "2025-11-09")]),
    Case(
        "I'd like to fly from Sydney to Melbourne on Monday the 8th of September",
        [_flights("SYD", "MEL", "2025-09-08", return_date=ABSENT)],
    ),
    Case(
        "Show me 4 star accommodation in Madrid for 5 nights from 20 Sept",
        [_hotels("Madrid", "2025-09-20", "2025-09-25", star_rating=4)],
    ),
    Case("things to see in Istanbul", [_activities("Istanbul")]),
    Case(
        "Flying LA to Vegas Saturday, back Sunday, 4 people",
        [_flights("LAX", "LAS", "2025-08-16", return_date="2025-08-17", passengers=4)],
    ),
    Case(
        "Plan a weekend in Paris next weekend, flying from London",
        [
            _flights("LHR", "CDG", "2025-08-23", return_date="2025-08-24"),
            _hotels("Paris", "2025-08-23", "2025-08-24"),
        ],
    ),
    Case(
        "guesthouse in Porto for a week from 1 October",
        [_hotels("Porto", "2025-10-01", "2025-10-08")],
    ),
    Case(
        "Airfare from Seattle to Honolulu leaving the 20th of December, coming back January 3rd",
        [_flights("SEA", "HNL", "2025-12-20", return_date="2026-01-03")],
    ),
    Case("Restaurants and food experiences in Lisbon", [_activities("Lisbon", category="food")]),
    # Clear failures: the query names what a capability offers but leaves a required part out.
    Case("Hotels in Lisbon", Fail("check_in", "check_out")),
    Case("Flights to Tokyo on Friday", Fail("origin")),
    Case("Compare hotels in Amsterdam and Brussels", Fail("check_in")),
    Case("A hotel in Atlantis from Oct 3 to Oct 5", Fail("city", "Atlantis")),
    Case("Flights from Paris to Rome", Fail("departure_date")),
    Case("Hotels in Rome next month", Fail("check_out")),
]

CRM: list[Case] = [
    Case("Summarize our Q3 pipeline risk", [_deals(account=ABSENT)]),
    Case("Show me all deals in negotiation", [_deals(stage="Negotiation", account=ABSENT)]),
    Case(
        "Which opportunities over $100k closed this quarter?",
        [_deals(min_amount=100000, account=ABSENT)],
    ),
    Case("List the deals we have with Acme", [_deals(account="Acme")]),
    Case("What's in the pipeline for Globex in Q4?", [_deals(account="Globex")]),
    Case("Who are our contacts at Initech?", [_contacts(company="Initech")]),
    Case("Pull up leads from the webinar", [_contacts(status="lead", company=ABSENT)]),
    Case(
        "Add a new lead: Maria Garcia, maria.garcia@umbrella.io, Umbrella Corp, VP of Sales",
        [
            (
                "create_lead",
                {
                    "first_name": "Maria",
                    "last_name": "Garcia",
                    "email": "maria.garcia@umbrella.io",
                    "company": "Umbrella Corp",
                },
            )
        ],
    ),
    Case("Create a lead for Tom Baker at Hooli", Fail("email")),
    Case("Top 10 opportunities by value", [_deals(limit=10, account=ABSENT)]),
    Case("Any deals above 250k in proposal stage?", [_deals(stage="Proposal", min_amount=250000)]),
    Case("Summarize open opportunities for Acme from last quarter", [_deals(account="Acme")]),
    Case(
        "Compare the pipeline for Acme and Globex",
        [_deals(account="Acme"), _deals(account="Globex")],
    ),
    Case("Show deals worth more than 50 thousand dollars", [_deals(min_amount=50000)]),
    Case("How many leads did we get this month?", [_contacts(status="lead", company=ABSENT)]),
    Case("What does our H2 pipeline look like?", [_deals(account=ABSENT)]),
    Case(
        "Any Q1 2026 deals in negotiation with Acme?",
        [_deals(stage="Negotiation", account="Acme")],
    ),
    Case(
        "Give me a rundown of Initech contacts and their open deals",
        [_contacts(company="Initech"), _deals(account="Initech")],
    ),
    Case("Which prospects came in from the trade show?", [_contacts(status="lead")]),
    Case("Biggest deals this year", [_deals(account=ABSENT)]),
    Case("Add John Doe as a lead", Fail("email")),
    Case("Show our customers at Globex", [_contacts(company="Globex")]),
    Case("Deals won in Q2 for Umbrella", [_deals(stage="Closed Won", account="Umbrella")]),
]

PROJECTS: list[Case] = [
    Case("How is project proj_7 doing?", [_project("proj_7")]),
    Case("Status of project 42", [_project("proj_42")]),
    Case("Which projects are behind schedule?", [_projects(status=ABSENT)]),
    Case("List the completed projects from last year", [_projects(status="completed")]),
    Case("Show me projects that are paused", [_projects(status="on_hold")]),
    Case("Give me an overview of all active projects this quarter", [_projects(status="active")]),
    Case("Compare budget burn on proj_2 and proj_5", [_project("proj_2"), _project("proj_5")]),
    Case("Risk assessment for project proj_9", [_project("proj_9")]),
    Case("Recommend next steps for project proj_3 given its late milestones", [_project("proj_3")]),
    Case("List projects on hold and summarize why", [_projects(status="on_hold")]),
    Case("Any upcoming projects?", [_projects(status="planned")]),
    Case("Is proj_12 over budget?", [_project("proj_12")]),
]

CORPUS: list[Case] = TRAVEL + CRM + PROJECTS
