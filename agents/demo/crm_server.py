"""The ``salesforce-crm`` demo MCP server: contacts, leads and opportunities in a real SQLite database.

It stands in for a CRM so the seeds' CRM examples run offline, and it is the demo's one connector with
side effects: ``create_lead`` really inserts a row. That makes it the place where at-least-once step
execution shows: a retried ``create_lead`` must not create a second lead. Two guards cover it:

- an email address is unique, so a repeated lead for the same person returns the existing row with
  ``"created": false``;
- an ``idempotency_key`` in the request ``_meta`` (the orchestrator sends one per step attempt chain) is
  recorded with the first result, and a repeat of the key returns that result without touching the data.

The database is created and seeded deterministically on first start (``--db PATH``, else ``$CRM_DB_PATH``,
else ``./data/crm.db``). Every statement uses bound parameters.

    python -m agents.demo.crm_server --db /tmp/crm.db                        # stdio (default)
    python -m agents.demo.crm_server --transport streamable-http --port 8766
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from agents.demo._cli import demo_server_parser, parse_demo_args, run_demo_server

__all__ = ["DEFAULT_DB_PATH", "SERVER_NAME", "CrmDatabase", "create_server", "main"]

SERVER_NAME: Final = "salesforce-crm"
DEFAULT_DB_PATH: Final = "./data/crm.db"
IDEMPOTENCY_META_KEY: Final = "idempotency_key"
STAGES: Final = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
)
_MAX_LIMIT: Final = 200
_SCHEMA_VERSION: Final = 1
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Status = Literal["contact", "lead"]
_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# Writes, but never destroys, and a repeat (same email or same idempotency key) changes nothing more.
_CREATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS contacts (
    id          INTEGER PRIMARY KEY,
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    company     TEXT NOT NULL,
    title       TEXT,
    phone       TEXT,
    status      TEXT NOT NULL CHECK (status IN ('contact', 'lead')),
    source      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_company ON contacts (company COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS opportunities (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    account     TEXT NOT NULL,
    stage       TEXT NOT NULL,
    amount      REAL NOT NULL,
    close_date  TEXT NOT NULL,
    owner       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    tool        TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"""

# (first, last, company, title, status, source); emails and phones are derived, dates are fixed.
_CONTACTS: Final = (
    ("Alice", "Johnson", "Acme Corp", "VP Engineering", "contact", "website"),
    ("Bob", "Smith", "Acme Corp", "CTO", "contact", "referral"),
    ("Carol", "Williams", "Acme Corp", "Procurement Manager", "contact", "trade show"),
    ("David", "Brown", "Acme Corp", "Data Engineer", "lead", "webinar"),
    ("Emma", "Davis", "Globex", "Head of IT", "contact", "website"),
    ("Frank", "Miller", "Globex", "CFO", "contact", "partner"),
    ("Grace", "Wilson", "Globex", "Security Architect", "lead", "webinar"),
    ("Henry", "Moore", "Globex", "Platform Lead", "contact", "referral"),
    ("Isabel", "Taylor", "Initech", "Director of Operations", "contact", "trade show"),
    ("Jack", "Anderson", "Initech", "Software Engineer", "lead", "website"),
    ("Karen", "Thomas", "Initech", "IT Manager", "contact", "cold call"),
    ("Liam", "Jackson", "Initech", "CEO", "contact", "referral"),
    ("Mia", "White", "Umbrella Health", "Chief Medical Officer", "contact", "conference"),
    ("Noah", "Harris", "Umbrella Health", "Compliance Officer", "contact", "website"),
    ("Olivia", "Martin", "Umbrella Health", "Data Scientist", "lead", "webinar"),
    ("Paul", "Thompson", "Umbrella Health", "VP Technology", "contact", "partner"),
    ("Quinn", "Garcia", "Stark Industries", "Head of R&D", "contact", "conference"),
    ("Rachel", "Martinez", "Stark Industries", "Procurement Lead", "contact", "referral"),
    ("Sam", "Robinson", "Stark Industries", "ML Engineer", "lead", "website"),
    ("Tina", "Clark", "Stark Industries", "COO", "contact", "trade show"),
    ("Umar", "Rodriguez", "Wayne Enterprises", "Director of Security", "contact", "partner"),
    ("Vera", "Lewis", "Wayne Enterprises", "Analytics Manager", "contact", "webinar"),
    ("Will", "Lee", "Wayne Enterprises", "Cloud Architect", "lead", "website"),
    ("Xena", "Walker", "Wayne Enterprises", "CIO", "contact", "referral"),
    ("Yusuf", "Hall", "Hooli", "VP Product", "contact", "conference"),
    ("Zoe", "Allen", "Hooli", "Engineering Manager", "contact", "website"),
    ("Adam", "Young", "Hooli", "SRE Lead", "lead", "cold call"),
    ("Bella", "King", "Vandelay Industries", "Import Manager", "contact", "trade show"),
    ("Chris", "Wright", "Vandelay Industries", "Logistics Director", "contact", "referral"),
    ("Diana", "Scott", "Vandelay Industries", "Finance Manager", "lead", "website"),
)

