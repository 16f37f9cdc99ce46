"""Where model code runs: the serving image's profiles (Python, package sets), what a folder needs
from them, the runtime interface (``runtime.ModelRuntime``, with the ``--no-container`` host
fallback) and the script run inside a runtime (the worker, the clean interpreter)."""
