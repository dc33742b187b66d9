"""Uploaded files behind a small interface. The default keeps them in a local directory,
content-addressed by SHA-256, written through a temporary file and renamed into place
only when complete, so a crash mid-upload never leaves a partial file under its key."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.errors import ProblemError, field_problem

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    key: str
    sha256: str
    size: int


class Storage(Protocol):
    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile: ...

    def path(self, key: str) -> Path: ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> list[str]: ...

    def sweep_partial(self, older_than_s: float) -> int: ...


class LocalStorage:
    """Files under ``root/<sha[:2]>/<sha>``; partial uploads under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _tmp_dir(self) -> Path:
        tmp = self.root / "tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _storage_error(exc) from exc
        return tmp

    async def save(self, chunks: AsyncIterator[bytes], *, max_bytes: int) -> StoredFile:
        # The name says which process writes it, so the janitor can tell a dead
        # upload from one in flight in another process (or on another machine).
        tmp = self._tmp_dir() / f"upload-{os.getpid()}-{time.monotonic_ns()}@{_HOST}"
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise upload_too_large(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            key = f"{sha[:2]}/{sha}"
            final = self.root / key
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # same content uploaded before: keep one copy
                tmp.unlink()
            else:
                os.replace(tmp, final)
            return StoredFile(key, sha, size)
        except OSError as exc:
            raise _storage_error(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return [
            f"{p.parent.name}/{p.name}"
            for p in self.root.glob("??/*")
            if p.is_file() and len(p.name) == 64
        ]

    def sweep_partial(self, older_than_s: float) -> int:
        """Remove temporary files left by uploads that died (e.g. a killed API): at
        once when the process that wrote one is gone from this machine, else once it is
        older than ``older_than_s`` (it may belong to another machine's upload)."""
        tmp = self.root / "tmp"
        if not tmp.exists():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in tmp.iterdir():
            try:
                stale = _writer_is_dead(path.name) or path.stat().st_mtime < cutoff
            except FileNotFoundError:  # finished meanwhile
                continue
            if stale:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


_HOST = socket.gethostname().replace("/", "_")


def _writer_is_dead(name: str) -> bool:
    """Whether a temporary file's writer (``upload-<pid>-<ns>@<host>``) was a process of
    this machine that no longer exists."""
    stem, _, host = name.partition("@")
    parts = stem.split("-")
    if host != _HOST or len(parts) != 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def make_storage(root: Path) -> Storage:
    return LocalStorage(root)


def upload_too_large(max_bytes: int) -> ProblemError:
    return field_problem(
        413,
        "Upload too large",
        f"The upload is larger than the limit of {max_bytes / 2**20:.3g} MiB; it was "
        "rejected while streaming, and nothing was stored.",
        "Raise the limit with the AUXSEL_MAX_UPLOAD_MB setting, or upload less.",
        type_="upload-too-large",
    )


def _storage_error(exc: OSError) -> ProblemError:
    import errno

    if exc.errno == errno.ENOSPC:
        return ProblemError(
            507,
            "Insufficient storage",
            "The server's upload storage is full; nothing was stored. Try again later or "
            "ask an operator to free space.",
            type_="insufficient-storage",
        )
    return ProblemError(
        500,
        "Storage unavailable",
        "The server could not write the upload to its storage; nothing was stored.",
        type_="storage-unavailable",
    )
