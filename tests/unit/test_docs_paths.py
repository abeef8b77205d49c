"""Every file path the docs name in backticks exists, so the tour never points at a moved file.

A token counts as a path when it holds a ``/`` and ends in a file extension or ``/``, or starts
with a top-level folder of the repository or of ``src/jitadmin``. ``{a,b}`` alternatives are
expanded. ``module/path.symbol`` passes when the module defines ``symbol``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "jitadmin"
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
TOP_FOLDERS = {
    "src", "tests", "docs", "bench", "scripts", "requirements", ".ci",
    "core", "adapters", "services", "db", "entrypoints", "emulators",
}  # fmt: skip
# Named on purpose although absent: a file that was removed, and an HKDF salt.
NOT_PATHS = {"requirements.lock", "jitadmin/mac"}
_EXTENSION = re.compile(r"\.(py|md|sh|toml|html|lock|json|ini|txt)$")
_BARE_FILE = re.compile(r"[\w.-]+\.(py|md|sh|toml|lock)")


def _expand(token: str) -> list[str]:
    group = re.search(r"\{([^{}]*)\}", token)
    if group is None:
        return [token]
    head, tail = token[: group.start()], token[group.end() :]
    return [path for alt in group.group(1).split(",") for path in _expand(head + alt + tail)]


def _looks_like_path(token: str) -> bool:
    if token.startswith(("/", "http", "{", "$", "-", ".")) or any(c in token for c in ":=*<"):
        return False
    if "/" not in token:
        return bool(_BARE_FILE.fullmatch(token))
    return bool(_EXTENSION.search(token) or token.endswith("/")) or (
        token.partition("/")[0] in TOP_FOLDERS
    )


def _exists(path: str, file_names: set[str]) -> bool:
    if "/" not in path:
        return path in file_names
    bases = (ROOT, PACKAGE, ROOT / "src", ROOT / "docs")
    if any((base / path).exists() for base in bases):
        return True
    module, _, symbol = path.rpartition(".")
    for base in (PACKAGE, ROOT):
        if (base / f"{path}.py").exists():
            return True
        source = base / f"{module}.py"
        definition = rf"^\s*(def|class) {re.escape(symbol)}\b|^{re.escape(symbol)}\s*[:=]"
        if source.exists() and re.search(definition, source.read_text(), re.MULTILINE):
            return True
    return False


def test_every_backticked_path_in_the_docs_exists() -> None:
    folders = [ROOT / name for name in sorted(TOP_FOLDERS) if (ROOT / name).is_dir()]
    file_names = {p.name for folder in folders for p in folder.rglob("*")}
    file_names |= {p.name for p in ROOT.iterdir()}
    checked, missing = 0, []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for raw in re.findall(r"`([^`\s]+)`", line):
                token = raw.rstrip(".,;:")
                if token in NOT_PATHS or not _looks_like_path(token):
                    continue
                for path in _expand(token):
                    checked += 1
                    if not _exists(path, file_names):
                        missing.append(f"{doc.relative_to(ROOT)}:{number}: {path}")
    assert checked > 100, "the docs name fewer paths than expected: is the pattern broken?"
    assert missing == []
