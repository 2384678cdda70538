"""How much memory this process may still take: what decides whether a folder dataset is decoded
into memory or streamed from disk (folder.py).

The smaller of the kernel's MemAvailable (free memory plus what the page cache would give back)
and, inside a container, the cgroup's limit less its usage: a container sees the host's
/proc/meminfo, but the kernel kills it at its own limit.
"""

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")  # cgroup v2: memory.max and memory.current


def available_memory() -> int | None:
    """Bytes this process can still use, or None where the system does not say (not Linux)."""
    figures = [f for f in (_meminfo_available(), _cgroup_headroom()) if f is not None]
    return min(figures) if figures else None


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit == "max":  # no limit
            return None
        return max(int(limit) - int((CGROUP / "memory.current").read_text()), 0)
    except (OSError, ValueError):
        return None
