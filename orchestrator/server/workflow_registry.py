"""The workflow registry of the EAI dialect: registering validated :class:`WorkflowDocument` versions in
the event store, and the definition files (shipped, then ``ORCH_WORKFLOWS_DIR``) registered at start."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config import Settings
from orchestrator.core.errors import Conflict, InvalidWorkflow
from orchestrator.core.workflow_documents import WorkflowDocument, parse_definition
from orchestrator.store.base import EventStore, WorkflowRecord

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).with_name("workflows_shipped")
FILE_SUFFIXES = (".yaml", ".yml", ".json")

__all__ = ["SHIPPED_DIR", "definition_files", "load_workflow_files", "read_documents", "register"]


def register(
    store: EventStore,
    definition: WorkflowDocument,
    *,
    tenant_id: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Register a version in ``tenant_id``'s namespace (None: shared, for every tenant); True when it
    is new, False when the identical document was there already.

    Raises Conflict (``VERSION_EXISTS``) when that version exists in that namespace with a different
    document. A tenant may register an id and version that is shared: its own shadows the shared one
    for that tenant alone. Who may register where is the caller's business (the routes').
    """
    existing = store.get_workflow(definition.id, definition.version, tenant_id=tenant_id)
    # With a tenant, get_workflow falls back to the shared namespace; only the tenant's own counts here.
    if existing is not None and existing.tenant_id == tenant_id:
        if existing.definition == definition.document:
            return False
        owner = f" of tenant {tenant_id!r}" if tenant_id is not None else ""
        raise Conflict(
            f"workflow {definition.id!r}{owner} version {definition.version!r} is already registered with "
            "a different definition; versions are immutable, register it under a new version",
            code="VERSION_EXISTS",
            details=[{"field": "version", "message": "already registered with a different definition"}],
        )
    store.put_workflow(
        WorkflowRecord(
            workflow_id=definition.id,
            version=definition.version,
            definition=definition.document,
            registered_at=now or dt.datetime.now(dt.UTC),
            tenant_id=tenant_id,
        )
    )
    return True


def load_workflow_files(settings: Settings, store: EventStore) -> list[str]:
    """Register the shipped definitions, then those in ``settings.workflows_dir``; return warnings.

    A user's file that cannot be read or validated, or that conflicts with a registered version, is a
    warning: one bad file must not keep the server from starting. A shipped file that does not validate
    is a bug in this package and raises. A shipped file that conflicts with a version already in the
    store (changed without a version bump, against a persistent data directory) is a warning too: the
    version registered first stays the one that runs.
    """
    warnings: list[str] = []
    for path in definition_files(SHIPPED_DIR):
        for where, raw in read_documents(path):
            try:
                definition = parse_definition(raw, limits=settings.limits)
            except InvalidWorkflow as exc:
                raise InvalidWorkflow(
                    f"shipped workflow {where} is invalid: {describe(exc)}", details=exc.details
                ) from None
            _register_file(store, definition, where, warnings)
    if settings.workflows_dir is not None:
        directory = Path(settings.workflows_dir)
        if not directory.is_dir():
            warnings.append(
                f"workflows directory {str(directory)!r} does not exist; no user workflows loaded"
            )
        else:
            for path in definition_files(directory):
                try:
                    documents = read_documents(path)
                except (OSError, InvalidWorkflow) as exc:
                    warnings.append(f"{path}: {describe(exc)}")
                    continue
                for where, raw in documents:
                    try:
                        definition = parse_definition(raw, limits=settings.limits)
                    except InvalidWorkflow as exc:
                        warnings.append(f"{where}: {describe(exc)}")
                        continue
                    _register_file(store, definition, where, warnings)
    for warning in warnings:
        log.warning("workflow files: %s", warning)
    return warnings


def _register_file(store: EventStore, definition: WorkflowDocument, where: str, warnings: list[str]) -> None:
    try:
        register(store, definition)
    except Conflict as exc:
        warnings.append(f"{where}: {exc.message}")


def definition_files(directory: Path) -> list[Path]:
    """WorkflowDocument files of a directory (not recursive), sorted so registration order is reproducible."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)


def read_documents(path: Path) -> list[tuple[str, Any]]:
    """The definitions in a file, each with where it came from (for messages).

    A file holds one definition, a list of them, or (YAML) several ``---`` documents.
    """
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            documents = [json.loads(text)]
        else:
            documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidWorkflow(f"cannot parse {path.suffix.lstrip('.').upper()}: {exc}") from None
    found: list[Any] = []
    for document in documents:
        found.extend(document if isinstance(document, list) else [document])
    if len(found) == 1:
        return [(str(path), found[0])]
    return [(f"{path} (definition {index + 1})", raw) for index, raw in enumerate(found)]


def describe(exc: InvalidWorkflow | OSError) -> str:
    """One line for a warning or a log: the message and every detail."""
    if isinstance(exc, OSError):
        return f"cannot read the file: {exc.strerror or exc}"
    parts = [f"{d['field']}: {d['message']}" for d in exc.details if isinstance(d, dict)]
    return exc.message + (" (" + "; ".join(parts) + ")" if parts else "")
