"""The orchestration engine and the server around it, in layers; each may import only the layers
below it (``lint-imports`` holds this in CI, contracts in ``pyproject.toml``):

- :mod:`orchestrator.server`: the composition root. The REST dialects, the execution service the
  routes call, the wiring of store, runtime, agents and planner, and the CLI. The only place that
  imports everything.
- :mod:`planner` and :mod:`agents` (top-level packages): planning, agents and their connectors.
- :mod:`orchestrator.runtime`: execution actors and their hosts on Ray, written against ports
  (:mod:`orchestrator.runtime.ports`): a step runner and the event store.
- :mod:`orchestrator.store`: the event store (SQLite, PostgreSQL), its projection, export and replay.
- :mod:`orchestrator.config` (settings) and :mod:`orchestrator.ray_errors`: shared by the shell.
- :mod:`orchestrator.core`: the pure core. No Ray, database, network or clock.
"""
