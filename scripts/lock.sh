#!/usr/bin/env bash
# Regenerates the hash-locked requirement files from pyproject.toml (`make lock`;
# `make lock UPGRADE=1` moves every package to its newest allowed version).
#
#   requirements/dev.lock      runtime + the `dev` extra (what `make install` installs)
#   requirements/runtime.lock  [project.dependencies] only, at dev.lock's versions
#   requirements/pip.lock      pip and setuptools (installer and build backend), at dev.lock's versions
#
# dev.lock is resolved first and the other two are constrained to it, so a package has the same
# version in every file. Without UPGRADE, versions already in a lock are kept where pyproject.toml
# still allows them. Every entry carries the sha256 of every file PyPI has for that version;
# `pip install --require-hashes` refuses anything else. tests/security/test_supply_chain.py checks
# the result.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
common=(--universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock")
upgrade=()
if [ "${UPGRADE:-}" = 1 ]; then upgrade=(--upgrade); fi

"$UV" pip compile pyproject.toml --extra dev "${upgrade[@]}" "${common[@]}" -o requirements/dev.lock
"$UV" pip compile pyproject.toml -c requirements/dev.lock "${common[@]}" -o requirements/runtime.lock
"$UV" pip compile requirements/pip.in -c requirements/dev.lock "${upgrade[@]}" "${common[@]}" \
  -o requirements/pip.lock
