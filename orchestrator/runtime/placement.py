"""Execution hosts on every node: the supervisor that puts them there.

One detached ``HostSupervisor`` actor per server namespace keeps ``hosts_per_node`` execution hosts
on every alive Ray node, each pinned to its node (hard node affinity), named after it
(``orch-host-<node>-<i>``). It adds hosts when nodes join, and retires the hosts of nodes that left
(and surplus ones) after asking them to leave, which releases their leases at once. Which host runs
which execution is not its business: the hosts share partitions among themselves through their
leases (:mod:`orchestrator.runtime.host`).

With the SQLite store, only the supervisor's own node gets hosts: SQLite is one machine's file.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from orchestrator.config import Settings, quiet_logging
from orchestrator.runtime.host import HOST_PREFIX, host_name, pooled_host, writer_fingerprint
from orchestrator.runtime.ports import RunnerFactory

log = logging.getLogger(__name__)

SUPERVISOR_NAME = "orch-supervisor"
PLACEMENT_INTERVAL = 3.0


def hosts_per_node(settings: Settings, nodes: int) -> int:
    """The configured count, else one per node, and two on a cluster of one node (so one host's
    restart never leaves every partition waiting)."""
    if settings.hosts_per_node is not None:
        return settings.hosts_per_node
    return 2 if nodes == 1 else 1


def wanted_hosts(node_ids: list[str], per_node: int) -> dict[str, str]:
    """``{host name: node id}`` of the hosts a cluster of ``node_ids`` should run."""
    return {host_name(node, index): node for node in node_ids for index in range(per_node)}


def placed_nodes(settings: Settings, home_node: str) -> list[str]:
    """The nodes that get hosts: every alive node, or only ``home_node`` with the SQLite store."""
    nodes = alive_nodes()
    if uses_sqlite(settings) and len(nodes) > 1:
        return [home_node]
    return nodes


def start_hosts(settings: Settings, runner_factory: RunnerFactory, nodes: list[str]) -> dict[str, Any]:
    """Create (or find) the hosts ``nodes`` should run, each pinned to its node; returns their handles.
    Idempotent (actors are found by name), so the supervisor and a starting ingress may both call it."""
    wanted = wanted_hosts(nodes, hosts_per_node(settings, len(nodes)))
    return {name: pinned_host(settings, runner_factory, name, node) for name, node in wanted.items()}


def pinned_host(settings: Settings, runner_factory: RunnerFactory, name: str, node: str) -> Any:
    """The pooled host ``name`` on ``node`` (hard affinity: a host never wanders to another node)."""
    return pooled_host(
        settings,
        name,
        runner_factory,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    )


def alive_nodes() -> list[str]:
    return sorted(node["NodeID"] for node in ray.nodes() if node.get("Alive"))  # type: ignore[no-untyped-call]


def uses_sqlite(settings: Settings) -> bool:
    return settings.store_url.startswith("sqlite:")


class HostSupervisor:
    def __init__(self, settings: Settings, runner_factory: RunnerFactory) -> None:
        quiet_logging()
        self.settings = settings
        self.runner_factory = runner_factory
        self.fingerprint = writer_fingerprint(settings)
        self.home_node = ray.get_runtime_context().get_node_id()
        self.hosts: dict[str, Any] = {}
        self._checked: set[str] = set()
        self._placed = asyncio.Event()
        self.last_error: str | None = None
        self._task = asyncio.get_event_loop().create_task(self._supervise())

    async def ready(self) -> list[str]:
        """The host names, once each has been placed and has finished its first lease round."""
        await self._placed.wait()
        handles = dict(self.hosts)
        await asyncio.gather(*(handle.ready.remote() for handle in handles.values()))
        return sorted(handles)

    async def writer_fingerprint(self) -> str:
        return self.fingerprint

    async def status(self) -> dict[str, Any]:
        return {"hosts": sorted(self.hosts), "last_error": self.last_error}

    async def _supervise(self) -> None:
        while True:
            try:
                await self._place()
                self.last_error = None
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.exception("placing execution hosts failed")
            finally:
                self._placed.set()
            await asyncio.sleep(PLACEMENT_INTERVAL)

    async def _place(self) -> None:
        nodes = await asyncio.to_thread(placed_nodes, self.settings, self.home_node)
        wanted = wanted_hosts(nodes, hosts_per_node(self.settings, len(nodes)))
        existing = await asyncio.to_thread(self._named_hosts)
        for name in sorted(existing - set(wanted)):
            await self._retire(name)
        for name, node in wanted.items():
            if name not in self.hosts or name not in existing:
                self.hosts[name] = self._create(name, node)
        # all at once: each answers once its constructor ran, and they start in parallel
        await asyncio.gather(
            *(self._check(name, node) for name, node in wanted.items() if name not in self._checked)
        )

    def _named_hosts(self) -> set[str]:
        return {
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor.get("namespace") == self.settings.namespace
            and str(actor.get("name", "")).startswith(HOST_PREFIX)
        }

    def _create(self, name: str, node: str) -> Any:
        return pinned_host(self.settings, self.runner_factory, name, node)

    async def _check(self, name: str, node: str) -> None:
        """A detached host left by a server started with other settings is replaced."""
        try:
            fingerprint = await asyncio.wait_for(self.hosts[name].writer_fingerprint.remote(), 30)
        except Exception as exc:  # no answer says nothing about its settings: ask again next round
            log.warning("execution host %s did not say its settings: %r", name, exc)
            return
        if fingerprint != self.fingerprint:
            log.warning("execution host %s was created with other settings; replacing it", name)
            await self._retire(name)
            self.hosts[name] = await recreated(lambda: self._create(name, node))
        self._checked.add(name)

    async def _retire(self, name: str) -> None:
        """Ask a host to leave (releasing its leases at once), then end it."""
        try:
            handle = self.hosts.pop(name, None) or ray.get_actor(name, namespace=self.settings.namespace)
        except ValueError:
            return
        log.info("retiring execution host %s", name)
        try:
            await asyncio.wait_for(handle.leave.remote(), 5)
        except Exception as exc:  # a host on a dead node cannot answer: its leases expire instead
            log.info("execution host %s did not leave cleanly: %r", name, exc)
        ray.kill(handle, no_restart=True)
        self._checked.discard(name)


async def recreated(create: Any) -> Any:
    """A killed named actor's name is freed asynchronously: retry the creation until it is."""
    for _ in range(100):
        try:
            return create()
        except ValueError:  # the name is still taken by the dying actor
            await asyncio.sleep(0.1)
    return create()


RemoteHostSupervisor = ray.remote(HostSupervisor)


def host_supervisor(settings: Settings, runner_factory: RunnerFactory) -> Any:
    """Create (or find) the namespace's supervisor, on this node if it can."""
    return RemoteHostSupervisor.options(
        name=SUPERVISOR_NAME,
        namespace=settings.namespace,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
        max_restarts=-1,
        max_task_retries=0,
        max_concurrency=1000,
        scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=True
        ),
    ).remote(settings, runner_factory)
