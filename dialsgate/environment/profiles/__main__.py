"""``python -m dialsgate.environment.profiles FOLDER``: what the stand-in script takes from the
image profile in FOLDER, one ``key=value`` line each (``script_values``), read as TOML."""

from __future__ import annotations

import sys
from pathlib import Path

from dialsgate.environment.profiles import load_profile, script_values


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m dialsgate.environment.profiles PROFILE_FOLDER", file=sys.stderr)
        return 2
    try:
        profile = load_profile(Path(argv[0]).resolve())
    except (OSError, KeyError, ValueError) as error:
        print(f"cannot read the image profile in {argv[0]}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for key, value in script_values(profile).items():
        if "\n" in value:
            print(f"the profile's {key} holds a line break", file=sys.stderr)
            return 1
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
