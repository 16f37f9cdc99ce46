"""dialsgate: conformance checks and tooling for DIALS MLServer model folders.

Driven by a DISM ``template.yaml``: nothing here knows about a particular model.

    import dialsgate
    verdict = dialsgate.run("template.yaml")                       # every layer, every resource
    verdict = dialsgate.run("template.yaml", dialsgate.RunOptions(layers=("fast",)))
    verdict.passed, [row.check for row in verdict.failures()]
"""

from __future__ import annotations

__all__ = ["RunOptions", "run"]


def __getattr__(name: str):
    if name in __all__:
        # Late: the package root stays the bottom of the layering; the runner is its top.
        from dialsgate.gate import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'dialsgate' has no attribute {name!r}")
