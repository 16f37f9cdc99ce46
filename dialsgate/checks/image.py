"""The serving image: does the template name one we know, and does the folder fit inside it?

The image profile (``dialsgate/environment/profiles``) lists the image's Python and its full package set.
A folder may import the standard library of that Python, any package of the image, and its
own modules; anything else is missing in DIALS, however well it works on the author's laptop.
"""

from __future__ import annotations

from dialsgate.checks.base import CheckFailed, case, check
from dialsgate.checks.subject import Question
from dialsgate.environment.profiles import normalise

#: Installed by venv/pip themselves, not part of what a model can rely on either way.
PACKAGING_TOOLS = {"pip", "setuptools", "wheel"}


@check(kind="failure", concern="template", runs_model_code=False)
def check_image_has_profile(subject) -> None:
    """The template's Image is one the gate knows (Python version and package set)."""
    subject.profile  # noqa: B018  (raises CheckFailed naming the supported images)


@check(kind="failure", concern="packaging", runs_model_code=False)
def check_imports_available_in_image(subject) -> None:
    """Every module the folder (or its model file) imports is in the folder, the stdlib or the image."""
    subject.require_plain_folder()
    needs = subject.needs
    problems = [
        f"{module!r} (imported at {', '.join(where[:3])}) is not in the image {subject.profile.name} "
        f"(neither a package of the image nor a module of the server folder)"
        for module, where in sorted(needs.missing.items())
    ]
    problems += [
        f"{module!r} (imported at {', '.join(where[:3])}) is not in the server folder {subject.contract.code_dir.name}/"
        for module, where in sorted(needs.missing_in_folder.items())
    ]
    problems += [
        f"{module!r} (imported at {', '.join(where[:3])}) is standard library only in a newer Python; "
        f"the image has Python {subject.profile.python}"
        for module, where in sorted(needs.newer_stdlib.items())
    ]
    if problems:
        raise CheckFailed("; ".join(problems))


@check(kind="failure", concern="versions", runs_model_code=False)
def check_serving_environment_matches_image(subject) -> None:
    """Where the model code ran holds the image's Python and exactly its versions.

    In the worker container of a stand-in or the host fallback, every distribution must be the
    profile's, at its version; in the real image, the profile's distributions must be at their
    versions (the image may hold more: conda's own tools)."""
    runtime = subject.runtime
    profile = subject.profile
    found = subject.ask_fresh(installed_question(subject))
    if found.get("failed"):
        raise CheckFailed(f"{runtime.describe()} could not list its packages: {found['error']}")
    problems = []
    if tuple(int(part) for part in found["python"].split(".")[:2]) != profile.python_minor:
        problems.append(f"Python {found['python']}, the image has {profile.python}")
    real_image = runtime.kind == "container" and not runtime.standin
    for name, version in sorted(found["installed"].items()):
        key = normalise(name)
        if key in PACKAGING_TOOLS:
            continue
        pinned = profile.packages.get(key) or profile.core.get(key)
        if pinned is None and not real_image:
            problems.append(f"{name} {version} is not in the image")
        elif pinned is not None and pinned != version:
            problems.append(f"{name} {version}, the image has {pinned}")
    missing = sorted(set(profile.core) - {normalise(name) for name in found["installed"]})
    if missing:
        problems.append(f"the image's core packages {missing} are missing")
    if problems:
        raise CheckFailed(f"{runtime.describe()} is not the image's profile {profile.name}: " + "; ".join(problems))


def installed_question(subject) -> Question:
    """What check_serving_environment_matches_image asks: Python's version and every distribution."""
    subject.runtime  # noqa: B018  (the question is asked where model code runs)
    return Question({"op": "installed"}, "installed")


def cases(contract):
    return [case(check_image_has_profile), case(check_imports_available_in_image)]


def parity_cases(contract):
    return [case(check_serving_environment_matches_image)]
