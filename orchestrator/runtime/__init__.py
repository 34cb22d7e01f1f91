"""The runtime: execution actors (one logical actor per execution, the single writer of its log) and
the Ray ``ExecutionHost`` actors they live in. Written against ports (:mod:`.ports`): it imports the
core, the store and the settings, never an agent, a connector or the planner.
"""
