"""Validated workflow definitions: the engine's one internal shape for both REST dialects.

Nested steps (of ``condition`` and ``parallel``) are flattened into one list in definition order; each
knows its ``parent`` and, under a condition, its ``branch``. Every step name is unique in the workflow.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The step types users write, and the kind of work each one is for the runtime.
STEP_KINDS: dict[str, str] = {
    "mcp_query": "connector",
    "mcp_execute": "connector",
    "resource_query": "connector",  # EAI dialect
    "llm": "llm",
    "ai_chat": "llm",  # EAI dialect
    "condition": "condition",
    "parallel": "parallel",
    "transform": "transform",
    "wait": "wait",
    "approval": "approval",  # waits for a person's decision (orchestrator.core.signals)
    "signal": "signal",  # waits for a named signal from outside
}
CONTAINER_KINDS = frozenset({"condition", "parallel"})
# Steps that wait for the outside world: no work runs while they wait, only (maybe) a timeout timer.
WAITING_KINDS = frozenset({"approval", "signal"})
# Steps decided entirely by the core, with no work outside it: a workflow of only these can finish in
# the decision that starts it.
INLINE_KINDS = frozenset({"transform", "condition", "parallel"})


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval: float = Field(default=1.0, ge=0, le=86400)
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=100)
    max_interval: float = Field(default=60.0, ge=0, le=86400)
    non_retryable: list[str] = Field(default_factory=list)  # error codes that never retry

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        try:
            return min(self.initial_interval * self.backoff_coefficient ** (attempt - 1), self.max_interval)
        except OverflowError:
            return self.max_interval


class StepDef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str
    title: str | None = None  # display name (EAI ``name``; the EAI ``id`` is our ``name``)
    description: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    timeout: float | None = None
    retry: RetryPolicy | None = None
    parent: str | None = None
    branch: Literal["if_true", "if_false"] | None = None
    # connector steps
    connector: str | None = None
    statement: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    # llm steps
    agent: str | None = None  # an agent with an llm connector; default: the first one configured
    prompt: str | None = None
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output_schema: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    # condition
    condition: str | None = None
    if_true: list[str] = Field(default_factory=list)
    if_false: list[str] = Field(default_factory=list)
    # parallel
    steps: list[str] = Field(default_factory=list)
    # transform
    value: Any = None
    # wait
    duration: float | None = None
    # approval (``prompt`` is its question, a template)
    approvers: list[str] = Field(default_factory=list)  # user ids or roles; empty: anyone who may see it
    on_reject: Literal["fail", "continue"] = "fail"
    # signal (``schema`` in the documents; a field named ``schema`` would shadow pydantic's method)
    signal: str | None = None
    signal_schema: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return STEP_KINDS[self.type]

    @property
    def children(self) -> list[str]:
        return [*self.steps, *self.if_true, *self.if_false]

    @property
    def mode(self) -> Literal["query", "execute"]:
        return "execute" if self.type == "mcp_execute" else "query"


class WorkflowDef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    id: str | None = None  # registered workflows (EAI)
    version: str | None = None
    description: str | None = None
    steps: list[StepDef]
    timeout: float | None = None
    retry: RetryPolicy | None = None
    output: dict[str, Any] | None = None
    input_schema: dict[str, Any] | None = None

    @cached_property
    def by_name(self) -> dict[str, StepDef]:
        return {step.name: step for step in self.steps}

    @cached_property
    def document(self) -> dict[str, Any]:
        """The definition as ``execution.started`` records it (JSON, defaults left out), dumped once.

        Executions of one shared definition (the host and the ingress intern them) then record, and keep
        in their records while those are live, the same document rather than a copy each. Never mutated.
        """
        return self.model_dump(mode="json", exclude_defaults=True)

    @cached_property
    def top_level(self) -> list[StepDef]:
        return [step for step in self.steps if step.parent is None]

    @cached_property
    def sinks(self) -> list[str]:
        """Top-level steps nothing else at the top level depends on: the default output."""
        needed = {dep for step in self.top_level for dep in step.depends_on}
        return [step.name for step in self.top_level if step.name not in needed]

    @cached_property
    def waiting(self) -> frozenset[str]:
        """Names of the steps that wait for the outside world (``approval``, ``signal``)."""
        return frozenset(step.name for step in self.steps if step.kind in WAITING_KINDS)

    @cached_property
    def inline(self) -> bool:
        """Every step is decided by the core alone (transforms and their containers): the execution
        can finish in the decision that starts it, with no step work, timer or person to wait for."""
        return all(step.kind in INLINE_KINDS for step in self.steps)

    @cached_property
    def index(self) -> dict[str, int]:
        """Definition order: the order in which decide checks steps."""
        return {step.name: position for position, step in enumerate(self.steps)}

    @cached_property
    def affected(self) -> dict[str, list[str]]:
        """Steps whose readiness may change when a step's status does: its effective dependents, its
        container and its children (and itself: a container started may complete next)."""
        result: dict[str, list[str]] = {step.name: [step.name, *step.children] for step in self.steps}
        for step in self.steps:
            if step.parent is not None:
                result[step.name].append(step.parent)
            for dep in self.dependencies[step.name]:
                result[dep].append(step.name)
        return result

    @cached_property
    def dependencies(self) -> dict[str, list[str]]:
        """Effective dependencies: a nested step also waits for what its containers wait for."""
        result: dict[str, list[str]] = {}
        for step in self.steps:  # parents precede children in definition order
            inherited = result.get(step.parent, []) if step.parent else []
            result[step.name] = list(dict.fromkeys([*inherited, *step.depends_on]))
        return result

    def descendants(self, name: str) -> list[str]:
        out: list[str] = []
        for child in self.by_name[name].children:
            out.append(child)
            out.extend(self.descendants(child))
        return out

    def retry_for(self, step: StepDef) -> RetryPolicy:
        return step.retry or self.retry or RetryPolicy()
