"""Dependency audit for `make security`: pip-audit over the installed environment.

Fails (exit 1) when a known vulnerability is found. When the vulnerability service cannot be
reached, or answers for no package at all (on machines whose package mirror serves only the
simple index, PyPI's JSON API answers 404 for every package), nothing was audited: that is
printed loudly and, unless JITADMIN_REQUIRE_AUDIT=1, does not fail the build, so `make test`
does not depend on a service outside our control. See docs/security.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    strict = os.environ.get("JITADMIN_REQUIRE_AUDIT") == "1"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        result = subprocess.run(  # noqa: S603 - our own venv's pip-audit, fixed arguments
            [str(BIN / "pip-audit"), "--skip-editable", "--vulnerability-service", "pypi",
             "--progress-spinner", "off", "--format", "json", "--output", str(report)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if not report.exists() or not report.read_text().strip():
            print(f"pip-audit: NOTHING AUDITED (service unreachable): {result.stderr[-400:]}")
            return 1 if strict else 0
        data = json.loads(report.read_text())
    deps = data.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = [d for d in deps if "skip_reason" not in d]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"pip-audit: {dep['name']} {dep['version']}: {ids}")
    print(f"pip-audit: {len(audited)} of {len(deps)} packages audited, {len(vulnerable)} vulnerable")
    if vulnerable:
        return 1
    if not audited:
        print("pip-audit: NOTHING AUDITED: the vulnerability service knew none of the packages")
        return 1 if strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
