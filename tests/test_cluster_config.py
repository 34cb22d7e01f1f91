"""cluster.yaml must stay a configuration the Ray cluster launcher accepts."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_against_ray_schema() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # fills defaults as `ray up` does, raises on violations
    assert config["provider"]["type"] == "local"
    assert any("orchestrate" in line or "pip install" in line for line in config["setup_commands"])


def test_cluster_requires_the_token_and_keeps_the_dashboard_on_loopback() -> None:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    starts = [*config["head_start_ray_commands"], *config["worker_start_ray_commands"]]
    ray_starts = [line for line in starts if "ray start" in line]
    assert ray_starts and all(line.startswith("RAY_AUTH_MODE=token ") for line in ray_starts)
    assert not any("--dashboard-host" in line for line in starts)  # Ray's default: 127.0.0.1
    assert "~/.ray/auth_token" in config["file_mounts"]
