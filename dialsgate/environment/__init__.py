"""Where model code runs: the serving image's profiles (Python, package sets), the serving
environment built from them, and the scripts run inside it (the worker, the clean interpreter)."""
