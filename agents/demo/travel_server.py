"""The ``amadeus-travel`` demo MCP server: flights, hotels and activities from deterministic synthetic data.

It stands in for a GDS so that every travel example in the seeds runs offline; it is configured like any
third-party MCP server. The tools' typed parameters and docstrings are what agents discover as their
capability schemas, so they are written for the planner (an LLM) to read.

    python -m agents.demo.travel_server                                      # stdio (default)
    python -m agents.demo.travel_server --transport streamable-http --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from agents.demo import travel_data
from agents.demo._cli import demo_server_parser, parse_demo_args, run_demo_server
from agents.demo.travel_data import TravelDataError

__all__ = ["SERVER_NAME", "create_server", "main"]

SERVER_NAME = "amadeus-travel"
_T = TypeVar("_T")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Alliance = Literal["SkyTeam", "Star Alliance", "oneworld"]
Cabin = Literal["economy", "premium_economy", "business", "first"]
Category = Literal["tour", "museum", "food", "outdoor", "culture", "nightlife"]
# Searches change nothing and see only the bundled data: safe to retry, cache or run in parallel.
_SEARCH = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _answer(search: Callable[..., _T], **params: Any) -> _T:
    # ToolError, not ValueError: the SDK hides the message of any other exception from the client.
    try:
        return search(**params)
    except TravelDataError as exc:
        raise ToolError(str(exc)) from exc


def create_server(*, log_level: LogLevel = "WARNING") -> MCPServer:
    """A fresh server per call, so tests can run one in-process without sharing registrations."""
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="Amadeus Travel (demo)",
        description="Demo travel agent: deterministic synthetic flights, hotels and activities, no network.",
        instructions=(
            "Search flights, hotels and activities. All results are synthetic demo data "
            "(marked synthetic: true); prices are in USD."
        ),
        version="1.0.0",
        log_level=log_level,
    )

    @server.tool(annotations=_SEARCH)
    def search_flights(
        origin: Annotated[str, Field(description="Departure airport, 3-letter IATA code, e.g. 'SFO'")],
        destination: Annotated[str, Field(description="Arrival airport, 3-letter IATA code, e.g. 'CDG'")],
        departure_date: Annotated[str, Field(description="Outbound date, ISO YYYY-MM-DD")],
        return_date: Annotated[
            str | None,
            Field(description="Return date for a round trip, ISO YYYY-MM-DD, not before departure"),
        ] = None,
        max_price: Annotated[
            float | None, Field(description="Highest fare per passenger in USD; pricier flights are dropped")
        ] = None,
        airline_alliance: Annotated[
            Alliance | None, Field(description="Preferred alliance; its flights are ranked first")
        ] = None,
        cabin: Annotated[Cabin, Field(description="Cabin class")] = "economy",
        passengers: Annotated[int, Field(description="Number of passengers (1-9)", ge=1, le=9)] = 1,
    ) -> dict[str, Any]:
        """Search for flights between airports.

        Returns flight offers sorted by price (offers of the preferred alliance first), each with airline,
        flight number, times, duration, stops and the fare per passenger in USD.
        """
        return _answer(
            travel_data.search_flights,
            origin=origin,
            destination=destination,
            departure_date=departure_date,
            return_date=return_date,
            max_price=max_price,
            airline_alliance=airline_alliance,
            cabin=cabin,
            passengers=passengers,
        )

    @server.tool(annotations=_SEARCH)
    def search_hotels(
        city: Annotated[str, Field(description="City name, e.g. 'Paris'")],
        check_in: Annotated[str, Field(description="Check-in date, ISO YYYY-MM-DD")],
        check_out: Annotated[str, Field(description="Check-out date, ISO YYYY-MM-DD, after check_in")],
        star_rating: Annotated[
            int | None, Field(description="Only hotels with exactly this many stars (1-5)", ge=1, le=5)
        ] = None,
        landmark: Annotated[
            str | None, Field(description="Landmark to measure distances from, e.g. 'Eiffel Tower'")
        ] = None,
        max_price_per_night: Annotated[float | None, Field(description="Highest nightly rate in USD")] = None,
        amenities: Annotated[
            list[str] | None,
            Field(description="Amenities every result must have, e.g. ['wifi', 'breakfast']"),
        ] = None,
    ) -> dict[str, Any]:
        """Search for hotels in a city.

        Returns hotels with nightly and total price in USD, stars, rating, amenities and the distance in km
        from the landmark (nearest first) or, without one, from the city centre (cheapest first).
        """
        return _answer(
            travel_data.search_hotels,
            city=city,
            check_in=check_in,
            check_out=check_out,
            star_rating=star_rating,
            landmark=landmark,
            max_price_per_night=max_price_per_night,
            amenities=amenities,
        )

    @server.tool(annotations=_SEARCH)
    def search_activities(
        city: Annotated[str, Field(description="City name, e.g. 'Paris'")],
        date: Annotated[
            str | None,
            Field(description="Day of the visit, ISO YYYY-MM-DD; drops activities closed that day"),
        ] = None,
        category: Annotated[Category | None, Field(description="Only activities of this category")] = None,
    ) -> dict[str, Any]:
        """Search for tours, museums, food and other activities in a city, best rated first."""
        return _answer(travel_data.search_activities, city=city, date=date, category=category)

    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = demo_server_parser(
        "python -m agents.demo.travel_server", __doc__.splitlines()[0], default_port=8765
    )
    args = parse_demo_args(parser, argv)
    run_demo_server(args, lambda: create_server(log_level=args.log_level))


if __name__ == "__main__":
    main()
