"""The parity layer: the checks whose outcome depends on package versions, re-run under the
serving image's own versions (serving/pins.txt: numpy 1.26.4, scikit-learn 1.4.1.post1,
joblib 1.3.2, mlserver 1.5.0 with pydantic 1, ...). Run it with `tox -e parity`."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from dialsgate.checks import parity_checks
from dialsgate.subject import DEFAULT_PINS
from dialsgate.testing import contract_from_options, parametrize_checks


def pytest_generate_tests(metafunc):
    if "parity_check" in metafunc.fixturenames:
        parametrize_checks(metafunc, "parity_check", parity_checks(contract_from_options(metafunc.config)))


def test_environment_matches_serving_pins():
    """Everything below means something only under the image's exact versions."""
    mismatched = []
    for line in DEFAULT_PINS.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if not match:
            continue
        name, pinned = match.groups()
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            mismatched.append(f"{name} {installed} (image: {pinned})")
    assert not mismatched, "not the serving environment (run `tox -e parity`): " + ", ".join(mismatched)


def test_parity(parity_check, subject):
    parity_check(subject)
