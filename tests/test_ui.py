"""The web UI at /ui in a real browser: Debian's chromium, headless, driven by Playwright, against the
real server. The tests assert what a person sees (rows, node labels, status text, buttons) and fail on
any console error or uncaught exception of the page. Each page's screenshot is saved under
docs/screenshots/ for the README."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.fixtures_server import ServerInfo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium; .ci/run does)"
    ),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
USER = {"id": "ui-test"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, server: ServerInfo) -> Iterator[Any]:
    """A fresh page; at the end, no console error and no uncaught exception may have happened on it."""
    context = browser.new_context(viewport={"width": 1400, "height": 950}, base_url=server.base_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    try:
        yield page
        page.wait_for_timeout(200)  # let late errors (a stream, a re-read) surface
        assert problems == [], problems
    finally:
        context.close()


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def start(api: httpx.Client, name: str, *steps: dict[str, Any], wait: bool = False) -> dict[str, Any]:
    body = {
        "workflow": {"metadata": {"name": name}, "spec": {"steps": list(steps)}},
        "user": USER,
        "async": not wait,
    }
    response = api.post("/api/v1/workflows/execute", json=body)
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def mark(page: Any) -> None:
    """A marker in the page's JavaScript state: still there later means the page was never reloaded."""
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_the_ui_is_served_from_the_package(api: httpx.Client) -> None:
    index = api.get("/ui")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert '<script type="module" src="/ui/app.js">' in index.text
    assert api.get("/ui/").text == index.text
    layout = api.get("/ui/vendor/dagre.esm.js")
    assert layout.status_code == 200 and "javascript" in layout.headers["content-type"]
    assert api.get("/ui/nothing-here.js").status_code == 404
    assert not any(path.startswith("/ui") for path in api.get("/openapi.json").json()["paths"])


def test_a_new_execution_appears_in_the_list_without_reload(page: Any, api: httpx.Client) -> None:
    page.goto("/ui#/executions")
    expect(page.get_by_text("Live: on")).to_be_visible()
    mark(page)
    name = f"ui-live-{uuid.uuid4().hex[:8]}"
    execution = start(api, name, {"name": "pause", "type": "wait", "duration": "1s"})
    row = page.locator(f'tr[data-id="{execution["id"]}"]')
    expect(row).to_be_visible(timeout=2000)
    expect(row).to_contain_text(name)
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("completed", timeout=30000)  # the status changes live too
    assert not_reloaded(page)
    shoot(page, "executions")


STRUCTURE = [
    {"name": "prepare", "type": "transform", "value": {"n": 3}},
    {
        "name": "fan_out",
        "type": "parallel",
        "depends_on": ["prepare"],
        "steps": [
            {"name": "left", "type": "transform", "value": "L"},
            {"name": "right", "type": "transform", "value": "R"},
        ],
    },
    {
        "name": "big_enough",
        "type": "condition",
        "depends_on": ["fan_out"],
        "condition": "steps.prepare.output.n > 2",
        "if_true": [{"name": "celebrate", "type": "transform", "value": "yes"}],
        "if_false": [{"name": "give_up", "type": "transform", "value": "no"}],
    },
    {"name": "finish", "type": "transform", "depends_on": ["big_enough"], "value": "done"},
]


