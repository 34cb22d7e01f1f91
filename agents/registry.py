"""The agent registry: which agents exist, which connector each owns, and whether a configuration is sound.

This module only loads and checks configuration; agent actors, health loops and routes build on it. Keeping it
free of Ray and I/O beyond reading YAML means the server, the CLI and ``POST /api/v1/agents/validate`` all
apply exactly the same rules, and the tests for them run in milliseconds.

Layout: a directory of ``*.yaml`` files, each holding ``agents: [...]`` and/or ``connectors: [...]``. The
shipped directory (``agents/config/``) is read first, then the user's directories in order; a later agent or
connector with the same id/name replaces the earlier one, so a user can override a shipped definition
without editing the package.

    connectors:
      - name: projects-db
        type: sql                      # mcp | sql | http | llm
        config: {url: "sqlite:///${data_dir}/projects.db"}
    agents:
      - id: projects-db
        name: Projects Database
        domain: projects
        connector_type: sqlite         # display name; must map to a known connector type
        connector: projects-db         # defaults to connector_config.name, then to the agent id
        replicas: 1                    # agent actors to run (1..64), spread over the cluster's nodes
        capabilities:
          - name: get_project
            parameters: {project_id: {type: string, required: true}}
            binding: {statement: get_project}

Strings in connector configurations (and in an agent's ``connector_config``) may use ``${ENV_VAR}`` and
``${data_dir}``; they are expanded at load time so secrets stay out of the files. A missing variable expands
to an empty string and leaves a warning on the registry rather than failing startup, because the agent then
reports itself unhealthy where an operator can see it.

Errors: :class:`AgentConfigError` (``INVALID_AGENT_CONFIG``) for a file that cannot be loaded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from jinja2 import TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.connectors.base import CapabilitySpec, Connector
from orchestrator.config import Settings
from orchestrator.core.errors import NotFound, OrchestratorError
from orchestrator.core.templates import sandbox

if TYPE_CHECKING:
    from agents.llm.base import LLMProvider

__all__ = [
    "CONNECTOR_TYPE_ALIASES",
    "MAX_REPLICAS",
    "PARAMETER_TYPES",
    "SHIPPED_CONFIG_DIR",
    "AgentConfig",
    "AgentConfigError",
    "ConnectorConfig",
    "ConnectorType",
    "HealthCheckConfig",
    "Registry",
    "canonical_connector_type",
    "expand_placeholders",
    "load_registry",
    "make_connector",
    "registry_for",
    "validate_agent_config",
]

log = logging.getLogger(__name__)

SHIPPED_CONFIG_DIR = Path(__file__).parent / "config"

ConnectorType = Literal["mcp", "sql", "http", "llm"]

# Display names people put in ``connector_type`` (the seed uses "amadeus", "salesforce", "postgres") mapped to
# the connector implementation that serves them.
CONNECTOR_TYPE_ALIASES: dict[str, ConnectorType] = {
    "mcp": "mcp",
    "sql": "sql",
    "http": "http",
    "llm": "llm",
    "amadeus": "mcp",
    "salesforce": "mcp",
    "postgres": "sql",
    "postgresql": "sql",
    "sqlite": "sql",
    "rest": "http",
    "openai": "llm",
}

PARAMETER_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})

AGENT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

# Each replica is a process of its own (and, for a stdio MCP connector, a second one for its server), so a
# typo like ``replicas: 1000`` must be a config error rather than a thousand processes.
MAX_REPLICAS = 64
# Connectors a step may call from the execution host itself (runs_in: host): no session to keep
HOST_CONNECTOR_TYPES = frozenset({"http"})

# libyaml when present: the shipped file is parsed at every registry load, tests included
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Only used to parse prompt templates at validation time; rendering happens in the LLM connector.
_TEMPLATE_ENV = sandbox(prompt=True)


class AgentConfigError(OrchestratorError):
    """An agent or connector file cannot be loaded; the message names the file and the field."""

    code = "INVALID_AGENT_CONFIG"
    status = 400


def canonical_connector_type(name: str) -> ConnectorType | None:
    """The implementation behind a ``connector_type`` display name, or None when nothing serves it."""
    return CONNECTOR_TYPE_ALIASES.get(name.strip().lower()) if isinstance(name, str) else None


class HealthCheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: float = Field(default=10, gt=0)
    timeout: float = Field(default=5, gt=0)
    failure_threshold: int = Field(default=3, ge=1)


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: ConnectorType
    config: dict[str, Any] = Field(default_factory=dict)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=AGENT_ID_PATTERN.pattern)
    name: str
    description: str = ""
    domain: str
    connector_type: str
    connector: str = ""  # resolved by _default_connector: connector_config.name, then the agent id
    connector_config: dict[str, Any] = Field(default_factory=dict)
    capabilities: list[CapabilitySpec] = Field(default_factory=list)
    discover_capabilities: bool = False
    enabled: bool = True
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    # agent actors to run, spread over the cluster's nodes; calls are balanced over the healthy ones
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS, strict=True)
    # where workflow steps call it: its agent actors (a Ray task per call, traced in the dashboard), or
    # the execution host's own process (no actor hop per step; http connectors only, being stateless)
    runs_in: Literal["actor", "host"] = "actor"

    @field_validator("capabilities", mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        # The seed lists capabilities as bare names; accept them as capabilities without a schema.
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _default_connector(self) -> AgentConfig:
        # connector_config.name (the seed's spelling), else ``connector``, else the agent's own id
        named = self.connector_config.get("name")
        if isinstance(named, str) and named:
            self.connector = named
        elif not self.connector:
            self.connector = self.id
        return self

    @property
    def capability_names(self) -> list[str]:
        return [c.name for c in self.capabilities]

    def capability(self, name: str) -> CapabilitySpec | None:
        return next((c for c in self.capabilities if c.name == name), None)


class Registry(BaseModel):
    """Agents and connectors after overrides and placeholder expansion; warnings are kept, not logged away,
    so the server can show them (an operator rarely reads startup logs)."""

    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    connectors: dict[str, ConnectorConfig] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    # per connector name, the values expanded from ${ENV_VAR} placeholders: its agent scrubs them from
    # everything it reports. Kept out of dumps and reprs.
    secrets: dict[str, list[str]] = Field(default_factory=dict, exclude=True, repr=False)

    def get(self, agent_id: str) -> AgentConfig:
        """The agent with this id; raises ``NotFound`` (``AGENT_NOT_FOUND``) so routes answer 404 directly.
        Use ``registry.agents.get(id)`` when absence is not an error."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFound(f"agent {agent_id!r} not found", code="AGENT_NOT_FOUND") from None

    def by_domain(self, domain: str) -> list[AgentConfig]:
        """Agents of one domain in registration order; an unknown domain is an empty list, not an error."""
        return [a for a in self.agents.values() if a.domain == domain]

    def connector_for(self, agent: AgentConfig | str) -> ConnectorConfig | None:
        """The connector an agent owns, or None while it is not configured (the agent is then unavailable
        rather than the whole registry failing)."""
        config = self.get(agent) if isinstance(agent, str) else agent
        return self.connectors.get(config.connector)


