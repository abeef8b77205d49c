"""nTSecurityDescriptor, as far as the adapter needs it: is the DACL protected from inheritance?

AdminSDHolder's background task (SDProp) stamps every member of a protected group with the DACL
of CN=AdminSDHolder,CN=System and sets SE_DACL_PROTECTED, so the object no longer inherits
from its OU. Only the DACL is read and written, with the LDAP SD-flags control, so owner, group
and SACL (which need more rights) are left alone.
https://learn.microsoft.com/openspecs/windows_protocols/ms-adts/3888c2b7-35b9-45b7-afeb-b772aa932dd0
https://learn.microsoft.com/windows/win32/secauthz/security-descriptor-control
"""

from __future__ import annotations

import struct
from typing import Any

from ldap3.protocol.microsoft import security_descriptor_control

LDAP_SERVER_SD_FLAGS_OID = "1.2.840.113556.1.4.801"
DACL_SECURITY_INFORMATION = 0x4
SE_DACL_PROTECTED = 0x1000
# sDRightsEffective: the parts of an object's security descriptor the caller may change.
SD_RIGHTS_DACL = 0x4
_CONTROL = struct.Struct("<H")  # the control word, after the revision and Sbz1 bytes


def dacl_only() -> list[Any]:
    """The SD-flags control (1.2.840.113556.1.4.801) asking for the DACL alone."""
    control: Any = security_descriptor_control(sdflags=DACL_SECURITY_INFORMATION)
    return list(control)


def control_word(descriptor: bytes) -> int:
    if len(descriptor) < 4:
        raise ValueError("not a security descriptor")
    return int(_CONTROL.unpack_from(descriptor, 2)[0])


def dacl_protected(descriptor: bytes) -> bool:
    return bool(control_word(descriptor) & SE_DACL_PROTECTED)


def with_inheritance(descriptor: bytes) -> bytes:
    """The same descriptor with SE_DACL_PROTECTED cleared: the DC adds the inherited ACEs."""
    word = control_word(descriptor) & ~SE_DACL_PROTECTED
    return descriptor[:2] + _CONTROL.pack(word) + descriptor[4:]
