"""How the installed tool is run in these tests: as a model author's shell would run it, on a
machine where the serving image's Python (3.10) cannot be found.

``tool_environment()`` is this process's environment without this repository's test settings
(PYTHON*, TOX_*, VIRTUAL_ENV), with no directory on PATH that holds a ``python3.10`` (pyenv's
shims included) and HOME a fresh folder (so no ``~/.pyenv/versions/3.10.*`` either). The gate's
cache stays this machine's (``DIALSGATE_CACHE_DIR``): it holds images' wheels and compile caches,
no interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dialsgate.environment.serving import CACHE_ENV, cache_dir

REPOSITORY = Path(__file__).resolve().parents[2]
IMAGE_PYTHON = "python3.10"
#: The home directory of every command run here (fresh, shared by the session).
HOME = Path(tempfile.mkdtemp(prefix="dialsgate-installed-home-"))


def tool_environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TOX_", "VIRTUAL_ENV"))}
    environment[CACHE_ENV] = str(cache_dir())
    environment.pop("XDG_CACHE_HOME", None)
    directories = environment.get("PATH", "").split(os.pathsep)
    environment["PATH"] = os.pathsep.join(
        directory for directory in directories if directory and not (Path(directory) / IMAGE_PYTHON).exists()
    )
    environment["HOME"] = str(HOME)
    return environment


def no_image_python_reachable() -> str | None:
    """None when no python3.10 can be found with tool_environment(); else where one is."""
    environment = tool_environment()
    found = shutil.which(IMAGE_PYTHON, path=environment["PATH"])
    if found:
        return found
    pyenv = sorted(Path(environment["HOME"]).glob(".pyenv/versions/3.10*"))
    return str(pyenv[0]) if pyenv else None


def run_installed(command, cwd, timeout=3600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=tool_environment(), capture_output=True, text=True, timeout=timeout)
