"""The demo projects database behind the ``projects-db`` agent and the ``analyze_project`` workflow.

Six synthetic projects in deliberately different health, so an analysis has something to tell apart:

    proj_123  Apollo Platform Migration   over budget for its progress and a milestone overdue
    proj_124  Customer Portal Redesign    healthy: spend tracks progress, milestones on time
    proj_125  Warehouse Automation Pilot  behind schedule (two overdue milestones), budget fine
    proj_126  Data Lake Consolidation     over budget, schedule fine
    proj_127  Mobile App v3               on hold
    proj_128  Security Compliance Audit   completed

Dates are written relative to the day of seeding and the demo rows are refreshed at every connect: "late"
only means something against today, and a demo that drifts into "everything is overdue" after a month would
make every analysis say the same thing. Rows with other ids are never touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["PROJECTS", "SCHEMA", "ensure_projects_db", "seed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('planned', 'active', 'on_hold', 'completed', 'cancelled')),
    budget       INTEGER NOT NULL,
    spent        INTEGER NOT NULL DEFAULT 0,
    start_date   TEXT NOT NULL,
    end_date     TEXT NOT NULL,
    progress_pct INTEGER NOT NULL DEFAULT 0 CHECK (progress_pct BETWEEN 0 AND 100)
);
CREATE TABLE IF NOT EXISTS milestones (
    project_id   TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    due_date     TEXT NOT NULL,
    completed_at TEXT,
    status       TEXT NOT NULL CHECK (status IN ('planned', 'in_progress', 'completed')),
    PRIMARY KEY (project_id, name)
);
"""

# (id, name, owner, status, budget, spent, start offset days, end offset days, progress %)
PROJECTS: list[tuple[str, str, str, str, int, int, int, int, int]] = [
    ("proj_123", "Apollo Platform Migration", "Dana Whitfield", "active", 500_000, 410_000, -180, 60, 55),
    ("proj_124", "Customer Portal Redesign", "Ravi Menon", "active", 200_000, 88_000, -90, 90, 50),
    ("proj_125", "Warehouse Automation Pilot", "Grace Okafor", "active", 350_000, 119_000, -120, 45, 30),
    ("proj_126", "Data Lake Consolidation", "Tomas Lindqvist", "active", 150_000, 168_000, -200, 20, 90),
    ("proj_127", "Mobile App v3", "Mei Chen", "on_hold", 80_000, 21_000, -100, 120, 15),
    ("proj_128", "Security Compliance Audit", "Samuel Adeyemi", "completed", 60_000, 57_500, -150, -10, 100),
]

# (project id, milestone, due offset days, completed offset days or None, status)
MILESTONES: list[tuple[str, str, int, int | None, str]] = [
    ("proj_123", "Requirements sign-off", -150, -152, "completed"),
    ("proj_123", "Data migration dry run", -21, None, "in_progress"),
    ("proj_123", "Cutover rehearsal", 25, None, "planned"),
    ("proj_123", "Production cutover", 55, None, "planned"),
    ("proj_124", "Discovery and wireframes", -60, -62, "completed"),
    ("proj_124", "Design system", -20, -21, "completed"),
    ("proj_124", "Beta launch", 30, None, "in_progress"),
    ("proj_124", "General availability", 85, None, "planned"),
    ("proj_125", "Vendor selection", -90, -88, "completed"),
    ("proj_125", "Pilot cell installed", -30, None, "in_progress"),
    ("proj_125", "Operator training", -7, None, "planned"),
    ("proj_125", "Pilot review", 40, None, "planned"),
    ("proj_126", "Source inventory", -170, -171, "completed"),
    ("proj_126", "Ingestion pipelines", -40, -42, "completed"),
    ("proj_126", "Legacy warehouse decommission", 15, None, "in_progress"),
    ("proj_127", "App architecture", -70, -68, "completed"),
    ("proj_127", "Feature freeze", 60, None, "planned"),
    ("proj_128", "Control mapping", -120, -121, "completed"),
    ("proj_128", "Evidence collection", -60, -63, "completed"),
    ("proj_128", "Auditor report", -12, -10, "completed"),
]


def _day(today: dt.date, offset: int) -> str:
    return (today + dt.timedelta(days=offset)).isoformat()


def seed(conn: Any, *, today: dt.date | None = None) -> None:
    """Create the tables and (re)write the demo rows. Takes the connection the ``sql`` connector opened, so
    the database the agent serves is the one it prepared."""
    # SQLite's date('now') is UTC; seed against the same calendar so "late" agrees with the queries.
    today = today or dt.datetime.now(dt.UTC).date()
    conn.executescript(SCHEMA)
    conn.executemany(
        """
        INSERT INTO projects (id, name, owner, status, budget, spent, start_date, end_date, progress_pct)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, owner = excluded.owner, status = excluded.status, budget = excluded.budget,
            spent = excluded.spent, start_date = excluded.start_date, end_date = excluded.end_date,
            progress_pct = excluded.progress_pct
        """,
        [
            (p, n, o, s, b, sp, _day(today, st), _day(today, en), pr)
            for p, n, o, s, b, sp, st, en, pr in PROJECTS
        ],
    )
    demo_ids = [p[0] for p in PROJECTS]
    conn.execute(f"DELETE FROM milestones WHERE project_id IN ({', '.join('?' * len(demo_ids))})", demo_ids)
    conn.executemany(
        "INSERT INTO milestones (project_id, name, due_date, completed_at, status) VALUES (?, ?, ?, ?, ?)",
        [
            (p, name, _day(today, due), None if done is None else _day(today, done), status)
            for p, name, due, done, status in MILESTONES
        ],
    )
    conn.commit()


def ensure_projects_db(path: Path | str) -> Path:
    """Create or refresh the demo database at ``path`` outside the connector (CLI, tests)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(target)
    try:
        seed(conn)
    finally:
        conn.close()
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create or refresh the demo projects SQLite database.")
    parser.add_argument("path", type=Path, nargs="?", default=Path("data/projects.db"))
    args = parser.parse_args(argv)
    print(ensure_projects_db(args.path))


if __name__ == "__main__":
    main()
