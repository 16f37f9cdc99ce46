"""The root of every check that runs the handler: it loads, once, in the image's environment.

When it does not, this is the one failure that says why and what to do; every row that needs
the handler is then "not run" naming this check (``Subject.handler``), not a second copy of it.
"""

from __future__ import annotations

from dialsgate.checks.base import CheckFailed, case, check


@check(kind="failure", concern="packaging", runs_model_code=True)
def check_handler_loads(subject) -> None:
    """MLServer can import the Handler from CodeUri and its load() succeeds under the image's packages."""
    _, failure = subject.handler_load
    if failure:
        raise CheckFailed(failure)


def cases(contract):
    return [case(check_handler_loads)]
