"""Identity at the edge: API keys, the principal a request acts as, and the tenant it may act for.

Keys look like ``orch_<key_id>_<secret>``: the id (16 hex digits, no ``_``) names the key's row in the
event store's database, the secret (32 random bytes, url-safe base64) proves the caller holds it. The row
keeps only a slow hash of the secret (scrypt with a per-key salt), never the key.

Checking a key on every request (:class:`Authenticator`):

- one indexed read of the key's row, off the event loop, so a revoked key fails on the next request, even
  when another process (``orchestrate keys revoke``) revoked it;
- the slow hash only the first time a key is seen: after that the sha256 of the presented key, remembered
  in memory with the stored hash it was verified against, is compared in constant time;
- ``last_used_at`` written at most once a minute per key, in the background.

Tenancy (:func:`acting_tenant`): a member key acts as its own tenant only, and naming another one
(``X-Tenant-ID`` or ``user.tenant_id``) is ``403 FORBIDDEN``; an admin key acts for any tenant it names,
else its own; with auth off (``open``) the tenant is what the client says, as before keys existed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from orchestrator.core.errors import Forbidden, Unauthenticated
from orchestrator.store.base import ApiKeyRecord, EventStore

log = logging.getLogger(__name__)

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")

KEY_PREFIX = "orch_"
DEFAULT_TENANT = "default"
_KEY_ID_BYTES = 8  # 16 hex digits: short, url-safe, and never an "_", so the key splits unambiguously
_SECRET_BYTES = 32
_MIN_SECRET_CHARS = 43  # 32 bytes in url-safe base64 without padding
_KEY_PATTERN = re.compile(rf"^orch_([0-9A-Za-z-]{{1,64}})_([0-9A-Za-z_-]{{{_MIN_SECRET_CHARS},512}})$")

# scrypt at N=2^14, r=8, p=1: 16 MiB and some tens of milliseconds per check. Paid once per key and
# process (the check is then cached), and by anyone guessing secrets, who gains nothing from a fast hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
TOUCH_INTERVAL_S = 60.0
# Slow checks run on worker threads; a few at a time, so a flood of bad secrets cannot take every thread
# the store reads of other requests need.
_CONCURRENT_SLOW_CHECKS = 2


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``open`` when auth is off: no key, and the tenant is the client's word."""

    key_id: str | None
    tenant_id: str | None
    role: Role
    open: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


OPEN = Principal(key_id=None, tenant_id=None, role="admin", open=True)


# ------------------------------------------------------------------------------------------- keys


def new_key_id() -> str:
    return secrets.token_hex(_KEY_ID_BYTES)


