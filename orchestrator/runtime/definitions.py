"""One workflow definition object per distinct definition in a host.

Every start reaches the host with its own copy of the definition (unpickled from the ingress's call),
and every execution recovered from the log folds its own. A program running its workflow sends the same
definition each time, so a host with a thousand executions in flight held a thousand equal copies
(about 5 KB each for a one-step workflow, more with the graph the core works out for each). Equal
definitions now share one immutable object, found by a digest of their JSON; the table is bounded
(least recently used out first: executions keep what they hold).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from orchestrator.core.definitions import WorkflowDef

CAPACITY = 1024


class SharedDefinitions:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._definitions: OrderedDict[bytes, WorkflowDef] = OrderedDict()

    def intern(self, workflow: WorkflowDef) -> WorkflowDef:
        """The definition equal to ``workflow`` this host already holds, else ``workflow`` itself."""
        key = hashlib.blake2b(workflow.model_dump_json().encode(), digest_size=20).digest()
        known = self._definitions.get(key)
        if known is not None:
            self._definitions.move_to_end(key)
            return known
        self._definitions[key] = workflow
        while len(self._definitions) > self.capacity:
            self._definitions.popitem(last=False)
        return workflow

    def __len__(self) -> int:
        return len(self._definitions)
