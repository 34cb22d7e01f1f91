"""The EAI Orchestrate dialect (``/api/eai/v3/orchestrate``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/eai/v3/orchestrate", tags=["orchestrate"])
