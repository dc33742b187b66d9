"""Pieces the benchmarks share: what they ran on, where their reports are written, and
how their options take lists."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def comma_list(text: str) -> tuple[str, ...]:
    """An option's comma-separated names, trimmed, empty ones left out."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what platform knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the ``heading`` section (up to the next level-2 heading) of the markdown
    file ``path`` with ``text``, or append it."""
    old = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else f"{old}\n{text}"
    path.write_text(new.rstrip("\n") + "\n")
