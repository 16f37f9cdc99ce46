"""The serving container's peak memory (its cgroup), against the template's memory limit."""

from __future__ import annotations

from dataclasses import dataclass

from dialsgate.container.engine import Engine, ServingError


@dataclass(frozen=True)
class PeakMemory:
    """The most memory the container's cgroup has used since it started."""

    bytes: int
    source: str  # where the figure was read

    @property
    def mib(self) -> float:
        return self.bytes / 2**20


#: cgroup files holding the peak, seen from inside the container (v2 first; kernel >= 5.19 for v2).
CGROUP_PEAK_FILES = ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")


def container_peak_memory(name: str, engine: Engine | None = None) -> PeakMemory:
    """Peak memory of a running container (by name), from its cgroup, read inside it:

    1. ``/sys/fs/cgroup/memory.peak``: cgroup v2 (kernel >= 5.19);
    2. ``/sys/fs/cgroup/memory/memory.max_usage_in_bytes``: cgroup v1.

    The cgroup counts everything the container's processes use, page cache included (as the
    kernel's OOM killer and a Kubernetes memory limit do). Raises ServingError naming what was tried.
    """
    engine = engine or Engine.from_settings()
    tried = []
    for path in CGROUP_PEAK_FILES:
        try:
            result = engine.exec(name, ["cat", path], timeout=30)
        except ServingError as error:
            tried.append(f"cat {path}: {error}")
            continue
        text = result.stdout[:64].decode(errors="replace").strip()
        if result.returncode == 0 and text.isdigit():
            return PeakMemory(int(text), f"{path} in the container")
        tried.append(f"cat {path}: exit {result.returncode} {text[:120]!r}")
    raise ServingError("cannot read the container's peak memory; tried: " + "; ".join(tried))
