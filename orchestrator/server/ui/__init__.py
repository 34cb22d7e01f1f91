"""The web UI at ``/ui``: a single-page app of static files (plain ES modules, a vendored graph layout
library) served by the ingress itself, so it shares the API's origin and needs no CORS, no CDN and no
build step. It talks only to the public REST API and its live streams, which makes it one more client
of them rather than a second way in.

``GET /ui`` (and ``/ui/``) answer ``index.html``; every other file under ``static/`` is served at
``/ui/<path>``. The pages are routed in the browser by the URL's fragment (``#/executions/<id>``), so
the server never sees which page is open. The files are package data: ``pip install`` ships them.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
# Revalidate every time: the files change with the package, and a stale app.js against a newer API
# is a worse failure than a conditional request (StaticFiles answers 304 from the ETag).
_HEADERS = {"Cache-Control": "no-cache"}


def mount_ui(app: FastAPI) -> None:
    """Serve the UI on ``app``: the index on ``/ui`` and ``/ui/``, the assets under ``/ui/``. Kept out of
    the OpenAPI document: these are pages, not API."""

    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_HEADERS)

    app.add_api_route("/ui", index, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", index, methods=["GET"], include_in_schema=False)
    app.mount("/ui", _NoCacheStaticFiles(directory=STATIC_DIR), name="ui")


class _NoCacheStaticFiles(StaticFiles):
    """StaticFiles whose answers say ``no-cache`` (see ``_HEADERS``)."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_HEADERS)
        return response


__all__ = ["STATIC_DIR", "mount_ui"]