def generate_key(
    *,
    tenant_id: str,
    role: Role = "member",
    name: str = "",
    key_id: str | None = None,
    now: datetime | None = None,
) -> tuple[str, ApiKeyRecord]:
    """A new key and the row to store for it. The key is returned once and kept nowhere."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES!r}, not {role!r}")
    if not tenant_id:
        raise ValueError("a key needs a tenant")
    key_id = key_id or new_key_id()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    key = f"{KEY_PREFIX}{key_id}_{secret}"
    return key, record_for(key, tenant_id=tenant_id, role=role, name=name, now=now)


def record_for(
    key: str, *, tenant_id: str, role: Role, name: str = "", now: datetime | None = None
) -> ApiKeyRecord:
    """The row of a key made elsewhere (``ORCH_ADMIN_KEY``); ``ValueError`` if it is not a key."""
    parsed = parse_key(key)
    if parsed is None:
        raise ValueError(
            f"an API key looks like {KEY_PREFIX}<id>_<secret> with a secret of at least "
            f"{_MIN_SECRET_CHARS} url-safe characters"
        )
    key_id, secret = parsed
    return ApiKeyRecord(
        id=key_id,
        tenant_id=tenant_id,
        role=role,
        name=name,
        key_hash=hash_secret(secret),
        created_at=now or datetime.now(UTC),
    )


def parse_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    match = _KEY_PATTERN.match(key)
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64): the parameters travel with the hash, so they can grow."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key and api_key.strip() else None


# ------------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _Verified:
    presented: bytes  # sha256 of the key as presented
    key_hash: str  # the stored hash it was verified against: a replaced row is verified afresh


class Authenticator:
    """Resolves a presented key to a :class:`Principal` against the store (see the module docstring)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._verified: dict[str, _Verified] = {}  # by key id; only keys that verified, so bounded
        self._touched: dict[str, float] = {}
        self._slow = asyncio.Semaphore(_CONCURRENT_SLOW_CHECKS)
        self._background: set[asyncio.Task[None]] = set()

    async def principal(self, key: str | None) -> Principal:
        if not key:
            raise Unauthenticated(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        parsed = parse_key(key)
        if parsed is None:
            raise Unauthenticated("the API key is not valid")
        key_id, secret = parsed
        record = await asyncio.to_thread(self.store.get_api_key, key_id)
        if record is None or record.revoked:
            self._verified.pop(key_id, None)
            raise Unauthenticated("the API key is not valid")
        presented = hashlib.sha256(key.encode()).digest()
        known = self._verified.get(key_id)
        if (
            known is None
            or known.key_hash != record.key_hash
            or not hmac.compare_digest(known.presented, presented)
        ):
            async with self._slow:
                ok = await asyncio.to_thread(verify, secret, record.key_hash)
            if not ok:
                raise Unauthenticated("the API key is not valid")
            self._verified[key_id] = _Verified(presented=presented, key_hash=record.key_hash)
        self._touch(key_id)
        return Principal(key_id=key_id, tenant_id=record.tenant_id, role=record.role, open=False)

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL_S:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id, datetime.now(UTC)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_touch(self, key_id: str, at: datetime) -> None:
        try:
            await asyncio.to_thread(self.store.touch_api_key, key_id, at)
        except Exception:  # last-used is bookkeeping: never fail or stall a request over it
            log.warning("could not record the use of API key %r", key_id, exc_info=True)


def bootstrap_admin_key(store: EventStore, key: str, *, tenant_id: str = DEFAULT_TENANT) -> bool:
    """Store ``ORCH_ADMIN_KEY`` as an admin key of ``tenant_id``, once: if a key with its id exists
    (even revoked, so a revocation sticks), nothing changes. True when it was created."""
    parsed = parse_key(key)
    if parsed is None:
        raise ValueError(
            f"ORCH_ADMIN_KEY is not an API key: it must look like {KEY_PREFIX}<id>_<secret> "
            f"(letters, digits, '-' in the id; a secret of at least {_MIN_SECRET_CHARS} url-safe "
            "characters); `orchestrate keys create` prints one"
        )
    existing = store.get_api_key(parsed[0])
    if existing is not None:
        if not existing.revoked and not verify(parsed[1], existing.key_hash):
            log.warning("ORCH_ADMIN_KEY: key %r exists with another secret; left as it is", parsed[0])
        return False
    store.create_api_key(record_for(key, tenant_id=tenant_id, role="admin", name="ORCH_ADMIN_KEY"))
    return True


# -------------------------------------------------------------------------------------- tenancy


def acting_tenant(principal: Principal, user: Mapping[str, Any] | None, x_tenant_id: str | None) -> str:
    """The tenant a request acts for (see the module docstring). ``user.tenant_id`` comes first, then
    ``X-Tenant-ID``; a member naming any tenant but its own is refused, never silently corrected."""
    named = [str(t) for t in ((user or {}).get("tenant_id"), x_tenant_id) if t not in (None, "")]
    if principal.open:
        return named[0] if named else DEFAULT_TENANT
    own = principal.tenant_id or DEFAULT_TENANT
    if principal.is_admin:
        return named[0] if named else own
    for tenant in named:
        if tenant != own:
            raise Forbidden(
                f"this key acts for tenant {own!r} only, not {tenant!r}",
                details=[{"field": "tenant_id", "message": f"a member key cannot act for {tenant!r}"}],
            )
    return own


def may_see(principal: Principal, tenant_id: str) -> bool:
    """Whether a principal may see (read, cancel) something of ``tenant_id``: admins and open servers
    see everything, a member only its own tenant's."""
    return principal.open or principal.is_admin or principal.tenant_id == tenant_id


__all__ = [
    "KEY_PREFIX",
    "OPEN",
    "ROLES",
    "Authenticator",
    "Principal",
    "Role",
    "acting_tenant",
    "bootstrap_admin_key",
    "generate_key",
    "hash_secret",
    "may_see",
    "parse_key",
    "presented_key",
    "record_for",
    "verify",
]
