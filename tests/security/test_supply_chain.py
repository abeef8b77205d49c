"""Supply chain: everything jitadmin installs comes from a hash-locked file (issue 12 item 13).

requirements/runtime.lock is the production install and holds no test or development tool;
requirements/dev.lock adds the `dev` extra at the same versions; requirements/pip.lock pins the
installer and the build backend. Each entry is `name==version` with the sha256 of its files, so
`pip install --require-hashes` refuses a re-uploaded or substituted file. The checks are plain
functions, run on the real files and on broken samples (so each check is seen to fail).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
LOCKS = ("runtime.lock", "dev.lock", "pip.lock")
# Never part of a runtime install, whatever the dev extra says today.
TEST_TOOLS = frozenset({
    "pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "import-linter", "bandit",
    "pip-audit", "schemathesis", "playwright", "py-spy", "uv", "pip-tools", "coverage",
})  # fmt: skip
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)"
                  r"(?:\s*;\s*(?P<marker>.+))?")  # fmt: skip
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str
    hashes: frozenset[str]


def parse_lock(text: str) -> tuple[dict[str, Pin], list[str]]:
    """The pins by canonical name, and one problem per entry that is not `name==version` with
    sha256 hashes only (no option, URL, extra, range or wildcard)."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    for entry in _entries(text):
        requirement, _, hash_part = entry.partition(" --hash=")
        hashes = ("--hash=" + hash_part).split() if hash_part else []
        match = _PIN.fullmatch(requirement.strip())
        if match is None or "*" in requirement:
            problems.append(f"not pinned with ==: {entry[:80]}")
            continue
        if not hashes or not all(_HASH.fullmatch(h) for h in hashes):
            problems.append(f"no sha256 --hash: {entry[:80]}")
            continue
        name = canonicalize_name(match["name"])
        if name in pins:
            problems.append(f"listed twice: {name}")
        pins[name] = Pin(name, match["version"], frozenset(hashes))
    return pins, problems


def _entries(text: str) -> Iterable[str]:
    """Logical lines (backslash continuations joined), comments and blank lines dropped."""
    current = ""
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()
        continued = line.endswith("\\")
        part = line.removesuffix("\\").strip()
        current = f"{current} {part}".strip()
        if not continued and current:
            yield current
            current = ""
    if current:
        yield current


def forbidden_in_runtime(pins: Mapping[str, Pin], dev_only: Iterable[str]) -> list[str]:
    forbidden = TEST_TOOLS | {canonicalize_name(n) for n in dev_only}
    return sorted(set(pins) & forbidden)


def unlocked(requirements: Iterable[Requirement], pins: Mapping[str, Pin]) -> list[str]:
    """Requirements the lock misses or pins outside the specifier; also the packages that each
    requested extra pulls in (read from the installed distribution's metadata)."""
    missing = []
    for req in requirements:
        pin = pins.get(canonicalize_name(req.name))
        if pin is None or not req.specifier.contains(pin.version, prereleases=True):
            missing.append(str(req))
            continue
        missing += [f"{req} (extra pulls {sub.name})" for sub in _extra_requirements(req)
                    if canonicalize_name(sub.name) not in pins]  # fmt: skip
    return missing


def _extra_requirements(req: Requirement) -> list[Requirement]:
    if not req.extras:
        return []
    subs = [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
    return [s for s in subs if s.marker is not None
            and any(s.marker.evaluate({"extra": e}) for e in req.extras)
            and not s.marker.evaluate({"extra": ""})]  # fmt: skip


def disagreements(locks: Mapping[str, Mapping[str, Pin]]) -> list[str]:
    """Packages that two lock files pin to different versions or different hash sets."""
    seen: dict[str, tuple[str, Pin]] = {}
    found = []
    for lock_name, pins in locks.items():
        for name, pin in pins.items():
            first = seen.setdefault(name, (lock_name, pin))
            if first[1] != pin:
                found.append(f"{name}: {first[0]} {first[1].version}, {lock_name} {pin.version}")
    return found


def unhashed_installs(makefile: str) -> list[str]:
    """Makefile lines that run `pip install` without --require-hashes, unless they install
    only the local project with --no-index --no-deps --no-build-isolation (nothing fetched)."""
    local_only = ("--no-index", "--no-deps", "--no-build-isolation")
    return [line.strip() for line in makefile.splitlines()
            if "pip install" in line and "--require-hashes" not in line
            and not all(flag in line for flag in local_only)]  # fmt: skip


def _load(name: str) -> dict[str, Pin]:
    pins, problems = parse_lock((REQUIREMENTS / name).read_text())
    assert problems == [], f"{name}: {problems}"
    return pins


def _project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data, dict)
    return data


