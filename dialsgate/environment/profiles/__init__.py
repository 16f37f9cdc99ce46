"""Image profiles: what a DIALS serving image contains (Python version, package set), as data.

One folder per supported image under this package: ``profile.toml`` (names, Python, the stand-in's
base system, import names that differ from their distribution), ``core.txt`` (what every serving environment holds) and
``image-packages.txt`` (the image's full package set, as pip constraints), ``stdlib.txt`` (its
Python's standard library modules). A template ``Image``
without a profile is a gate error naming the supported images, never a silent stand-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent


class UnsupportedImage(LookupError):
    """The template names an image the gate has no profile for."""


def normalise(distribution: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def read_pins(path: Path) -> dict[str, str]:
    """{normalised distribution: version} of a ``name==version`` file (comments ignored)."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


@dataclass(frozen=True)
class ImageProfile:
    name: str
    folder: Path
    images: tuple[str, ...]
    python: str
    core: dict[str, str] = field(repr=False)
    packages: dict[str, str] = field(repr=False)
    import_names: dict[str, str] = field(repr=False)
    stdlib: frozenset[str] = field(repr=False, default=frozenset())
    machine: str = "x86_64"
    glibc: str = "2.17"
    python_origin: str = ""  # how the real image's Python is installed ("conda")
    standin_suite: str = "bookworm"  # the Debian suite of the stand-in's root
    standin_system: str = "Debian 12"  # that system, in words
    core_name: str = "core.txt"  # the files of the profile's folder, as profile.toml names them
    packages_name: str = "image-packages.txt"

    @property
    def server_version(self) -> str | None:
        """MLServer's version in the image (its core package set)."""
        return self.core.get("mlserver")

    @property
    def shortest_image(self) -> str:
        """The image's shortest spelling (``seldonio/mlserver:1.5.0``), for prose."""
        return min(self.images, key=len)

    @property
    def python_minor(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def core_file(self) -> Path:
        return self.folder / self.core_name

    @property
    def packages_file(self) -> Path:
        return self.folder / self.packages_name

    def wheel_platforms(self) -> list[str]:
        """pip ``--platform`` tags of wheels that run in the image (its machine, glibc or older)."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{older}_{self.machine}" for older in range(minor, 4, -1)]
        legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
        return tags + [f"{name}_{self.machine}" for name, needs in legacy.items() if needs <= minor]

    def distribution_of(self, module: str) -> str | None:
        """The image distribution providing ``module`` (dotted), or None when the image has none."""
        parts = module.split(".")
        for length in range(len(parts), 0, -1):
            prefix = ".".join(parts[:length])
            if prefix in self.import_names:
                return normalise(self.import_names[prefix])
        candidate = normalise(parts[0])
        return candidate if candidate in self.packages else None

    def pinned(self, distribution: str) -> str:
        """``name==version`` at the image's version."""
        distribution = normalise(distribution)
        return f"{distribution}=={self.packages[distribution]}"


def load_profile(folder: Path) -> ImageProfile:
    with open(folder / "profile.toml", "rb") as stream:
        data = tomllib.load(stream)
    core = read_pins(folder / data["core"])
    return ImageProfile(
        name=data["name"],
        folder=folder,
        images=tuple(data["images"]),
        python=str(data["python"]),
        core=core,
        # The lock file pins MLServer's dependencies, not MLServer itself: the core completes it.
        packages={**read_pins(folder / data["packages"]), **core},
        import_names=dict(data.get("import_names", {})),
        stdlib=frozenset((folder / data["stdlib"]).read_text().split()),
        machine=str(data.get("machine", "x86_64")),
        glibc=str(data.get("glibc", "2.17")),
        python_origin=str(data.get("python_origin", "")),
        standin_suite=str(data.get("standin", {}).get("suite", "bookworm")),
        standin_system=str(data.get("standin", {}).get("system", "Debian 12")),
        core_name=str(data["core"]),
        packages_name=str(data["packages"]),
    )


def script_values(profile: ImageProfile) -> dict[str, str]:
    """What the stand-in script (``build-standin-image.sh``) takes from a profile, by name."""
    major, minor = profile.python_minor
    return {
        "name": profile.name,
        "python_minor": f"{major}.{minor}",
        "core": str(profile.core_file),
        "packages": str(profile.packages_file),
        "machine": profile.machine,
        "standin_suite": profile.standin_suite,
    }


@cache
def all_profiles() -> tuple[ImageProfile, ...]:
    return tuple(load_profile(folder) for folder in sorted(PROFILES_DIR.iterdir()) if (folder / "profile.toml").is_file())


def profile_for_image(image: str | None) -> ImageProfile:
    """The profile of a template's ``Image``; UnsupportedImage names the supported ones."""
    for profile in all_profiles():
        if image in profile.images:
            return profile
    supported = sorted(name for profile in all_profiles() for name in profile.images)
    raise UnsupportedImage(
        f"the template's Image {image!r} has no image profile in dialsgate (supported: {', '.join(supported)}); "
        f"add one under {PROFILES_DIR} (profile.toml, core.txt, image-packages.txt) to gate models for that image"
    )
