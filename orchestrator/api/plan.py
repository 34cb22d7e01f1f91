"""Multi-agent planning (``/api/v1/plan``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["planning"])
