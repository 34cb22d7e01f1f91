"""Event logs as Arrow IPC and Parquet, for analytics, archival and replay checks.

One flat schema, the storage envelope itself (payloads as JSON text, since their shape differs per event
type and a struct column would need a union of every shape):

    execution_id string, seq int64, type string, version int32, step string (nullable),
    recorded_at timestamp[us, UTC], payload string (JSON)

Formats: ``parquet`` (compressed, columnar: archives and analytics engines), ``arrow`` (the Arrow IPC
file format, random access, what pandas/polars/DuckDB open directly) and ``arrow_stream`` (the IPC stream
format, which a reader can consume as it arrives). Writers work in batches, so an export of a long log
holds one batch of Python objects at a time, not the whole log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any, Literal, Protocol, cast

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from orchestrator.core.events import RECORD_ADAPTER, EventRecord, payload_json

__all__ = [
    "MEDIA_TYPES",
    "SCHEMA",
    "ExportFormat",
    "events_to_bytes",
    "read_events",
    "records_to_table",
    "write_events",
]

ExportFormat = Literal["parquet", "arrow", "arrow_stream"]

SCHEMA = pa.schema(
    [
        pa.field("execution_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("step", pa.string(), nullable=True),
        pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)

MEDIA_TYPES: dict[str, str] = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.file",
    "arrow_stream": "application/vnd.apache.arrow.stream",
}

DEFAULT_BATCH_SIZE = 10_000
_PARQUET_MAGIC = b"PAR1"
_ARROW_FILE_MAGIC = b"ARROW1"


class _BatchWriter(Protocol):
    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


def _batch(records: Iterable[EventRecord]) -> pa.RecordBatch:
    execution_ids: list[str] = []
    seqs: list[int] = []
    types: list[str] = []
    versions: list[int] = []
    steps: list[str | None] = []
    recorded: list[Any] = []
    payloads: list[str] = []
    for record in records:
        execution_ids.append(record.execution_id)
        seqs.append(record.seq)
        types.append(record.type)
        versions.append(record.version)
        steps.append(record.step)
        # Naive datetimes are taken as UTC, as the stores do.
        at = record.recorded_at
        recorded.append(at.replace(tzinfo=UTC) if at.tzinfo is None else at)
        payloads.append(payload_json(record))
    columns = [execution_ids, seqs, types, versions, steps, recorded, payloads]
    arrays = [pa.array(values, type=field.type) for values, field in zip(columns, SCHEMA, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def _batches(records: Iterable[EventRecord], batch_size: int) -> Iterator[pa.RecordBatch]:
    chunk: list[EventRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= batch_size:
            yield _batch(chunk)
            chunk = []
    if chunk:
        yield _batch(chunk)


def records_to_table(records: Iterable[EventRecord]) -> pa.Table:
    """All ``records`` as one table (for small logs and tests; exports go through :func:`write_events`)."""
    return pa.Table.from_batches(list(_batches(records, DEFAULT_BATCH_SIZE)), schema=SCHEMA)


def _open_writer(sink: Any, format: ExportFormat) -> _BatchWriter:
    if format == "parquet":
        # zstd: archives are the main use, and it reads back as fast as snappy at a smaller size.
        return cast(_BatchWriter, pq.ParquetWriter(sink, SCHEMA, compression="zstd"))
    if format == "arrow":
        return cast(_BatchWriter, ipc.new_file(sink, SCHEMA))
    if format == "arrow_stream":
        return cast(_BatchWriter, ipc.new_stream(sink, SCHEMA))
    raise ValueError(f"unknown export format {format!r}; use 'parquet', 'arrow' or 'arrow_stream'")


def _write(records: Iterable[EventRecord], sink: Any, format: ExportFormat, batch_size: int) -> int:
    writer = _open_writer(sink, format)
    count = 0
    try:
        for batch in _batches(records, batch_size):
            writer.write_batch(batch)
            count += batch.num_rows
    finally:
        # Closing writes the footer: without it a Parquet or Arrow file is unreadable, even when empty.
        writer.close()
    return count


def write_events(
    records: Iterable[EventRecord],
    path: str | os.PathLike[str],
    format: ExportFormat = "parquet",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """Stream ``records`` into a file at ``path``; returns how many were written.

    Written to a temporary name and renamed, so a reader never opens a half-written archive.
    """
    target = os.fspath(path)
    partial = f"{target}.partial"
    try:
        count = _write(records, partial, format, batch_size)
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return count


def events_to_bytes(
    records: Iterable[EventRecord],
    format: ExportFormat = "arrow_stream",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> bytes:
    """An export in memory, for an HTTP response body (``MEDIA_TYPES[format]`` is its content type)."""
    sink = pa.BufferOutputStream()
    _write(records, sink, format, batch_size)
    return bytes(sink.getvalue().to_pybytes())


def _read_batches(source: Any, head: bytes) -> Iterator[pa.RecordBatch]:
    if head.startswith(_PARQUET_MAGIC):
        parquet = pq.ParquetFile(source)
        yield from parquet.iter_batches(batch_size=DEFAULT_BATCH_SIZE)
    elif head.startswith(_ARROW_FILE_MAGIC):
        reader = ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)
    else:
        yield from ipc.open_stream(source)


def read_events(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Iterator[EventRecord]:
    """Records from a Parquet, Arrow file or Arrow stream export (the format is told by its magic bytes),
    one batch in memory at a time."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        yield from _records(_read_batches(pa.BufferReader(data), data[:8]))
        return
    with pa.OSFile(os.fspath(source), "rb") as file:
        head = file.read(8)
        file.seek(0)
        yield from _records(_read_batches(file, head))


def _records(batches: Iterable[pa.RecordBatch]) -> Iterator[EventRecord]:
    for batch in batches:
        columns = {name: batch.column(name).to_pylist() for name in SCHEMA.names}
        for execution_id, seq, type_, version, step, recorded_at, payload in zip(
            *(columns[name] for name in SCHEMA.names), strict=True
        ):
            # a file from outside: validated, as the records the server builds need not be
            yield RECORD_ADAPTER.validate_python(
                {
                    "execution_id": execution_id,
                    "seq": seq,
                    "type": type_,
                    "version": version,
                    "step": step,
                    "payload": json.loads(payload),
                    "recorded_at": recorded_at.astimezone(UTC),
                }
            )
