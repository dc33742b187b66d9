"""Uploading, reading and deleting data sets."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.data.frames import table_limits as limits
from app.data.profiling import profile
from app.data.storage import Storage, StoredFile
from app.data.tables import (
    clean_filename,
    detect_format,
    read_table,
)
from app.db.models import Dataset
from app.db.repositories import datasets as repo
from app.errors import ProblemError, field_problem, found
from app.settings import Settings

log = logging.getLogger("auxsel.datasets")


def new_id(prefix: str) -> str:
    """Time-ordered, unguessable ids such as ds_0195f3c2a1b2c3d4e5f6a7b8."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class ParsedUpload:
    stored: StoredFile
    filename: str
    format: str
    rows: int
    profile: list[dict[str, object]]


async def store_upload(
    storage: Storage, chunks: AsyncIterator[bytes], settings: Settings
) -> StoredFile:
    return await storage.save(chunks, max_bytes=int(settings.max_upload_mb * 2**20))


def parse_upload(
    storage: Storage, stored: StoredFile, filename: str | None, settings: Settings
) -> ParsedUpload:
    """Read and profile a stored upload, or raise a 422 ProblemError (the caller then
    discards the file)."""
    name = clean_filename(filename)
    path = storage.path(stored.key)
    try:
        fmt = detect_format(path, name)
        frame = read_table(path, fmt, limits(settings))
        columns = profile(frame)
    except ProblemError:
        raise
    except Exception as exc:  # a parser failure we did not anticipate is still the file's
        log.warning("could not read upload %s: %s", name, exc)
        raise field_problem(
            422,
            "Unreadable table",
            f"The file could not be read as CSV or Parquet: {exc}",
            "Upload a CSV (UTF-8) or Parquet file.",
            type_="unreadable-table",
        ) from exc
    return ParsedUpload(stored, name, fmt, len(frame), columns)


def discard_upload(session: Session, storage: Storage, stored: StoredFile) -> None:
    if repo.storage_users(session, stored.key) == 0:
        storage.delete(stored.key)


def discard_quietly(sessions: Callable[[], Session], storage: Storage, stored: StoredFile) -> None:
    """discard_upload for a request that is failing anyway: if the database cannot say
    whether another data set holds the file, it stays for sweep_orphans to remove."""
    try:
        with sessions() as session:
            discard_upload(session, storage, stored)
    except Exception:
        log.warning("could not discard upload %s; the janitor will", stored.key, exc_info=True)


def check_name(name: str | None) -> str | None:
    """The form's display name: a NUL cannot be stored (PostgreSQL refuses it)."""
    if name is not None and "\x00" in name:
        raise field_problem(
            422,
            "Invalid upload",
            "The data set name holds a NUL character.",
            "Remove control characters from the name.",
            type_="validation-error",
            field="name",
        )
    return name


def create(session: Session, owner: str, parsed: ParsedUpload, name: str | None) -> Dataset:
    dataset = Dataset(
        id=new_id("ds"),
        owner=owner,
        name=(name or parsed.filename)[:255],
        filename=parsed.filename,
        format=parsed.format,
        sha256=parsed.stored.sha256,
        size_bytes=parsed.stored.size,
        storage_key=parsed.stored.key,
        rows=parsed.rows,
        profile=parsed.profile,
    )
    session.add(dataset)
    session.flush()
    return dataset


def existing_copy(session: Session, owner: str, stored: StoredFile) -> Dataset | None:
    """The owner's data set with the same bytes (sha256) as this upload: uploading a file
    again returns it instead of storing a copy. Another owner's never counts (each owner
    gets their own data set, though the content-addressed file is stored once)."""
    return repo.by_content(session, owner, stored.sha256)


def require(session: Session, owner: str, dataset_id: str) -> Dataset:
    return found(repo.get(session, owner, dataset_id), "Data set", dataset_id)


def delete(session: Session, storage: Storage, owner: str, dataset_id: str) -> None:
    dataset = require(session, owner, dataset_id)
    if repo.active_jobs(session, dataset.id):
        raise ProblemError(
            409,
            "Data set in use",
            "A queued or running job reads this data set; cancel it or wait until it ends.",
            type_="dataset-in-use",
        )
    key = dataset.storage_key
    repo.keep_identity(session, dataset)  # finished jobs keep its name and sha256
    session.delete(dataset)
    session.flush()
    if repo.storage_users(session, key) == 0:
        storage.delete(key)


def sweep_orphans(session: Session, storage: Storage, grace_s: float = 3600.0) -> int:
    """Remove what a crash mid-upload can leave: partial temporary files, and stored
    files that no data set row references (the API died between store and commit)."""
    removed = storage.sweep_partial(older_than_s=grace_s)
    referenced = repo.all_storage_keys(session)
    cutoff = time.time() - grace_s
    for key in storage.keys():  # noqa: SIM118 - Storage is not a mapping
        path = storage.path(key)
        if key not in referenced and path.stat().st_mtime < cutoff:
            storage.delete(key)
            removed += 1
    return removed
