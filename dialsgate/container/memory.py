"""The serving container's peak memory (its cgroup), against the template's memory limit."""

from __future__ import annotations

from dataclasses import dataclass

from dialsgate.container.engine import ServingError


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


def _docker_container(container):
    """The docker SDK container behind a testcontainers DockerContainer (or the SDK object itself)."""
    getter = getattr(container, "get_wrapped_container", None)
    return getter() if getter is not None else container


def container_peak_memory(container) -> PeakMemory:
    """Peak memory of a running container, from its cgroup.

    1. ``docker stats`` ``memory_stats.max_usage``: cgroup v1 engines report it (v2 engines do not);
    2. ``cat /sys/fs/cgroup/memory.peak`` inside the container: cgroup v2 (kernel >= 5.19);
    3. ``cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes`` inside it: cgroup v1 without stats.

    The cgroup counts everything the container's processes use, page cache included (as the
    kernel's OOM killer and a Kubernetes memory limit do). Raises ServingError naming what was tried.
    """
    wrapped = _docker_container(container)
    tried = []
    try:
        stats = wrapped.stats(stream=False, one_shot=True)
    except TypeError:  # docker SDK without one_shot
        stats = wrapped.stats(stream=False)
    except Exception as error:
        stats = {}
        tried.append(f"docker stats: {type(error).__name__}: {error}")
    max_usage = (stats.get("memory_stats") or {}).get("max_usage")
    if isinstance(max_usage, int) and max_usage > 0:
        return PeakMemory(max_usage, "docker stats memory_stats.max_usage (cgroup v1)")
    tried.append("docker stats: no memory_stats.max_usage (a cgroup v2 engine)")
    for path in CGROUP_PEAK_FILES:
        try:
            result = wrapped.exec_run(["cat", path], stdout=True, stderr=True)
        except Exception as error:
            tried.append(f"cat {path}: {type(error).__name__}: {error}")
            continue
        text = result.output.decode(errors="replace").strip() if result.output else ""
        if result.exit_code == 0 and text.isdigit():
            return PeakMemory(int(text), f"{path} in the container")
        tried.append(f"cat {path}: exit {result.exit_code} {text[:120]!r}")
    raise ServingError("cannot read the container's peak memory; tried: " + "; ".join(tried))
