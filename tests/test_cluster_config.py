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