def test_the_execution_page_shows_every_step_its_status_and_the_edges(page: Any, api: httpx.Client) -> None:
    execution = start(api, "ui-structure", *STRUCTURE, wait=True)
    assert execution["status"] == "completed", execution
    page.goto(f"/ui#/executions/{execution['id']}")
    graph = page.locator(".dag")
    for step in execution["steps"]:
        node = graph.locator(f'.node[data-step="{step["name"]}"]')
        expect(node).to_contain_text(step["name"])
        expect(node).to_contain_text(step["status"])
    statuses = {step["name"]: step["status"] for step in execution["steps"]}
    assert statuses["give_up"] == "skipped" and statuses["celebrate"] == "completed"
    for upstream, downstream in [("prepare", "fan_out"), ("fan_out", "big_enough"), ("big_enough", "finish")]:
        expect(graph.locator(f'path.edge[data-from="{upstream}"][data-to="{downstream}"]')).to_have_count(1)
        expect(page.locator("#edge-list")).to_contain_text(f"{upstream} → {downstream}")
    # nested containers are groups, and the branch not taken is marked as such in words
    expect(graph.locator('[data-group="fan_out"]')).to_have_count(1)
    not_taken = graph.locator('[data-branch="big_enough:if_false"]')
    expect(not_taken).to_have_class("group branch not-taken")
    expect(not_taken).to_contain_text("not taken")
    # a step's output, shown on selecting it with the keyboard
    graph.locator('.node[data-step="celebrate"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator(".step-details")).to_contain_text('"yes"')
    expect(page.locator(".events tbody tr")).to_have_count(
        len(api.get(f"/api/v1/workflows/executions/{execution['id']}/events").json()["events"])
    )
    shoot(page, "execution")


def test_a_running_wait_step_turns_completed_live(page: Any, api: httpx.Client) -> None:
    execution = start(
        api,
        "ui-wait",
        {"name": "pause", "type": "wait", "duration": "3s"},
        {"name": "after", "type": "transform", "depends_on": ["pause"], "value": "ok"},
    )
    page.goto(f"/ui#/executions/{execution['id']}")
    pause = page.locator('.dag .node[data-step="pause"]')
    expect(pause).to_contain_text("running")
    mark(page)
    expect(pause).to_contain_text("completed", timeout=30000)
    expect(page.locator('.dag .node[data-step="after"]')).to_contain_text("completed")
    expect(page.locator(".summary").first).to_contain_text("completed")
    expect(page.locator('.events tr[data-type="execution.completed"]')).to_have_count(1)
    assert not_reloaded(page)


def test_approving_from_the_page_resumes_the_execution(page: Any, api: httpx.Client) -> None:
    execution = start(
        api,
        "ui-approval",
        {"name": "ask", "type": "approval", "prompt": "Ship it?"},
        {"name": "ship", "type": "transform", "depends_on": ["ask"], "value": "by {{ steps.ask.output.by }}"},
    )
    page.goto(f"/ui#/executions/{execution['id']}")
    panel = page.locator('section.waiting[data-step="ask"]')
    expect(panel).to_contain_text("Ship it?")
    expect(page.locator('.dag .node[data-step="ask"]')).to_contain_text("waiting")
    shoot(page, "approval")
    panel.get_by_label("Your user id").fill("ann")
    panel.get_by_label("Comment").fill("looks good")
    panel.get_by_role("button", name="Approve ask").click()
    expect(page.locator('.dag .node[data-step="ship"]')).to_contain_text("completed", timeout=30000)
    expect(panel).to_have_count(0)
    view = api.get(f"/api/v1/workflows/executions/{execution['id']}").json()
    assert view["status"] == "completed"
    ask = next(step for step in view["steps"] if step["name"] == "ask")
    assert ask["output"]["approved"] is True and ask["output"]["comment"] == "looks good"
    assert ask["output"]["by"] == "ann"


def test_cancelling_from_the_page(page: Any, api: httpx.Client) -> None:
    execution = start(api, "ui-cancel", {"name": "long", "type": "wait", "duration": "1h"})
    page.goto(f"/ui#/executions/{execution['id']}")
    button = page.get_by_role("button", name="Cancel execution")
    button.click()
    page.get_by_role("button", name="Confirm: cancel it").click()
    expect(page.locator(".summary").first).to_contain_text("cancelled", timeout=30000)
    assert api.get(f"/api/v1/workflows/executions/{execution['id']}").json()["status"] == "cancelled"


def test_the_agents_page_shows_health_and_parameter_schemas(page: Any, api: httpx.Client) -> None:
    agents = api.get("/api/v1/agents").json()["agents"]
    page.goto("/ui#/agents")
    for agent in agents:
        card = page.locator(f'section.agent[data-agent="{agent["id"]}"]')
        expect(card).to_contain_text(agent["name"])
        expect(card).to_contain_text(agent["health_status"])
        for capability in agent["capabilities"]:
            expect(card).to_contain_text(capability)
    travel = page.locator('section.agent[data-agent="amadeus-travel"]')
    expect(travel).to_contain_text("Latency")
    travel.get_by_text("search_flights", exact=True).click()
    expect(travel.locator("table.params").first).to_contain_text("departure_date")
    shoot(page, "agents")


def test_a_pending_plan_is_shown_and_executed_from_its_page(page: Any, api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/plan",
        json={"query": "Find contacts at Acme Corp", "domain": "crm", "user": USER, "execute": False},
    )
    assert response.status_code == 200, response.text
    plan = response.json()
    page.goto(f"/ui#/plans/{plan['plan_id']}")
    expect(page.locator(".summary")).to_contain_text("pending")
    for step in plan["steps"]:
        expect(page.locator(f'tr[data-step="{step["id"]}"]')).to_contain_text(step["agent"])
        expect(page.locator(f'.dag .node[data-step="{step["id"]}"]')).to_have_count(1)
    shoot(page, "plan")
    page.get_by_role("button", name="Execute plan").click()
    link = page.locator(".summary a")
    expect(link).to_contain_text("wf_exec_")
    expect(page.get_by_role("button", name="Execute plan")).to_have_count(0)
    executed = api.get(f"/api/v1/plans/{plan['plan_id']}").json()
    assert executed["status"] != "pending" and executed["workflow_execution_id"]
    expect(link).to_have_text(executed["workflow_execution_id"])
    link.click()
    expect(page.locator(".summary").first).to_contain_text("completed", timeout=60000)


def test_cancelling_a_pending_plan_from_its_page(page: Any, api: httpx.Client) -> None:
    plan = api.post(
        "/api/v1/plan",
        json={"query": "Find contacts at Acme Corp", "domain": "crm", "user": USER, "execute": False},
    ).json()
    page.goto(f"/ui#/plans/{plan['plan_id']}")
    page.get_by_role("button", name="Cancel plan").click()
    expect(page.locator(".summary")).to_contain_text("cancelled")
    assert api.get(f"/api/v1/plans/{plan['plan_id']}").json()["status"] == "cancelled"


@pytest.mark.parametrize("choice", ["travel-booking.json", "Travel Booking (travel-booking 1.0.0)"])
def test_the_run_form_runs_the_travel_example_to_its_graph(page: Any, choice: str) -> None:
    page.goto("/ui#/run")
    page.get_by_label("Workflow", exact=True).select_option(label=choice)
    expect(page.get_by_label("Definition (JSON)")).to_have_value(re.compile("search_flights"))
    if choice.endswith(".json"):
        shoot(page, "run")
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"#/executions/wf_exec_"))
    expect(page.locator(".summary").first).to_contain_text("completed", timeout=60000)
    for step in ["search_flights", "search_hotels", "summarize"]:
        expect(page.locator(f'.dag .node[data-step="{step}"]')).to_contain_text("completed")
    expect(page.locator('path.edge[data-from="search_flights"][data-to="summarize"]')).to_have_count(1)
    if choice.endswith(".json"):
        page.locator('.dag .node[data-step="summarize"]').click()
        expect(page.locator(".step-details")).to_contain_text("summarize")
        shoot(page, "execution-travel")


