"""The composition root: the REST dialects (:mod:`.api`), the execution service the routes call
(:mod:`.executions`), the wiring of store, runtime, agents and planner (:mod:`.wiring`), the EAI
workflow registry (:mod:`.workflow_registry`) and the CLI (:mod:`.cli`). The only layer that imports
every other; nothing imports it but the entry points (``serve_app``, ``orchestrate``).
"""
