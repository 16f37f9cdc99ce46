"""How requests reach a handler: the worker in its serving environment, the served model over
HTTP (requests) and through tritonclient; each answers ``predict(body) -> Outcome``."""