_OWNERS: Final = ("Jordan Blake", "Priya Natarajan", "Marco Rossi")

# (name, account, stage, amount, close_date)
_OPPORTUNITIES: Final = (
    ("Platform Expansion", "Acme Corp", "Negotiation", 250_000, "2025-03-31"),
    ("Data Pipeline Modernisation", "Acme Corp", "Proposal", 120_000, "2025-05-15"),
    ("Security Audit", "Globex", "Closed Won", 45_000, "2024-11-30"),
    ("Zero Trust Rollout", "Globex", "Qualification", 310_000, "2025-08-01"),
    ("Workflow Automation", "Initech", "Needs Analysis", 80_000, "2025-06-30"),
    ("Support Renewal", "Initech", "Closed Won", 24_000, "2024-12-15"),
    ("Clinical Analytics Suite", "Umbrella Health", "Proposal", 420_000, "2025-07-15"),
    ("HIPAA Compliance Add-on", "Umbrella Health", "Negotiation", 95_000, "2025-04-30"),
    ("R&D Compute Cluster", "Stark Industries", "Prospecting", 750_000, "2025-10-01"),
    ("AI Assistant Pilot", "Stark Industries", "Closed Lost", 60_000, "2024-10-31"),
    ("Threat Intelligence Feed", "Wayne Enterprises", "Qualification", 150_000, "2025-06-15"),
    ("Cloud Migration", "Wayne Enterprises", "Closed Won", 380_000, "2025-01-31"),
    ("Observability Platform", "Hooli", "Needs Analysis", 210_000, "2025-09-30"),
    ("Developer Seats Expansion", "Hooli", "Prospecting", 35_000, "2025-05-31"),
    ("Supply Chain Visibility", "Vandelay Industries", "Proposal", 130_000, "2025-07-31"),
)


