"""The project's error tree.

Every error a user can see carries a stable ``code`` and an HTTP ``status`` so the REST dialects render
one envelope: ``{"error": {"code", "message", "details"}}``.

    OrchestratorError
    ├── RequestError                 developer mistakes: the request is wrong, retrying will not help
    │   ├── InvalidRequest           INVALID_REQUEST (400)
    │   ├── InvalidWorkflow          INVALID_WORKFLOW (400), details: [{field, message}]
    │   ├── MissingUserContext       MISSING_USER_CONTEXT (400)
    │   ├── Unauthenticated          UNAUTHENTICATED (401): no key, or an unknown or revoked one
    │   ├── Forbidden                FORBIDDEN (403): the key may not do this (another tenant, an admin task)
    │   ├── NotFound                 EXECUTION_NOT_FOUND, AGENT_NOT_FOUND, WORKFLOW_NOT_FOUND, ... (404)
    │   └── Conflict                 EXECUTION_ALREADY_FINISHED, VERSION_EXISTS, IDEMPOTENCY_KEY_REUSED, ... (409)
    ├── ExecutionTimeout             EXECUTION_TIMEOUT (504)
    ├── PlanningFailed               PLANNING_FAILED (500)
    ├── StepError                    runtime failure of one step; ``retryable`` says whether to try again
    │   └── AgentUnavailable         AGENT_UNAVAILABLE
    ├── StoreError
    │   └── ConcurrencyConflict      two writers for one (execution_id, seq)
    │       └── Fenced               LEASE_LOST: the append's partition lease moved to another host
    └── NotOwner                     NOT_OWNER (503): this host does not own the execution's partition
"""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: list[Any] | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details if details is not None else []

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross Ray process boundaries; keep code/status/details on the way.
        return (_rebuild, (type(self), self.message, self.code, self.status, self.details))


def _rebuild(cls: type[OrchestratorError], message: str, code: str, status: int, details: Any) -> Any:
    err = cls.__new__(cls)
    OrchestratorError.__init__(err, message, code=code, status=status, details=details)
    return err


class RequestError(OrchestratorError):
    code = "INVALID_REQUEST"
    status = 400


class InvalidRequest(RequestError):
    code = "INVALID_REQUEST"


class InvalidWorkflow(RequestError):
    code = "INVALID_WORKFLOW"


class MissingUserContext(RequestError):
    code = "MISSING_USER_CONTEXT"


class Unauthenticated(RequestError):
    """The request carries no API key, or one that is unknown or revoked."""

    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(RequestError):
    """The key is valid but may not do this: act for another tenant, or change what all tenants share."""

    code = "FORBIDDEN"
    status = 403


class NotFound(RequestError):
    code = "NOT_FOUND"
    status = 404


class Conflict(RequestError):
    code = "CONFLICT"
    status = 409


class ExecutionTimeout(OrchestratorError):
    code = "EXECUTION_TIMEOUT"
    status = 504


class PlanningFailed(OrchestratorError):
    code = "PLANNING_FAILED"
    status = 500


class StepError(OrchestratorError):
    """A step's work failed. Connectors raise this (or a subclass) ``from`` the driver's exception."""

    code = "STEP_FAILED"
    status = 500

    def __init__(self, message: str, *, retryable: bool = True, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_step, (type(self), self.message, self.code, self.retryable))


def _rebuild_step(cls: type[StepError], message: str, code: str, retryable: bool) -> StepError:
    err = cls.__new__(cls)
    StepError.__init__(err, message, retryable=retryable, code=code)
    return err


class AgentUnavailable(StepError):
    code = "AGENT_UNAVAILABLE"


class StoreError(OrchestratorError):
    code = "STORE_ERROR"


class ConcurrencyConflict(StoreError):
    code = "CONCURRENCY_CONFLICT"
    status = 409


class Fenced(ConcurrencyConflict):
    """The append carried a partition lease epoch that is no longer current: another host took the
    partition over, so this writer must drop the execution without recording anything."""

    code = "LEASE_LOST"


class NotOwner(OrchestratorError):
    """Asked a host about an execution whose partition it does not own (any more): the caller
    refreshes its view of the leases and asks the owner."""

    code = "NOT_OWNER"
    status = 503
