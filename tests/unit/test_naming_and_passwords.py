from __future__ import annotations

import re

import pytest

from jitadmin.core import naming
from jitadmin.core.errors import ValidationFailedError
from jitadmin.core.passwords import (
    CLASSES,
    DEFAULT_LENGTH,
    LOWER,
    character_classes,
    check_password,
    generate_password,
    name_tokens,
)

LOOKALIKES = set("0Oo1lI|5S2Z")


def test_rewst_style_ad_name_when_it_fits() -> None:
    assert naming.ad_sam_account_name("Example.User@msp.example", "pedro") == "example.user-pedro"


def test_long_ad_name_is_cut_to_20_with_a_stable_hash() -> None:
    sam = naming.ad_sam_account_name("example.user@msp.example", "pedroaviary")
    assert len(sam) <= 20
    assert re.fullmatch(r"example.user-[0-9a-f]{6}", sam)
    assert sam == naming.ad_sam_account_name("Example.User@msp.example", "PedroAviary")
    assert sam != naming.ad_sam_account_name("example.user@msp.example", "northwind-traders")
    assert (
        naming.ad_account_name("example.user@msp.example", "pedroaviary")
        == "example.user-pedroaviary"
    )


def test_ad_name_drops_forbidden_characters() -> None:
    sam = naming.ad_sam_account_name('we"ird/[na]me@x', "p")
    assert not set(sam) & set('"/\\[]:;|=,+*?<>')


def test_m365_upn_is_per_grant_and_on_the_given_domain() -> None:
    upn = naming.m365_user_principal_name(
        "Example.User@msp.example", "3f2a9c1e-0000", "Pedro.onmicrosoft.com"
    )
    assert upn == "jit-example.user-3f2a9c@pedro.onmicrosoft.com"
    assert len(naming.m365_mail_nickname("x" * 200 + "@a", "abcdef12")) <= naming.MAIL_NICKNAME_MAX


def test_runs_of_dots_collapse_in_generated_aliases() -> None:
    """Entra refuses ".." in the part before @ (also once other characters are dropped)."""
    assert naming.requester_local_part("Ex..ample...User@msp.example") == "ex.ample.user"
    assert naming.requester_local_part("a.\u00e9.b@msp.example") == "a.b"
    assert ".." not in naming.m365_mail_nickname("..x..y..@msp.example", "abcdef12")


def test_requester_without_usable_characters_still_gets_a_name() -> None:
    assert naming.requester_local_part("ÄÖÜ@msp.example") == "tech"


@pytest.mark.parametrize("_", range(200))
def test_generated_passwords_meet_every_rule(_: int) -> None:
    password = generate_password()
    assert len(password) == DEFAULT_LENGTH
    assert all(any(c in cls for c in password) for cls in CLASSES)
    assert not set(password) & LOOKALIKES
    assert character_classes(password) == 4
    check_password(password)


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(100)}) == 100


def test_too_short_generation_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        generate_password(12)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Short1!", "16 to 128"),
        ("alllowercaseletters", "three of"),
        ("Pässwörd-1234567890", "ASCII"),
    ],
)
def test_weak_chosen_passwords_are_refused_without_echoing_them(password: str, rule: str) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        check_password(password)
    assert rule in str(caught.value)
    assert password not in str(caught.value)


def test_chosen_password_must_not_contain_the_account_name() -> None:
    with pytest.raises(ValidationFailedError, match="account name"):
        check_password("Xx#jit-alice-abc123!!", account_name="jit-alice-abc123")


def test_names_split_into_the_tokens_windows_checks() -> None:
    """Microsoft's example: "Erin M. Hagens" gives "Erin" and "Hagens"; "M" is too short.
    https://learn.microsoft.com/windows/win32/secmgmt/strong-password-enforcement-and-passfilt-dll
    """
    assert name_tokens("Erin M. Hagens") == {"erin", "hagens"}
    assert name_tokens("example.user-pedroaviary (jitadmin)") == {
        "example", "user", "pedroaviary", "(jitadmin)",
    }  # fmt: skip
    assert name_tokens("a_b#cd,efg\thij") == {"efg", "hij"}


def test_chosen_password_must_not_contain_a_part_of_the_names() -> None:
    names = ("example.user", "example.user-pedroaviary", "pedroaviary")
    for password in ("Xx#7-PedroAviary-kq4!", "Kq4!mmUSERzz-77#wx"):
        with pytest.raises(ValidationFailedError, match="3 or more characters") as caught:
            check_password(password, names=names)
        assert password not in str(caught.value)
    # Parts of a token are not checked, as on Windows.
    assert check_password("Xx#7-Pedro-Aviar-kq4!", names=names)


def test_generated_passwords_avoid_the_given_tokens() -> None:
    # Every run of three lower-case letters is forbidden: about half the draws contain one,
    # so this goes through the redraw many times.
    triples = [a + b + c for a in LOWER for b in LOWER for c in LOWER]
    for _ in range(30):
        password = generate_password(avoid=triples)
        assert not re.search(f"[{LOWER}]{{3}}", password)
