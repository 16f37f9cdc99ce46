"""What confines model code in both containers, the worker and the served one: the same rules.

- the image's user (uid 1000 when the image names none, or root: DIALS never runs models as root),
  all capabilities dropped, no new privileges;
- a memory limit with no swap beyond it, a CPU limit and a process limit (``limits_for``);
- a read-only root filesystem: model code (and MLServer) can write only to ``/tmp``
  (``TMP_SIZE``) and to the image user's home (``HOME_SIZE``), both in memory (counted in the
  memory limit), both gone with the container; nothing reaches this machine's disk.

The home is the image's own (``pwd`` inside the image: ``/home/mlserver`` in the stand-in,
``/opt/mlserver`` in the real image, whose ``NUMBA_CACHE_DIR`` lies there), asked once per
image and process (``image_user``).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dialsgate.container.engine import Engine, ServingError, tmpfs_owner_options
from dialsgate.container.image import STANDIN_LABEL
from dialsgate.contract.resources import declared_resources
from dialsgate.environment.serving import cache_dir
from dialsgate.plainfiles import NotPlain, read_plain

#: Without a plausible memory limit in the template (bytes).
DEFAULT_MEMORY = 4 * 2**30
#: A template limit outside these bounds is not used (bytes).
PLAUSIBLE_MEMORY = (256 * 2**20, 64 * 2**30)
DEFAULT_CPUS = 2.0
#: Processes and threads of the container (MLServer's workers and their threads fit many times).
PIDS_LIMIT = 4096
#: The writable places (in memory, counted in the memory limit): tmpfs sizes.
TMP_SIZE = "256m"
HOME_SIZE = "64m"
#: A home under these is not mounted over (it would hide the image's system or our mounts).
NOT_A_HOME = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/mnt", "/proc", "/run", "/sbin", "/scratch",
              "/sys", "/tmp", "/usr", "/var")  # fmt: skip
#: The home of an image user without a usable one (no passwd entry, ``/``, a system directory).
FALLBACK_HOME = "/home/dialsgate"
#: The most bytes of a kept answer read back (it is a few dozen).
KNOWN_USER_CAP = 4096
#: Run inside the image without its site packages (``-S``: none of their .pth files run).
USER_PROBE = (
    "import json, os, pwd\n"
    "try:\n    home = pwd.getpwuid(os.getuid()).pw_dir\n"
    "except KeyError:\n    home = ''\n"
    "print(json.dumps([os.getuid(), os.getgid(), home]))"
)


def limits_for(contract) -> tuple[int, float, str]:
    """(memory bytes, cpus, why): the template's limits when plausible, else the defaults."""
    declared = declared_resources(contract)
    memory = declared.get("Limits", "memory")
    cpu = declared.get("Limits", "cpu")
    host_cpus = float(os.cpu_count() or 1)
    why = []
    if memory is not None and memory.value is not None and PLAUSIBLE_MEMORY[0] <= memory.value <= PLAUSIBLE_MEMORY[1]:
        memory_bytes = int(memory.value)
        why.append(f"memory {memory.raw} (the template's Limits.memory)")
    else:
        memory_bytes = DEFAULT_MEMORY
        why.append(f"memory {DEFAULT_MEMORY // 2**30} GiB (default)")
    if cpu is not None and cpu.value is not None and 0.1 <= cpu.value:
        cpus = min(float(cpu.value), host_cpus)
        why.append(f"{cpus:g} CPUs (the template's Limits.cpu {cpu.raw})")
    else:
        cpus = min(DEFAULT_CPUS, host_cpus)
        why.append(f"{cpus:g} CPUs (default)")
    return memory_bytes, cpus, ", ".join(why)


def image_facts(image: str, engine: Engine | None = None) -> tuple[str, str, bool]:
    """(id, user, is our stand-in) of a local image, in one inspection. The user is the image's,
    or 1000 when it names none or root (DIALS never runs models as root)."""
    found = (engine or Engine.from_settings()).image_inspect(image)
    if found is None:
        raise ServingError(f"image {image} is not present locally")
    identity, config = found["Id"], found.get("Config") or {}
    user = str(config.get("User") or "")
    if user in ("", "0", "root") or user.startswith(("0:", "root:")):
        user = "1000"
    return identity, user, STANDIN_LABEL in (config.get("Labels") or {})