# -- placeholders -------------------------------------------------------------------------------------------


def expand_placeholders(
    value: Any,
    *,
    data_dir: Path,
    environ: dict[str, str] | None = None,
    warnings: list[str] | None = None,
    where: str = "",
    expanded: set[str] | None = None,
) -> Any:
    """Expand ``${ENV_VAR}`` and ``${data_dir}`` in every string of a nested structure. Missing variables
    become empty strings plus a warning in ``warnings``, so one unset secret does not stop the server.
    The values taken from the environment are added to ``expanded``: they are treated as secrets."""
    env = os.environ if environ is None else environ
    data = str(data_dir.expanduser().resolve())

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "data_dir":
            return data
        if name in env:
            if expanded is not None:
                expanded.add(env[name])
            return env[name]
        if warnings is not None:
            message = f"environment variable {name!r} is not set (used in {where or 'configuration'})"
            if message not in warnings:
                warnings.append(message)
        return ""

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return _PLACEHOLDER.sub(sub, item)
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value)


# -- loading ------------------------------------------------------------------------------------------------


def load_registry(
    dirs: Iterable[Path],
    *,
    data_dir: Path,
    include_shipped: bool = True,
    environ: dict[str, str] | None = None,
) -> Registry:
    """Read the shipped configuration, then each directory in ``dirs``; later definitions override earlier
    ones by agent id / connector name. Raises :class:`AgentConfigError` for a file that does not parse or an
    entry that is invalid, because running with half a configuration hides the mistake."""
    registry = Registry()
    inline_secrets: dict[str, set[str]] = {}
    sources = [SHIPPED_CONFIG_DIR] if include_shipped else []
    sources.extend(Path(d) for d in dirs)
    for directory in sources:
        if not directory.is_dir():
            registry.warnings.append(f"agents directory {str(directory)!r} does not exist")
            continue
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            _load_file(path, registry, data_dir=data_dir, environ=environ, inline_secrets=inline_secrets)

    # An agent may carry its connection inline (``connector_type: postgres`` + ``connector_config: {url}``);
    # give it a connector of its own unless a declared one with that name exists.
    for agent in registry.agents.values():
        if agent.connector in registry.connectors:
            continue
        inline = {k: v for k, v in agent.connector_config.items() if k != "name"}
        kind = canonical_connector_type(agent.connector_type)
        if inline and kind is not None:
            registry.connectors[agent.connector] = ConnectorConfig(
                name=agent.connector, type=kind, config=inline
            )
            registry.secrets[agent.connector] = sorted(inline_secrets.get(agent.id, ()))

    for agent in registry.agents.values():
        if agent.connector not in registry.connectors:
            registry.warnings.append(_missing_connector_warning(agent.connector) + f" (agent {agent.id!r})")
        elif (
            agent.runs_in == "host" and registry.connectors[agent.connector].type not in HOST_CONNECTOR_TYPES
        ):
            raise AgentConfigError(
                f"agent {agent.id!r}: runs_in: host is for connectors of type "
                f"{', '.join(sorted(HOST_CONNECTOR_TYPES))} (stateless per call); its connector "
                f"{agent.connector!r} is {registry.connectors[agent.connector].type!r}, which keeps a session "
                "in its agent actor"
            )
    for message in registry.warnings:
        log.warning("agent registry: %s", message)
    return registry


