"""How requests reach a handler: worker processes in the folder's runtime (the worker container),
the served model over HTTP (requests) and through tritonclient; each answers
``predict(body) -> Outcome``."""