@dataclass(frozen=True)
class ImageUser:
    """Who model code runs as in an image: ``user`` as given to ``--user``, its ids and its home."""

    user: str
    uid: int
    gid: int
    home: str


def usable_home(home: str) -> str:
    """The home to mount a tmpfs on: the image's, unless it is no place of its own (not an
    absolute normal path at least two levels deep, or under a system directory), then
    ``FALLBACK_HOME``."""
    if not home.startswith("/") or posixpath.normpath(home) != home or home.count("/") < 2:
        return FALLBACK_HOME
    if any(home == top or home.startswith(top + "/") for top in NOT_A_HOME):
        return FALLBACK_HOME
    return home


@cache
def image_user(image_id: str, user: str) -> ImageUser:
    """The uid, gid and home of ``user`` in the image, asked of the image itself (one short
    container: no network, read-only, no capabilities); once per image: the answer is kept in
    the gate's cache, by the image's ID, which names its content."""
    kept = _known_user_file(image_id, user)
    known = _read_known_user(kept)
    if known is not None:
        uid, gid, home = known
    else:
        uid, gid, home = _ask_image_user(image_id, user)
        _keep_known_user(kept, (uid, gid, home))
    if uid <= 0 or gid < 0:
        raise ServingError(f"the user {user!r} of image {image_id[:19]} is uid {uid}: model code never runs as root")
    return ImageUser(user=user, uid=uid, gid=gid, home=usable_home(home))


def _ask_image_user(image_id: str, user: str) -> tuple[int, int, str]:
    run = Engine.from_settings().run(
        "--rm", "--network", "none", "--user", user, "--read-only",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "256m", "--pids-limit", "64",
        image_id, "python", "-I", "-S", "-c", USER_PROBE,
        timeout=120,
    )  # fmt: skip
    found = _user_triple(run.stdout.decode(errors="replace"))
    if found is None:
        raise ServingError(
            f"the user {user!r} of image {image_id[:19]} could not be resolved (exit {run.returncode}): "
            f"{(run.stderr or run.stdout).decode(errors='replace').strip()[-500:]!r}"
        )
    return found


def _user_triple(text: str) -> tuple[int, int, str] | None:
    """(uid, gid, home) from the last line of ``text``, or None when it is not that."""
    try:
        uid, gid, home = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError, TypeError):
        return None
    if isinstance(uid, int) and isinstance(gid, int) and isinstance(home, str) and not isinstance(uid, bool):
        return uid, gid, home
    return None


def _known_user_file(image_id: str, user: str) -> Path:
    digest = hashlib.sha256(f"{image_id}\0{user}".encode()).hexdigest()
    return cache_dir() / "image-users" / f"{digest}.json"


def _read_known_user(path: Path) -> tuple[int, int, str] | None:
    try:
        return _user_triple(read_plain(path, KNOWN_USER_CAP).decode())
    except (OSError, NotPlain, UnicodeDecodeError):
        return None  # not kept yet, or not as written: asked again


def _keep_known_user(path: Path, triple: tuple[int, int, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(list(triple)))
        partial.replace(path)
    except OSError:
        pass  # asked again next time


def writable_places(user: ImageUser, podman: bool) -> dict[str, str]:
    """The tmpfs mounts (path: options) of a container whose root is read-only.

    The home belongs to the image's user, by the options the engine takes for it
    (``engine.tmpfs_owner_options``: Docker's and Podman's differ).
    """
    return {
        "/tmp": f"rw,exec,nosuid,nodev,size={TMP_SIZE},mode=1777",
        user.home: f"rw,exec,nosuid,nodev,size={HOME_SIZE},mode=0700,{tmpfs_owner_options(user.uid, user.gid, podman)}",
    }
