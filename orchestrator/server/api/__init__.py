"""The FastAPI routes of both dialects (v1 and EAI), agents and planning, and the error envelope.
Routes reach the execution service and friends through :mod:`.deps`."""
