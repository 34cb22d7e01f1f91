"""Cluster settings: leases that cannot be lost to one late renewal, and Serve replica options."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.config import Settings
from orchestrator.runtime.placement import hosts_per_node, wanted_hosts


def test_replicas_are_fixed_unless_min_and_max_ask_for_autoscaling() -> None:
    assert Settings(ingress_replicas=3).replica_options("ingress") == {"num_replicas": 3}
    autoscaled = Settings(planner_min_replicas=1, planner_max_replicas=4).replica_options("planner")
    assert autoscaled == {
        "num_replicas": "auto",
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 4.0},
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"ingress_min_replicas": 2},  # min without max
        {"ingress_min_replicas": 5, "ingress_max_replicas": 2},
        {"lease_renew_seconds": 6, "lease_expire_seconds": 10},  # one late renewal would lose it
    ],
)
def test_inconsistent_cluster_settings_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Settings(**fields)


def test_hosts_per_node() -> None:
    default = Settings(hosts_per_node=None)  # not the environment's (the test server sets it)
    assert hosts_per_node(default, 1) == 2  # a lone node keeps two, so one restart strands nothing
    assert hosts_per_node(default, 3) == 1
    assert hosts_per_node(Settings(hosts_per_node=3), 1) == 3
    wanted = wanted_hosts(["a" * 56, "b" * 56], 2)
    assert sorted(wanted) == [
        f"orch-host-{'a' * 12}-0",
        f"orch-host-{'a' * 12}-1",
        f"orch-host-{'b' * 12}-0",
        f"orch-host-{'b' * 12}-1",
    ]
    assert wanted[f"orch-host-{'b' * 12}-1"] == "b" * 56