def _load_file(
    path: Path,
    registry: Registry,
    *,
    data_dir: Path,
    environ: dict[str, str] | None,
    inline_secrets: dict[str, set[str]],
) -> None:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise AgentConfigError(f"cannot read agent configuration {str(path)!r}: {exc}") from exc
    if document is None:
        return
    if not isinstance(document, dict) or not set(document) <= {"agents", "connectors"}:
        raise AgentConfigError(
            f"{str(path)!r} must be a mapping with 'agents' and/or 'connectors' lists",
            details=[{"field": "", "message": "expected keys: agents, connectors"}],
        )

    for index, raw in enumerate(_as_list(document.get("connectors"), path, "connectors")):
        where = f"connectors[{index}]"
        expanded: set[str] = set()
        if isinstance(raw, dict) and "config" in raw:
            name = raw.get("name", where)
            config = _expand(raw["config"], data_dir, environ, registry, f"connector {name!r}", expanded)
            raw = {**raw, "config": config}
        try:
            connector = ConnectorConfig.model_validate(raw)
        except ValidationError as exc:
            raise _config_error(path, where, exc) from exc
        registry.connectors[connector.name] = connector
        registry.secrets[connector.name] = sorted(expanded)

    for index, raw in enumerate(_as_list(document.get("agents"), path, "agents")):
        where = f"agents[{index}]"
        errors, warnings = _check_agent(raw)
        if errors:
            raise AgentConfigError(
                f"invalid agent {where} in {str(path)!r}: "
                + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                details=[{**e, "field": f"{where}.{e['field']}".rstrip(".")} for e in errors],
            )
        assert isinstance(raw, dict)  # _check_agent reports anything else as an error
        expanded_inline: set[str] = set()
        if "connector_config" in raw:
            raw = {
                **raw,
                "connector_config": _expand(
                    raw["connector_config"],
                    data_dir,
                    environ,
                    registry,
                    f"agent {raw['id']!r}",
                    expanded_inline,
                ),
            }
        try:
            agent = AgentConfig.model_validate(raw)
        except ValidationError as exc:
            raise _config_error(path, where, exc) from exc
        inline_secrets[agent.id] = expanded_inline
        registry.warnings.extend(f"{message} (agent {agent.id!r})" for message in warnings)
        registry.agents[agent.id] = agent


