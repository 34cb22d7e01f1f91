"""Finished executions' GET answers, rendered once and served as bytes after."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.encoders import jsonable_encoder

from orchestrator.core.decide import Start, decide
from orchestrator.core.state import ExecutionState
from orchestrator.core.validation import parse_workflow
from orchestrator.server.api.eai import WorkflowExecution
from orchestrator.server.api.render import v1_execution
from orchestrator.server.api.render_eai import eai_execution
from orchestrator.server.api.rendered import RenderedViews
from orchestrator.server.api.v1 import ExecutionView


def finished(steps: int = 3) -> ExecutionState:
    chain = [{"name": "s1", "type": "transform", "value": "{{ input.x + 1 }}"}]
    chain += [
        {
            "name": f"s{i}",
            "type": "transform",
            "value": f"{{{{ steps.s{i - 1}.output + 1 }}}}",
            "depends_on": [f"s{i - 1}"],
        }
        for i in range(2, steps + 1)
    ]
    workflow = parse_workflow({"metadata": {"name": "rendered"}, "spec": {"steps": chain}})
    start = Start(now=datetime.now(UTC), workflow=workflow, input={"x": 1}, user={"id": 1})
    return decide(ExecutionState("wf_exec_rendered"), start).state


async def test_a_finished_view_is_what_the_route_model_renders_and_is_kept() -> None:
    views = RenderedViews()
    state = finished()
    assert state.terminal
    for dialect, render, model in (
        ("v1", v1_execution, ExecutionView),
        ("eai", eai_execution, WorkflowExecution),
    ):
        first = await views.response(state, dialect, render, model)
        expected = jsonable_encoder(model.model_validate(render(state)), by_alias=True)
        assert json.loads(first.body) == expected
        again = await views.response(state, dialect, render, model)
        assert again.body == first.body
    assert len(views) == 2  # one per dialect


async def test_a_running_view_is_rendered_every_time_and_the_cache_is_bounded() -> None:
    views = RenderedViews(max_bytes=4096)
    running = ExecutionState("wf_exec_running", status="running")
    assert await views.response(running, "v1", lambda s: {"id": s.execution_id}, ExecutionView) == {
        "id": "wf_exec_running"
    }
    assert len(views) == 0
    for n in range(20):  # each view is a few hundred bytes: the oldest go
        state = finished(2)
        state.execution_id = f"wf_exec_{n}"
        await views.response(state, "v1", v1_execution, ExecutionView)
    assert 0 < len(views) < 20
