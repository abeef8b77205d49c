"""Run inside the test's network namespace: what the DC there says of one account, as JSON.

``python tests/support/netns_probe.py ENV_FILE SAM PASSWORD`` prints
``{"exists", "enabled", "domain_admin", "logon"}``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.ad import SambaDc, _read_env


def main() -> None:
    env_file, sam, password = sys.argv[1:4]
    values = _read_env(Path(env_file))
    dc = SambaDc(
        values,
        admin_password=Path(values["SAMBA_DC_ADMIN_PASSWORD_FILE"]).read_text(),
        ca_pem=Path(values["SAMBA_DC_CA_FILE"]).read_text(),
    )
    with dc.admin() as admin:
        user = admin.find(sam)
        admins = admin.domain_admins_dn().lower()
    shown = {"exists": user is not None, "enabled": bool(user and user.enabled),
             "domain_admin": bool(user and admins in user.member_of),
             "logon": dc.bind(f"{dc.netbios}\\{sam}", password)[0]}  # fmt: skip
    print(json.dumps(shown))


if __name__ == "__main__":
    main()