def _as_list(value: Any, path: Path, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AgentConfigError(f"{key!r} in {str(path)!r} must be a list")
    return value


def _expand(
    value: Any,
    data_dir: Path,
    environ: dict[str, str] | None,
    registry: Registry,
    where: str,
    expanded: set[str],
) -> Any:
    return expand_placeholders(
        value,
        data_dir=data_dir,
        environ=environ,
        warnings=registry.warnings,
        where=where,
        expanded=expanded,
    )


def _config_error(path: Path, where: str, exc: ValidationError) -> AgentConfigError:
    details = [
        {"field": ".".join([where, *(str(p) for p in err["loc"])]), "message": err["msg"]}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return AgentConfigError(f"invalid {where} in {str(path)!r}: {summary}", details=details)


# -- validation ---------------------------------------------------------------------------------------------


def _missing_connector_warning(name: str) -> str:
    return f"Connector {name!r} not found - agent will be unavailable until connector is configured"


def validate_agent_config(raw: Any, registry: Registry) -> dict[str, Any]:
    """Check a configuration without registering it (``POST /api/v1/agents/validate``).

    Errors make it invalid; warnings describe an agent that would load but not fully work yet (no connector,
    capabilities without schemas) or that would replace an existing one.
    """
    errors, warnings = _check_agent(raw)
    given = raw if isinstance(raw, dict) else {}
    agent = {key: given[key] for key in ("id", "name", "domain") if key in given}

    if not errors:
        assert isinstance(raw, dict)
        config = AgentConfig.model_validate(raw)
        inline = {k: v for k, v in config.connector_config.items() if k != "name"}
        declared = registry.connectors.get(config.connector)
        if declared is None and not inline:
            warnings.insert(0, _missing_connector_warning(config.connector))
        elif declared is not None:
            expected = canonical_connector_type(config.connector_type)
            if expected != declared.type:
                warnings.append(
                    f"connector_type {config.connector_type!r} usually means a {expected!r} connector, but "
                    f"connector {declared.name!r} is {declared.type!r}"
                )
        if config.id in registry.agents:
            warnings.append(
                f"Agent {config.id!r} is already registered - this configuration would replace it"
            )
    return {"valid": not errors, "agent": agent, "errors": errors, "warnings": warnings}


def _check_agent(raw: Any) -> tuple[list[dict[str, str]], list[str]]:
    """All problems at once, each with a field path, so a user fixes a configuration in one round trip
    instead of one pydantic error at a time."""
    errors: list[dict[str, str]] = []
    warnings: list[str] = []

    def error(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    if not isinstance(raw, dict):
        error("", "agent configuration must be an object")
        return errors, warnings

    for key in ("id", "name", "domain", "connector_type"):
        value = raw.get(key)
        if value is None:
            error(key, f"{key!r} is required")
        elif not isinstance(value, str) or not value.strip():
            error(key, f"{key!r} must be a non-empty string")
    agent_id = raw.get("id")
    if isinstance(agent_id, str) and agent_id.strip() and not AGENT_ID_PATTERN.match(agent_id):
        error(
            "id",
            f"id {agent_id!r} must match {AGENT_ID_PATTERN.pattern} (lowercase letters, digits, - and _)",
        )
    connector_type = raw.get("connector_type")
    if (
        isinstance(connector_type, str)
        and connector_type.strip()
        and canonical_connector_type(connector_type) is None
    ):
        known_types = ", ".join(sorted(CONNECTOR_TYPE_ALIASES))
        error("connector_type", f"unknown connector type {connector_type!r} (known: {known_types})")

    for key in ("description", "connector"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            error(key, f"{key!r} must be a string")
    for key in ("enabled", "discover_capabilities"):
        if key in raw and not isinstance(raw[key], bool):
            error(key, f"{key!r} must be true or false")
    connector_config = raw.get("connector_config")
    if connector_config is not None:
        if not isinstance(connector_config, dict):
            error("connector_config", "'connector_config' must be an object")
        elif "name" in connector_config and not isinstance(connector_config["name"], str):
            error("connector_config.name", "'name' must be a string")
        elif (
            isinstance(raw.get("connector"), str)
            and raw["connector"]
            and connector_config.get("name", raw["connector"]) != raw["connector"]
        ):
            error(
                "connector",
                f"connector {raw['connector']!r} and connector_config.name {connector_config['name']!r} "
                "name different connectors; give one of them",
            )
    _check_health(raw.get("health_check"), error)
    replicas = raw.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= MAX_REPLICAS:
        error("replicas", f"'replicas' must be a whole number from 1 to {MAX_REPLICAS}, got {replicas!r}")

    if raw.get("runs_in", "actor") not in ("actor", "host"):
        error("runs_in", f"'runs_in' must be 'actor' or 'host', got {raw['runs_in']!r}")

    known = {"id", "name", "description", "domain", "connector_type", "connector", "connector_config"}
    known |= {"capabilities", "discover_capabilities", "enabled", "health_check", "replicas", "runs_in"}
    for key in raw:
        if key not in known:
            error(str(key), f"unknown field {key!r}")

    capabilities = raw.get("capabilities", [])
    if not isinstance(capabilities, list):
        error("capabilities", "'capabilities' must be a list of names or capability objects")
        return errors, warnings
    seen: dict[str, int] = {}
    for index, capability in enumerate(capabilities):
        where = f"capabilities[{index}]"
        if isinstance(capability, str):
            name = capability
            if not name.strip():
                error(where, "capability name must be a non-empty string")
                continue
            warnings.append(f"Capability {name!r} has no parameter schema - parameters will not be checked")
        elif isinstance(capability, dict):
            given = capability.get("name")
            if not isinstance(given, str) or not given.strip():
                error(f"{where}.name", "capability name is required")
                continue
            name = given
            _check_capability(capability, where, error)
            if "parameters" not in capability:
                warnings.append(
                    f"Capability {name!r} has no parameter schema - parameters will not be checked"
                )
        else:
            error(where, "a capability must be a name or an object with 'name'")
            continue
        if name in seen:
            error(f"{where}.name", f"duplicate capability {name!r} (also capabilities[{seen[name]}])")
        else:
            seen[name] = index
    return errors, warnings


def _check_health(health: Any, error: Callable[[str, str], None]) -> None:
    if health is None:
        return
    if not isinstance(health, dict):
        error("health_check", "'health_check' must be an object")
        return
    for key, value in health.items():
        field = f"health_check.{key}"
        if key not in HealthCheckConfig.model_fields:
            error(field, f"unknown field {key!r} (known: interval, timeout, failure_threshold)")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            error(field, f"{key!r} must be a positive number")
        elif key == "failure_threshold" and not isinstance(value, int):
            error(field, "'failure_threshold' must be a whole number")


def _check_capability(capability: dict[str, Any], where: str, error: Callable[[str, str], None]) -> None:
    for key in capability:
        if key not in CapabilitySpec.model_fields:
            error(f"{where}.{key}", f"unknown capability field {key!r}")
    if "description" in capability and not isinstance(capability["description"], str):
        error(f"{where}.description", "'description' must be a string")
    binding = capability.get("binding", {})
    if not isinstance(binding, dict):
        error(f"{where}.binding", "'binding' must be an object")
    elif isinstance(binding.get("prompt"), str):
        try:
            _TEMPLATE_ENV.parse(binding["prompt"])
        except TemplateSyntaxError as exc:
            error(f"{where}.binding.prompt", f"template syntax error on line {exc.lineno}: {exc.message}")

    parameters = capability.get("parameters", {})
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        error(f"{where}.parameters", "'parameters' must be an object of parameter name -> schema")
        return
    for param, spec in parameters.items():
        field = f"{where}.parameters.{param}"
        if not isinstance(spec, dict):
            error(field, "a parameter schema must be an object like {type: string, required: true}")
            continue
        kind = spec.get("type", "string")
        if kind not in PARAMETER_TYPES:
            error(f"{field}.type", f"unknown type {kind!r} (known: {', '.join(sorted(PARAMETER_TYPES))})")
        if "required" in spec and not isinstance(spec["required"], bool):
            error(f"{field}.required", "'required' must be true or false")
        if "enum" in spec and spec["enum"] is not None and not isinstance(spec["enum"], list):
            error(f"{field}.enum", "'enum' must be a list of allowed values")
        if (
            "description" in spec
            and spec["description"] is not None
            and not isinstance(spec["description"], str)
        ):
            error(f"{field}.description", "'description' must be a string")
        for key in spec:
            if key not in {"type", "required", "description", "enum", "default"}:
                error(f"{field}.{key}", f"unknown parameter schema field {key!r}")


# -- connectors ---------------------------------------------------------------------------------------------


def make_connector(
    config: ConnectorConfig,
    *,
    llm_provider_factory: Callable[[], LLMProvider] | None = None,
    secrets: Iterable[str] = (),
) -> Connector:
    """Build the connector for a configuration. Implementations are imported here, lazily, so loading the
    registry never pulls in the MCP SDK, psycopg or an LLM client that no agent uses."""
    if config.type == "mcp":
        from agents.connectors.mcp import MCPConnector

        return MCPConnector(config.name, config.config, secrets=secrets)
    if config.type == "sql":
        from agents.connectors.sql import SQLConnector

        return SQLConnector(config.name, config.config, secrets=secrets)
    if config.type == "http":
        from agents.connectors.http import HTTPConnector

        return HTTPConnector(config.name, config.config, secrets=secrets)
    if config.type == "llm":
        from agents.connectors.llm import LLMConnector

        return LLMConnector(
            config.name, config.config, provider_factory=llm_provider_factory, secrets=secrets
        )
    raise AgentConfigError(f"connector {config.name!r} has unknown type {config.type!r}")


def registry_for(settings: Settings) -> Registry:
    """The registry the server runs with: shipped agents, then ``settings.agents_dir``."""
    dirs = [Path(settings.agents_dir)] if settings.agents_dir else []
    return load_registry(dirs, data_dir=settings.data_dir)
