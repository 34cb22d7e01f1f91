"""Human output of the client's commands (``--json`` prints the server's JSON instead).

Tables are for people: ids are never cut (they are what one copies into the next command), long
free text is.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.client.live import STATUS_STYLES, waiting_hint
from orchestrator.client.model import ExecutionModel, StepRow, format_seconds, parse_time


def print_json(value: Any) -> None:
    """Plain ``print``: scripts read it, so no colours, wrapping or markup."""
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def print_json_line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, separators=(",", ":")), flush=True)


def _status(status: Any) -> Text:
    text = str(status or "")
    return Text(text, style=STATUS_STYLES.get(text, ("", "cyan"))[1])


def _ms(value: Any) -> str:
    return format_seconds(value / 1000) if isinstance(value, int | float) else ""


def _when(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S") if parsed else ""


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        wide = column in ("ERROR", "DESCRIPTION", "CAPABILITIES", "OUTPUT")
        table.add_column(column, no_wrap=not wide, overflow="fold" if wide else "ellipsis")
    return table


def print_output(console: Console, output: Any) -> None:
    """An execution's output: text as text, anything else as JSON; ``{"final_result": text}`` as text."""
    if output is None:
        return
    if isinstance(output, dict) and list(output) == ["final_result"]:
        output = output["final_result"]
    console.print("[bold]output[/]")
    if isinstance(output, str):
        console.print(Text(output))
    else:
        console.print(Text(json.dumps(output, indent=2, ensure_ascii=False)))


def final_line(model: ExecutionModel) -> Text:
    """The last line of a run or a follow: what happened, to whom, how long it took."""
    took = ""
    if model.started_at and model.completed_at:
        took = format_seconds((model.completed_at - model.started_at).total_seconds())
    status = model.status
    line = Text.assemble(
        ("execution ", ""), (model.execution_id, "bold"), (f" ({model.workflow_name}) ", ""), _status(status)
    )
    if took:
        line.append(f" in {took}" if status == "completed" else f" after {took}")
    if status != "completed" and model.error:
        line.append(f": {model.error}")
    return line


