"""Server settings, read from ``ORCH_*`` environment variables (and the CLI, which sets them).

One settings object travels to every actor and deployment, so ``serve run serve_app:app`` and
``orchestrate serve`` configure the same things the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.limits import Limits

DEFAULT_DASHBOARD_PORT = 8265  # Ray's own default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8081
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="postgresql://... selects PostgreSQL; default is SQLite in data_dir"
    )

    placement: Literal["pooled", "dedicated"] = "pooled"
    namespace: str = "orchestrator"

    # -- the cluster: partitions, leases, replicas -------------------------------------------------
    partitions: int = Field(
        default=64, ge=1, le=4096, description="partitions of a new store (recorded when it is created)"
    )
    hosts_per_node: int | None = Field(
        default=None, ge=1, le=64, description="execution hosts on every node (default 1; 2 on a lone node)"
    )
    lease_renew_seconds: float = Field(default=2.0, gt=0, le=60, description="partition lease renewal period")
    lease_expire_seconds: float = Field(
        default=10.0, gt=0, le=600, description="a lease not renewed for this long may be taken over"
    )
    ingress_replicas: int = Field(default=1, ge=1, le=256, description="ingress replicas without autoscaling")
    ingress_min_replicas: int | None = Field(default=None, ge=0, description="with max: Serve autoscaling")
    ingress_max_replicas: int | None = Field(default=None, ge=1)
    ingress_target_ongoing_requests: float = Field(default=64.0, gt=0)
    planner_replicas: int = Field(default=1, ge=1, le=256)
    planner_min_replicas: int | None = Field(default=None, ge=0)
    planner_max_replicas: int | None = Field(default=None, ge=1)
    planner_target_ongoing_requests: float = Field(default=4.0, gt=0)
    fast_proxy: bool = Field(
        default=True,
        description="Serve's throughput mode behind HAProxy, every listener on ORCH_HOST (off: Serve's proxy)",
    )
    proxy_location: Literal["EveryNode", "HeadOnly", "Disabled"] = Field(
        default="EveryNode", description="where Serve runs HTTP proxies (each node's on ORCH_PORT)"
    )

    dashboard: bool = Field(default=True, description="start Ray's dashboard with the local cluster")
    dashboard_host: str = Field(
        default="127.0.0.1", description="the dashboard's bind address; off loopback it needs Ray's token"
    )
    dashboard_port: int = Field(
        default=DEFAULT_DASHBOARD_PORT,
        ge=0,
        le=65535,
        description="the dashboard's port; 0 or a busy port: any free one (the default walks up from 8265)",
    )

    auth: Literal["off", "api_key"] | None = Field(
        default=None, description="off or api_key; default: api_key unless the host is a loopback address"
    )
    admin_key: str | None = Field(
        default=None, description="an orch_<id>_<secret> key stored (hashed) as an admin key at start"
    )

    llm_provider: Literal["offline", "openai"] | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 60.0

    agents_dir: Path | None = Field(default=None, description="extra agent/connector YAML files")
    workflows_dir: Path | None = Field(default=None, description="extra registered workflow files")

    default_timeout: float | None = Field(default=None, description="workflow timeout when none is given")
    sync_timeout: float = Field(default=300.0, description="max seconds a synchronous request waits")
    plan_ttl: float = Field(
        default=3600.0, gt=0, description="seconds a plan stored for review (execute: false) can be executed"
    )
    retention_days: float | None = None
    max_body_bytes: int = 1024 * 1024
    max_steps: int = Field(default=2000, ge=1, description="steps per workflow, nested ones included")
    max_nesting_depth: int = Field(default=32, ge=1, description="containers inside each other")
    max_template_bytes: int = Field(default=64 * 1024, ge=1, description="bytes of one template string")
    max_step_output_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1, description="larger step outputs fail the step (OUTPUT_TOO_LARGE)"
    )
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="an idle live stream sends a comment this often"
    )
    stream_max_open: int = Field(
        default=1000, ge=1, description="open live streams per ingress replica; more are 503 TOO_MANY_STREAMS"
    )

    @model_validator(mode="after")
    def _leases_outlive_renewals(self) -> Settings:
        if self.lease_expire_seconds < 2 * self.lease_renew_seconds:
            raise ValueError(
                f"ORCH_LEASE_EXPIRE_SECONDS ({self.lease_expire_seconds}) must be at least twice "
                f"ORCH_LEASE_RENEW_SECONDS ({self.lease_renew_seconds}): one late renewal must not lose a lease"
            )
        for name in ("ingress", "planner"):
            low, high = getattr(self, f"{name}_min_replicas"), getattr(self, f"{name}_max_replicas")
            if (low is None) != (high is None) or (low is not None and high is not None and low > high):
                raise ValueError(
                    f"ORCH_{name.upper()}_MIN_REPLICAS and ORCH_{name.upper()}_MAX_REPLICAS go together "
                    "(Serve autoscaling between them), with min <= max"
                )
        return self

    def replica_options(self, deployment: Literal["ingress", "planner"]) -> dict[str, Any]:
        """Serve deployment options: a fixed replica count, or autoscaling between min and max."""
        low = getattr(self, f"{deployment}_min_replicas")
        if low is None:
            return {"num_replicas": getattr(self, f"{deployment}_replicas")}
        return {
            "num_replicas": "auto",
            "autoscaling_config": {
                "min_replicas": low,
                "max_replicas": getattr(self, f"{deployment}_max_replicas"),
                "target_ongoing_requests": getattr(self, f"{deployment}_target_ongoing_requests"),
            },
        }

    @field_validator("data_dir", "agents_dir", "workflows_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # actors run in other processes with other working directories
        return value.expanduser().resolve() if value is not None else None

    @property
    def resolved_llm_provider(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "openai" if self.llm_base_url or self.llm_api_key else "offline"

    @property
    def resolved_auth(self) -> Literal["off", "api_key"]:
        """``api_key`` whenever the server may be reached from another machine, unless said otherwise."""
        if self.auth is not None:
            return self.auth
        return "off" if is_loopback(self.host) else "api_key"

    @property
    def limits(self) -> Limits:
        return Limits(
            max_steps=self.max_steps,
            max_nesting_depth=self.max_nesting_depth,
            max_template_bytes=self.max_template_bytes,
            max_step_output_bytes=self.max_step_output_bytes,
        )

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'orchestrator.db').resolve()}"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def load_settings() -> Settings:
    return Settings()


def quiet_logging() -> None:
    """Actors log at INFO, but HTTP clients at WARNING: a health probe every few seconds is not news."""
    import logging

    logging.basicConfig(level=logging.INFO)
    for name in ("httpx", "httpx2", "httpcore", "mcp", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
