"""The server settings MLServer reads beside the models it serves: ``settings.json`` in the folder
``mlserver start`` is given, i.e. among the CodeUri's files that dismcli builds (MLServer 1.5.0,
``mlserver.cli.serve.load_settings``: ``Settings.parse_file`` when the file is there, else its
defaults). Read as plain bytes, with a cap, never run.
"""

from __future__ import annotations

import json
from pathlib import Path

from dialsgate.plainfiles import NotPlain, read_plain

SETTINGS_FILE = "settings.json"
#: A server's settings are a few lines; a bigger file is not read (MLServer's start says the rest).
SETTINGS_CAP = 2**20
#: ``Settings.parallel_workers`` in MLServer 1.5.0 when settings.json does not set it.
DEFAULT_PARALLEL_WORKERS = 1


def parallel_workers(folder: Path | str) -> int:
    """MLServer's ``parallel_workers`` for a served folder: 0 loads the model in the server's own
    process, any other value in inference-pool workers under the spawn start method. A value
    MLServer would refuse, a file that is not plain or not JSON: the default here, and the served
    model's start reports what MLServer makes of it."""
    try:
        document = json.loads(read_plain(Path(folder) / SETTINGS_FILE, SETTINGS_CAP))
    except (OSError, NotPlain, ValueError, RecursionError):
        return DEFAULT_PARALLEL_WORKERS
    if not isinstance(document, dict):
        return DEFAULT_PARALLEL_WORKERS
    value = document.get("parallel_workers", DEFAULT_PARALLEL_WORKERS)
    # As pydantic 1.10 (MLServer 1.5.0's) reads an int field: int() of what JSON gave, so 0.5
    # and " 0 " are 0; no text longer than its 4,300 characters; anything int() refuses is refused.
    if isinstance(value, str) and len(value) > 4300:
        return DEFAULT_PARALLEL_WORKERS
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_PARALLEL_WORKERS