def _dependencies() -> list[Requirement]:
    project = _project()["project"]
    assert isinstance(project, dict)
    return [Requirement(r) for r in project["dependencies"]]


def _dev_extra() -> list[Requirement]:
    project = _project()["project"]
    assert isinstance(project, dict)
    return [Requirement(r) for r in project["optional-dependencies"]["dev"]]


@pytest.mark.parametrize("lock", LOCKS)
def test_every_lock_entry_is_pinned_with_hashes(lock: str) -> None:
    pins, problems = parse_lock((REQUIREMENTS / lock).read_text())
    assert problems == []
    assert pins, f"{lock} pins nothing"


def test_runtime_lock_has_no_test_or_development_tool() -> None:
    runtime_names = {canonicalize_name(r.name) for r in _dependencies()}
    dev_only = [r.name for r in _dev_extra() if canonicalize_name(r.name) not in runtime_names]
    assert forbidden_in_runtime(_load("runtime.lock"), dev_only) == []


def test_every_runtime_dependency_is_in_the_runtime_lock() -> None:
    assert unlocked(_dependencies(), _load("runtime.lock")) == []


def test_every_dev_dependency_is_in_the_dev_lock() -> None:
    assert unlocked(_dependencies() + _dev_extra(), _load("dev.lock")) == []


def test_the_locks_agree_and_runtime_is_part_of_dev() -> None:
    locks = {name: _load(name) for name in LOCKS}
    assert disagreements(locks) == []
    assert sorted(set(locks["runtime.lock"]) - set(locks["dev.lock"])) == []


def test_pip_lock_pins_the_installer_and_the_build_backend() -> None:
    pins = _load("pip.lock")
    assert {"pip", "setuptools"} <= set(pins)
    build_system = _project()["build-system"]
    assert isinstance(build_system, dict)
    assert unlocked((Requirement(r) for r in build_system["requires"]), pins) == []


def test_makefile_installs_only_from_hashed_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert unhashed_installs(makefile) == []
    for lock in LOCKS:
        assert f"requirements/{lock}" in makefile


# The same checks, shown to fail on what they exist to refuse.
SHA = "--hash=sha256:" + "a" * 64


@pytest.mark.parametrize(
    "line",
    [
        "fastapi>=0.115 " + SHA,  # a range
        "fastapi==0.* " + SHA,  # a wildcard
        "fastapi==0.165.0",  # no hash
        "fastapi==0.165.0 --hash=md5:abc",  # not sha256
        "fastapi==0.165.0 --hash=sha256:abc",  # truncated
        "fastapi @ https://example.invalid/fastapi.whl " + SHA,  # a URL
        "-e git+https://example.invalid/x.git#egg=x",
        "psycopg[binary]==3.3.9 " + SHA,  # an extra (its packages must be listed themselves)
    ],
)
def test_parse_lock_refuses_unpinned_or_unhashed_entries(line: str) -> None:
    pins, problems = parse_lock(f"ok==1.0 \\\n    {SHA}\n    # via x\n{line}\n")
    assert list(pins) == ["ok"]
    assert len(problems) == 1


def test_parse_lock_refuses_a_package_listed_twice() -> None:
    _, problems = parse_lock(f"ok==1.0 {SHA}\nOK==1.1 {SHA}\n")
    assert problems == ["listed twice: ok"]


def test_checks_see_a_test_tool_a_missing_dependency_and_a_version_skew() -> None:
    pin = Pin("pytest", "9.2.0", frozenset({SHA}))
    assert forbidden_in_runtime({"pytest": pin}, []) == ["pytest"]
    assert forbidden_in_runtime({"sortedcontainers": pin}, ["SortedContainers"]) == [
        "sortedcontainers"
    ]
    assert unlocked([Requirement("pytest>=10")], {"pytest": pin}) == ["pytest>=10"]
    assert unlocked([Requirement("ruff")], {"pytest": pin}) == ["ruff"]
    newer = Pin("pytest", "9.3.0", frozenset({SHA}))
    other_hash = Pin("pytest", "9.2.0", frozenset({SHA.replace("a", "b")}))
    assert len(disagreements({"a": {"pytest": pin}, "b": {"pytest": newer}})) == 1
    assert len(disagreements({"a": {"pytest": pin}, "b": {"pytest": other_hash}})) == 1


def test_unhashed_installs_finds_a_plain_pip_install() -> None:
    makefile = (
        "\t$(BIN)/python -m pip install --quiet --upgrade pip\n"
        "\t$(BIN)/python -m pip install --require-hashes -r requirements/dev.lock\n"
        "\t$(BIN)/python -m pip install --no-deps -e .\n"
        "\t$(BIN)/python -m pip install --no-index --no-deps --no-build-isolation -e .\n"
    )
    assert len(unhashed_installs(makefile)) == 2
