"""Security descriptors for the AD tests: deny an ACE, stamp AdminSDHolder by hand.

Windows' self-relative SECURITY_DESCRIPTOR and ACL layouts, read and written through
nTSecurityDescriptor with the LDAP SD-flags control (DACL only), as an administrator would.
https://learn.microsoft.com/windows/win32/secauthz/security-descriptor-control
"""

from __future__ import annotations

import struct
import uuid

from ldap3 import BASE, MODIFY_REPLACE
from ldap3.protocol.microsoft import security_descriptor_control

from support.ad import DcAdmin

DACL_ONLY = 0x4
SE_DACL_PROTECTED = 0x1000
ACL_REVISION_DS = 4
ACCESS_DENIED_OBJECT_ACE = 0x06
READ_PROPERTY = 0x10
ACE_OBJECT_TYPE_PRESENT = 0x1
TOKEN_GROUPS = "b7c69e6d-2cc7-11d2-854e-00a0c983f608"  # schemaIDGUID of tokenGroups
_HEADER = "<BBHIIII"  # revision, sbz1, control, owner, group, sacl, dacl offsets


def sid_bytes(text: str) -> bytes:
    _, revision, authority, *subs = text.split("-")
    return (
        struct.pack("<BB", int(revision), len(subs))
        + int(authority).to_bytes(6, "big")
        + b"".join(struct.pack("<I", int(s)) for s in subs)
    )


def read_dacl(admin: DcAdmin, dn: str) -> bytes:
    done = admin.conn.search(
        dn,
        "(objectClass=*)",
        BASE,
        attributes=["nTSecurityDescriptor"],
        controls=security_descriptor_control(sdflags=DACL_ONLY),
    )
    assert done, admin.conn.result
    return bytes(admin.conn.response[0]["raw_attributes"]["nTSecurityDescriptor"][0])


def write_dacl(admin: DcAdmin, dn: str, descriptor: bytes) -> None:
    done = admin.conn.modify(
        dn,
        {"nTSecurityDescriptor": [(MODIFY_REPLACE, [descriptor])]},
        controls=security_descriptor_control(sdflags=DACL_ONLY),
    )
    assert done, admin.conn.result


def control(descriptor: bytes) -> int:
    return int(struct.unpack_from(_HEADER, descriptor)[2])


def aces(descriptor: bytes) -> bytes:
    """The ACEs of the DACL, as bytes (comparable between two objects)."""
    offset = struct.unpack_from(_HEADER, descriptor)[6]
    size = struct.unpack_from("<BBHHH", descriptor, offset)[2]
    return descriptor[offset + 8 : offset + size]


def _descriptor(control_word: int, ace_bytes: bytes, count: int) -> bytes:
    acl = struct.pack("<BBHHH", ACL_REVISION_DS, 0, 8 + len(ace_bytes), count, 0) + ace_bytes
    return struct.pack(_HEADER, 1, 0, control_word, 0, 0, 0, 20) + acl


def _ace_count(descriptor: bytes) -> int:
    offset = struct.unpack_from(_HEADER, descriptor)[6]
    return int(struct.unpack_from("<BBHHH", descriptor, offset)[3])


def deny_reading(admin: DcAdmin, dn: str, attribute_guid: str, sid: str) -> None:
    """Put "deny <sid> read <attribute>" first in the object's DACL (deny ACEs come first)."""
    body = (
        struct.pack("<II", READ_PROPERTY, ACE_OBJECT_TYPE_PRESENT)
        + uuid.UUID(attribute_guid).bytes_le
        + sid_bytes(sid)
    )
    ace = struct.pack("<BBH", ACCESS_DENIED_OBJECT_ACE, 0, 4 + len(body)) + body
    current = read_dacl(admin, dn)
    write_dacl(
        admin, dn, _descriptor(control(current), ace + aces(current), _ace_count(current) + 1)
    )


ACCESS_ALLOWED_ACE = 0x00
ACCESS_ALLOWED_OBJECT_ACE = 0x05


def allow(
    admin: DcAdmin, dn: str, sid: str, mask: int, *, flags: int = 0, object_type: str = ""
) -> None:
    """Put "allow <sid> <mask>" (on one attribute when ``object_type`` names its GUID) first
    in the object's DACL; the objects the tests delegate on carry no explicit deny ACEs."""
    if object_type:
        body = (
            struct.pack("<II", mask, ACE_OBJECT_TYPE_PRESENT)
            + uuid.UUID(object_type).bytes_le
            + sid_bytes(sid)
        )
        kind = ACCESS_ALLOWED_OBJECT_ACE
    else:
        body, kind = struct.pack("<I", mask) + sid_bytes(sid), ACCESS_ALLOWED_ACE
    ace = struct.pack("<BBH", kind, flags, 4 + len(body)) + body
    current = read_dacl(admin, dn)
    write_dacl(
        admin, dn, _descriptor(control(current), ace + aces(current), _ace_count(current) + 1)
    )


def admin_sd_holder_dn(admin: DcAdmin) -> str:
    return f"CN=AdminSDHolder,CN=System,{admin.base_dn}"


INHERITED_ACE = 0x10


def explicit(ace_bytes: bytes) -> bytes:
    """The same ACEs with INHERITED_ACE cleared: on a protected DACL every ACE is explicit."""
    out, offset = bytearray(), 0
    while offset < len(ace_bytes):
        kind, flags, size = struct.unpack_from("<BBH", ace_bytes, offset)
        out += struct.pack("<BBH", kind, flags & ~INHERITED_ACE, size)
        out += ace_bytes[offset + 4 : offset + size]
        offset += size
    return bytes(out)


def has_inherited_aces(descriptor: bytes) -> bool:
    ace_bytes, offset = aces(descriptor), 0
    while offset < len(ace_bytes):
        _, flags, size = struct.unpack_from("<BBH", ace_bytes, offset)
        if flags & INHERITED_ACE:
            return True
        offset += size
    return False


def sdprop_dacl(admin: DcAdmin) -> bytes:
    """The ACEs SDProp writes: AdminSDHolder's, all explicit."""
    return explicit(aces(read_dacl(admin, admin_sd_holder_dn(admin))))


def stamp_like_sdprop(admin: DcAdmin, dn: str) -> None:
    """What SDProp does to a protected object: AdminSDHolder's DACL, inheritance off,
    adminCount=1.
    https://learn.microsoft.com/windows-server/identity/ad-ds/plan/security-best-practices/appendix-c--protected-accounts-and-groups-in-active-directory
    """
    template = read_dacl(admin, admin_sd_holder_dn(admin))
    word = control(template) | SE_DACL_PROTECTED
    write_dacl(admin, dn, _descriptor(word, explicit(aces(template)), _ace_count(template)))
    admin.set(dn, adminCount="1")