class CrmDatabase:
    """The CRM's SQLite file. One short connection per call: tools run in worker threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def initialise(self) -> None:
        """Create the schema and seed it once; safe when several servers start on one file at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            with _immediate(db):
                if db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION:
                    return
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._seed(db)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def query_contacts(
        self, *, company: str | None, name: str | None, email: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if company:
            where.append("company LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(company)}%")
        if name:
            where.append("(first_name || ' ' || last_name) LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(name)}%")
        if email:
            where.append("email = ?")
            args.append(email.strip())
        if status:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT * FROM contacts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY last_name COLLATE NOCASE, first_name COLLATE NOCASE, id LIMIT ?"
        with self._connect() as db:
            return [dict(row) for row in db.execute(sql, [*args, limit])]

    def query_opportunities(
        self, *, stage: str | None, min_amount: float | None, account: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[str | float] = []
        if stage:
            where.append("stage = ?")
            args.append(stage)
        if min_amount is not None:
            where.append("amount >= ?")
            args.append(min_amount)
        if account:
            where.append("account LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(account)}%")
        sql = "SELECT * FROM opportunities"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY amount DESC, id LIMIT ?"
        with self._connect() as db:
            return [dict(row) for row in db.execute(sql, [*args, limit])]

    def create_lead(self, lead: dict[str, Any], *, idempotency_key: str | None) -> dict[str, Any]:
        """Insert a lead unless its email exists; with a key, replay the first answer for that key.

        The key check, the insert and the key record share one IMMEDIATE transaction, so two concurrent
        deliveries of one request cannot both insert.
        """
        fingerprint = json.dumps(lead, sort_keys=True)
        with self._connect() as db, _immediate(db):
            if idempotency_key is not None:
                seen = db.execute(
                    "SELECT tool, arguments, result FROM idempotency_keys WHERE key = ?", (idempotency_key,)
                ).fetchone()
                if seen is not None:
                    if seen["tool"] != "create_lead" or seen["arguments"] != fingerprint:
                        raise ToolError(
                            f"idempotency key {idempotency_key!r} was already used for a different "
                            f"{seen['tool']} request; use a new key for new work"
                        )
                    return cast("dict[str, Any]", json.loads(seen["result"]))
            inserted = db.execute(
                """
                INSERT INTO contacts
                    (first_name, last_name, email, company, title, phone, status, source, created_at)
                VALUES (:first_name, :last_name, :email, :company, :title, NULL, 'lead', :source, :created_at)
                ON CONFLICT (email) DO NOTHING
                """,
                {**lead, "created_at": _now()},
            ).rowcount
            row = db.execute("SELECT * FROM contacts WHERE email = ?", (lead["email"],)).fetchone()
            result = {"lead": dict(row), "created": inserted == 1}
            if idempotency_key is not None:
                db.execute(
                    "INSERT INTO idempotency_keys (key, tool, arguments, result, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (idempotency_key, "create_lead", fingerprint, json.dumps(result), _now()),
                )
            return result

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: transactions are explicit (see _immediate), never implicit.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _seed(db: sqlite3.Connection) -> None:
        for i, (first, last, company, title, status, source) in enumerate(_CONTACTS):
            domain = re.sub(r"[^a-z0-9]+", "", company.lower()) + ".example.com"
            db.execute(
                """
                INSERT INTO contacts
                    (first_name, last_name, email, company, title, phone, status, source, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    first,
                    last,
                    f"{first.lower()}.{last.lower()}@{domain}",
                    company,
                    title,
                    f"+1-555-01{i:02d}",
                    status,
                    source,
                    f"2024-{1 + i % 12:02d}-{1 + (i * 7) % 28:02d}T09:00:00Z",
                ),
            )
        for i, (name, account, stage, amount, close_date) in enumerate(_OPPORTUNITIES):
            db.execute(
                "INSERT INTO opportunities (name, account, stage, amount, close_date, owner)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (f"{account} - {name}", account, stage, float(amount), close_date, _OWNERS[i % len(_OWNERS)]),
            )


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _like(text: str) -> str:
    """Escape LIKE wildcards so a user's '%' or '_' matches itself."""
    return text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_LIMIT:
        raise ToolError(f"limit must be between 1 and {_MAX_LIMIT}, got {limit}")
    return limit


def create_server(
    db_path: str | os.PathLike[str] | None = None, *, log_level: LogLevel = "WARNING"
) -> MCPServer:
    """Build the server over ``db_path`` (created and seeded now if new)."""
    database = CrmDatabase(db_path or os.environ.get("CRM_DB_PATH") or DEFAULT_DB_PATH)
    database.initialise()
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="Salesforce CRM (demo)",
        description="Demo CRM agent over a local SQLite database: contacts, leads and opportunities.",
        instructions="Query contacts and opportunities, and create leads. Data is synthetic demo data.",
        version="1.0.0",
        log_level=log_level,
    )

    @server.tool(annotations=_READ)
    def query_contacts(
        company: Annotated[str | None, Field(description="Company name or part of it, e.g. 'Acme'")] = None,
        name: Annotated[
            str | None, Field(description="Person's first, last or full name, or part of it")
        ] = None,
        email: Annotated[str | None, Field(description="Exact email address (case-insensitive)")] = None,
        status: Annotated[Status | None, Field(description="'contact' or 'lead'")] = None,
        limit: Annotated[int, Field(description=f"Most rows to return (1-{_MAX_LIMIT})")] = 20,
    ) -> dict[str, Any]:
        """Search CRM contacts and leads by company, name, email or status, sorted by last name."""
        contacts = database.query_contacts(
            company=company, name=name, email=email, status=status, limit=_limit(limit)
        )
        return {"contacts": contacts, "count": len(contacts)}

    @server.tool(annotations=_READ)
    def query_opportunities(
        stage: Annotated[str | None, Field(description=f"Sales stage, one of: {', '.join(STAGES)}")] = None,
        min_amount: Annotated[float | None, Field(description="Smallest deal amount in USD")] = None,
        account: Annotated[str | None, Field(description="Account (company) name or part of it")] = None,
        limit: Annotated[int, Field(description=f"Most rows to return (1-{_MAX_LIMIT})")] = 20,
    ) -> dict[str, Any]:
        """Search sales opportunities by stage, minimum amount or account, largest first.

        Returns the opportunities, their count and the total amount of the ones returned.
        """
        canonical = None
        if stage:
            canonical = next((s for s in STAGES if s.lower() == stage.strip().lower()), None)
            if canonical is None:
                raise ToolError(f"unknown stage {stage!r}; use one of: {', '.join(STAGES)}")
        rows = database.query_opportunities(
            stage=canonical, min_amount=min_amount, account=account, limit=_limit(limit)
        )
        return {"opportunities": rows, "count": len(rows), "total_amount": sum(r["amount"] for r in rows)}

    @server.tool(annotations=_CREATE)
    def create_lead(
        first_name: Annotated[str, Field(description="Lead's first name")],
        last_name: Annotated[str, Field(description="Lead's last name")],
        email: Annotated[str, Field(description="Lead's email address; one lead per address")],
        company: Annotated[str, Field(description="Lead's company")],
        ctx: Context,
        title: Annotated[str | None, Field(description="Job title")] = None,
        source: Annotated[str, Field(description="Where the lead came from")] = "orchestrator",
    ) -> dict[str, Any]:
        """Create a sales lead. Idempotent: an existing email returns that record with created=false.

        A request carrying `idempotency_key` in its `_meta` replays the first result for that key.
        """
        address = email.strip()
        fields = {
            "first_name": first_name.strip(),
            "last_name": last_name.strip(),
            "email": address,
            "company": company.strip(),
            "title": title.strip() if title else None,
            "source": source.strip() or "orchestrator",
        }
        for key in ("first_name", "last_name", "company"):
            if not fields[key]:
                raise ToolError(f"{key} must not be empty")
        if not _EMAIL.match(address):
            raise ToolError(f"email {email!r} is not a valid email address")
        meta = ctx.request_context.meta or {}
        idempotency_key = meta.get(IDEMPOTENCY_META_KEY)
        return database.create_lead(fields, idempotency_key=str(idempotency_key) if idempotency_key else None)

    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = demo_server_parser(
        "python -m agents.demo.crm_server", __doc__.splitlines()[0], default_port=8766
    )
    parser.add_argument("--db", default=None, help=f"SQLite file (default $CRM_DB_PATH or {DEFAULT_DB_PATH})")
    args = parse_demo_args(parser, argv)
    run_demo_server(args, lambda: create_server(args.db, log_level=args.log_level))


if __name__ == "__main__":
    main()