def test_the_shipped_examples_are_the_repositorys() -> None:
    """The run form offers copies of examples/ (package data must live inside the package)."""
    repo = Path(__file__).resolve().parent.parent
    shipped = repo / "orchestrator" / "server" / "ui" / "static" / "examples"
    copies = sorted(path.name for path in shipped.glob("*.json"))
    assert copies == ["condition-and-retry.json", "travel-booking.json"]
    for name in copies:
        assert (shipped / name).read_bytes() == (repo / "examples" / name).read_bytes(), name


def test_the_list_filters_by_dialect_in_the_api_and_on_the_page(page: Any, api: httpx.Client) -> None:
    v1 = start(api, "ui-dialect", {"name": "noop", "type": "transform", "value": 1}, wait=True)
    response = api.post(
        "/api/eai/v3/orchestrate/workflows/travel-booking/execute", json={"input": {}, "async": False}
    )
    assert response.status_code == 200, response.text
    eai = response.json()
    listed = api.get("/api/v1/workflows/executions", params={"dialect": "eai", "limit": 1000}).json()
    ids = {row["id"] for row in listed["executions"]}
    assert eai["id"] in ids and v1["id"] not in ids
    assert {row["dialect"] for row in listed["executions"]} == {"eai"}
    assert api.get("/api/v1/workflows/executions", params={"dialect": "v2"}).status_code == 400
    page.goto("/ui#/executions")
    page.get_by_label("Dialect").select_option("eai")
    expect(page).to_have_url(re.compile(r"dialect=eai"))
    expect(page.locator(f'tr[data-id="{eai["id"]}"]')).to_contain_text("eai")
    expect(page.locator(f'tr[data-id="{v1["id"]}"]')).to_have_count(0)