def print_execution(console: Console, view: dict[str, Any]) -> None:
    model = ExecutionModel(str(view.get("id", "")))
    model.reconcile(view)
    console.print(
        Text.assemble(("execution ", ""), (model.execution_id, "bold"), "  ", _status(model.status))
    )
    fields = [
        ("workflow", view.get("workflow_name")),
        ("version", view.get("workflow_version")),
        ("tenant", view.get("tenant_id")),
        ("started", _when(view.get("started_at"))),
        ("completed", _when(view.get("completed_at"))),
        ("duration", _ms(view.get("duration_ms"))),
        ("error", view.get("error")),
    ]
    for label, value in fields:
        if value:
            console.print(Text.assemble((f"  {label:<10}", "dim"), str(value)))
    waiting = view.get("waiting_for")
    for wait in waiting if isinstance(waiting, list) else []:
        if isinstance(wait, dict):
            row = StepRow(str(wait.get("step", "")), type=str(wait.get("kind", "")))
            row.signal = wait.get("signal") if isinstance(wait.get("signal"), str) else None
            prompt = f"{wait['prompt']}  " if wait.get("prompt") else ""
            console.print(
                Text.assemble(
                    ("  waiting   ", "dim"),
                    f"{row.name}: {prompt}",
                    (waiting_hint(model.execution_id, row), "yellow"),
                )
            )
    table = _table("STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "ERROR")
    for row in model.steps.values():
        table.add_row(
            "  " * model.depth(row) + row.name,
            row.type,
            _status(row.status),
            str(row.attempts) if row.attempts else "",
            format_seconds(row.seconds()),
            row.error or "",
        )
    if model.steps:
        console.print(table)
    print_output(console, view.get("output"))


def print_execution_list(console: Console, executions: list[dict[str, Any]], *, total: Any = None) -> None:
    table = _table("ID", "WORKFLOW", "STATUS", "TENANT", "STARTED", "DURATION", "ERROR")
    for item in executions:
        table.add_row(
            str(item.get("id", "")),
            str(item.get("workflow_name", "")),
            _status(item.get("status")),
            str(item.get("tenant_id", "")),
            _when(item.get("started_at")),
            _ms(item.get("duration_ms")),
            str(item.get("error") or ""),
        )
    console.print(table)
    shown = f"{len(executions)} of {total}" if isinstance(total, int) else str(len(executions))
    console.print(f"[dim]{shown} executions[/]")


def event_line(event: dict[str, Any]) -> str:
    """One durable event as one line: time, seq, type, step, what it says."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    at = parse_time(event.get("timestamp"))
    when = at.astimezone().strftime("%H:%M:%S.%f")[:-3] if at else ""
    parts = [when, f"#{event.get('seq', '')}".rjust(4), str(event.get("type", "")).ljust(26)]
    if event.get("step"):
        parts.append(str(event["step"]))
    if isinstance(data.get("attempt"), int) and event.get("type") != "step.completed":
        parts.append(f"attempt {data['attempt']}")
    for key in ("name", "approved", "comment", "error", "reason", "kind"):
        if data.get(key) not in (None, ""):
            parts.append(f"{key}={data[key]}")
    return "  ".join(parts).rstrip()


def print_events(console: Console, events: list[dict[str, Any]]) -> None:
    for event in events:
        console.print(Text(event_line(event)))


def print_agents(console: Console, agents: list[dict[str, Any]]) -> None:
    table = _table("ID", "NAME", "DOMAIN", "ENABLED", "HEALTH", "CAPABILITIES")
    for agent in agents:
        health = str(agent.get("health_status") or (agent.get("health") or {}).get("status") or "")
        table.add_row(
            str(agent.get("id", "")),
            str(agent.get("name", "")),
            str(agent.get("domain", "")),
            "yes" if agent.get("enabled") else "no",
            _health(health),
            ", ".join(str(c) for c in agent.get("capabilities") or []),
        )
    console.print(table)


def _health(status: str) -> Text:
    style = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}.get(status, "dim")
    return Text(status or "unknown", style=style)


def print_agent(console: Console, agent: dict[str, Any]) -> None:
    health = agent.get("health") if isinstance(agent.get("health"), dict) else {}
    assert isinstance(health, dict)
    console.print(
        Text.assemble(
            ("agent ", ""), (str(agent.get("id", "")), "bold"), "  ", _health(str(health.get("status") or ""))
        )
    )
    for label in ("name", "description", "domain", "connector_type"):
        if agent.get(label):
            console.print(Text.assemble((f"  {label.replace('_', ' '):<15}", "dim"), str(agent[label])))
    console.print(Text.assemble((f"  {'enabled':<15}", "dim"), "yes" if agent.get("enabled") else "no"))
    for key, value in health.items():
        if key != "status" and value not in (None, ""):
            console.print(Text.assemble((f"  {key.replace('_', ' '):<15}", "dim"), str(value)))
    capabilities = agent.get("capabilities") or []
    if capabilities:
        table = _table("CAPABILITY", "PARAMETERS", "DESCRIPTION")
        for capability in capabilities:
            if isinstance(capability, dict):
                parameters = capability.get("parameters") or {}
                table.add_row(
                    str(capability.get("name", "")),
                    ", ".join(_parameter(name, spec) for name, spec in parameters.items())
                    if isinstance(parameters, dict)
                    else "",
                    str(capability.get("description") or ""),
                )
            else:
                table.add_row(str(capability), "", "")
        console.print(table)
    replicas = agent.get("replicas") or []
    if replicas:
        console.print(f"[dim]  replicas[/]       {len(replicas)}")


def _parameter(name: str, spec: Any) -> str:
    required = isinstance(spec, dict) and spec.get("required")
    return name if required else f"{name}?"


def print_plan(console: Console, body: dict[str, Any]) -> None:
    console.print(
        Text.assemble(
            ("plan ", ""), (str(body.get("plan_id", "")), "bold"), "  ", _status(body.get("status"))
        )
    )
    if body.get("workflow_execution_id"):
        console.print(Text.assemble(("  execution  ", "dim"), str(body["workflow_execution_id"])))
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    tasks = {t.get("name"): t for t in metadata.get("tasks") or [] if isinstance(t, dict)}
    table = _table("STEP", "TYPE", "AGENT", "CAPABILITY", "DEPENDS ON", "STATUS", "DURATION", "DESCRIPTION")
    for step in body.get("steps") or []:
        if not isinstance(step, dict):
            continue
        task = tasks.get(step.get("name")) or {}
        table.add_row(
            str(step.get("name", "")),
            str(step.get("type", "")),
            str(step.get("agent") or ""),
            str(step.get("capability") or ""),
            ", ".join(str(d) for d in step.get("depends_on") or []),
            _status(task.get("status")) if task else Text(""),
            _ms(task.get("time_ms")),
            str(step.get("description") or ""),
        )
    console.print(table)
    for warning in metadata.get("warnings") or []:
        console.print(Text(f"warning: {warning}", style="yellow"))
    if body.get("error"):
        console.print(Text(f"error: {body['error']}", style="red"))
    result = body.get("result")
    if result is not None:
        console.print("[bold]result[/]")
        console.print(Text(result if isinstance(result, str) else json.dumps(result, indent=2)))


def print_workflows(console: Console, workflows: list[dict[str, Any]]) -> None:
    table = _table("ID", "VERSION", "NAME", "STEPS", "DESCRIPTION")
    for workflow in workflows:
        table.add_row(
            str(workflow.get("id", "")),
            str(workflow.get("version", "")),
            str(workflow.get("name", "")),
            str(len(workflow.get("steps") or [])),
            str(workflow.get("description") or ""),
        )
    console.print(table)


def print_workflow(console: Console, workflow: dict[str, Any]) -> None:
    console.print(
        Text.assemble(
            ("workflow ", ""),
            (str(workflow.get("id", "")), "bold"),
            f"  version {workflow.get('version', '')}",
        )
    )
    for label, key in (("name", "name"), ("description", "description"), ("registered", "registeredAt")):
        value = _when(workflow.get(key)) if key == "registeredAt" else workflow.get(key)
        if value:
            console.print(Text.assemble((f"  {label:<12}", "dim"), str(value)))
    schema = workflow.get("inputSchema")
    if isinstance(schema, dict):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = set(schema.get("required") or [])
        assert isinstance(properties, dict)
        names = [name if name in required else f"{name}?" for name in properties]
        console.print(Text.assemble((f"  {'input':<12}", "dim"), ", ".join(names)))
    table = _table("STEP", "NAME", "TYPE", "DEPENDS ON")
    for step in workflow.get("steps") or []:
        if isinstance(step, dict):
            table.add_row(
                str(step.get("id", "")),
                str(step.get("name", "")),
                str(step.get("type", "")),
                ", ".join(str(d) for d in step.get("dependsOn") or []),
            )
    console.print(table)


__all__ = [
    "event_line",
    "final_line",
    "print_agent",
    "print_agents",
    "print_events",
    "print_execution",
    "print_execution_list",
    "print_json",
    "print_json_line",
    "print_output",
    "print_plan",
    "print_workflow",
    "print_workflows",
]