def test_an_api_key_is_sent_as_a_header_and_never_in_a_url(page: Any, api: httpx.Client) -> None:
    """The server of the tests runs with auth off (it ignores keys), so this checks the UI's half: the
    key entered once is kept in the tab's session and every API call and stream carries it as a
    header, none in its URL."""
    key = f"orch_uitest_{uuid.uuid4().hex}"
    seen: list[tuple[str, str | None]] = []
    page.on("request", lambda request: seen.append((request.url, request.headers.get("authorization"))))
    page.goto("/ui#/executions")
    page.get_by_role("button", name="API key").click()
    page.get_by_role("textbox", name="Key").fill(key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-dialog")).not_to_be_visible()
    seen.clear()  # from here on, every call has the key
    execution = start(api, "ui-key", {"name": "pause", "type": "wait", "duration": "2s"})
    page.goto(f"/ui#/executions/{execution['id']}")
    expect(page.locator('.dag .node[data-step="pause"]')).to_contain_text("completed", timeout=30000)
    api_calls = [(url, header) for url, header in seen if "/api/" in url]
    assert any(url.endswith("/stream") for url, _ in api_calls), api_calls  # the stream too
    assert api_calls and all(header == f"Bearer {key}" for _, header in api_calls), api_calls
    assert not any(key in url for url, _ in seen)
    assert page.evaluate("sessionStorage.getItem('orchestrator.apiKey')") == key
    assert page.evaluate("localStorage.length") == 0


def test_llm_text_streams_into_the_step_details(page: Any, api: httpx.Client, server: ServerInfo) -> None:
    answer = "Take the morning flight to Paris; the hotel near the Eiffel Tower fits the budget."
    server.openai.reset()
    server.openai.script(answer)
    execution = start(
        api,
        "ui-llm",
        {"name": "nap", "type": "wait", "duration": "2s"},
        {"name": "ask", "type": "llm", "agent": "scripted-llm", "prompt": "Advise", "depends_on": ["nap"]},
    )
    page.goto(f"/ui#/executions/{execution['id']}")
    page.locator('.dag .node[data-step="ask"]').click()  # selected before it runs: its text streams in
    details = page.locator(".step-details")
    expect(details).to_contain_text("LLM text as it streamed", timeout=30000)
    expect(details.locator(".llm")).to_have_text(answer)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server with API keys on (as off loopback) and one key of tenant ``ui-acme``: (base URL, key)."""
    from tests.ports import free_port
    from tests.processes import server_process
    from tests.test_streams import create_key

    data_dir = tmp_path_factory.mktemp("ui-keyed")
    key = create_key(data_dir, "ui-acme")
    port = free_port()
    env = {"ORCH_AUTH": "api_key", "ORCH_HOSTS_PER_NODE": "1"}
    with server_process(port, data_dir, "orchestrator-ui-keyed", env=env):
        yield f"http://127.0.0.1:{port}", key


def test_with_auth_on_the_ui_asks_for_a_key_once_and_shows_the_tenants_work(
    browser: Any, keyed_server: tuple[str, str]
) -> None:
    base_url, key = keyed_server
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        execution = start(api, "ui-keyed", {"name": "t", "type": "transform", "value": 1}, wait=True)
    context = browser.new_context(viewport={"width": 1400, "height": 950}, base_url=base_url)
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    try:
        page.goto("/ui#/executions")  # the list answers 401: the UI asks for a key
        expect(page.locator("#key-dialog")).to_be_visible(timeout=15000)
        page.get_by_role("textbox", name="Key").fill(key)
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("#key-dialog")).not_to_be_visible()
        expect(page.get_by_text(execution["id"])).to_be_visible(timeout=15000)
        page.goto(f"/ui#/executions/{execution['id']}")  # another page: not asked again
        expect(page.locator('.dag .node[data-step="t"]')).to_contain_text("completed", timeout=15000)
        expect(page.locator("#key-dialog")).not_to_be_visible()
        assert not any(key in url for url in seen)
    finally:
        context.close()
