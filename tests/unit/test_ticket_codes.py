"""Ticket codes signed with Ed25519 (boxoffice.domain.tickets): the format a gate verifies
offline, key ids, rotation and retirement, legacy HMAC codes, and the key configuration."""

from __future__ import annotations

import base64
import re
import uuid

import pytest
import zxingcpp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from boxoffice import errors
from boxoffice.adapters.ticket_pdf import QR_ERROR
from boxoffice.domain.tickets import (
    CODE_CHARS,
    LegacyCode,
    SignedTicket,
    TicketKeys,
    TicketSigner,
    load_public_keys,
    load_signer,
    parse_code,
)
from boxoffice.processes.ticketkeys import main as ticketkeys

SIGNER = TicketSigner.generate()
KEYS = TicketKeys([SIGNER.public_key])
TICKET = uuid.UUID("7c7c0000-0000-4000-8000-000000000001")
EVENT = uuid.UUID("e0e00000-0000-4000-8000-000000000001")
QR_ALPHANUMERIC = re.compile(r"^[0-9A-Z $%*+\-./:]+$")


def test_code_is_167_qr_alphanumeric_characters_naming_the_key() -> None:
    code = SIGNER.code(TICKET, EVENT)

    assert len(code) == CODE_CHARS == 167
    assert QR_ALPHANUMERIC.match(code)
    assert code.startswith(f"BX1.{SIGNER.kid}.")
    assert re.fullmatch(r"[A-Z2-7]{8}", SIGNER.kid)


def test_code_fits_a_version_7_qr_code_at_error_correction_m() -> None:
    """With the ticket documents' encoder and settings (boxoffice.adapters.ticket_pdf)."""
    qr = zxingcpp.create_barcode(
        SIGNER.code(TICKET, EVENT), zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR
    )

    assert qr.ec_level == "M"
    # 45 x 45 modules is version 7 (17 + 4 x 7); the code is in the alphanumeric set, whose
    # denser mode is what keeps it at 7 (in byte mode it would need version 9)
    assert qr.to_image(scale=1, add_quiet_zones=False).shape == (45, 45)


def test_verified_code_says_which_ticket_of_which_event_and_key() -> None:
    assert KEYS.verify(SIGNER.code(TICKET, EVENT)) == SignedTicket(SIGNER.kid, TICKET, EVENT)


def test_signature_is_over_the_documented_message_so_a_gate_can_check_it_alone() -> None:
    """README "How a gate verifies offline", step by step, with nothing but cryptography."""
    code = SIGNER.code(TICKET, EVENT)
    version, kid, payload = code.split(".")
    raw = base64.b32decode(payload + "=" * (-len(payload) % 8))
    ticket, event, signature = raw[:16], raw[16:32], raw[32:]
    jwk = KEYS.jwks()["keys"][0]
    public = base64.urlsafe_b64decode(jwk["x"] + "=")
    key = Ed25519PublicKey.from_public_bytes(public)

    key.verify(signature, f"{version}.{kid}.".encode() + ticket + event)  # raises if wrong
    assert (uuid.UUID(bytes=ticket), uuid.UUID(bytes=event), jwk["kid"]) == (TICKET, EVENT, kid)


@settings(max_examples=300, derandomize=True)
@given(st.integers(0, CODE_CHARS - 1), st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567."))
def test_changing_any_character_makes_the_code_invalid(position: int, replacement: str) -> None:
    code = SIGNER.code(TICKET, EVENT)
    tampered = code[:position] + replacement + code[position + 1 :]
    if tampered == code:
        return
    with pytest.raises(errors.InvalidTicketCode):
        KEYS.verify(tampered)


def test_code_of_another_key_is_refused_even_for_the_same_kid_text() -> None:
    forger = TicketSigner.generate()
    forged = forger.code(TICKET, EVENT)
    with pytest.raises(errors.InvalidTicketCode, match=r"not .*trusted"):
        KEYS.verify(forged)
    relabelled = forged.replace(forger.kid, SIGNER.kid, 1)  # claims to be ours
    with pytest.raises(errors.InvalidTicketCode, match="signature"):
        KEYS.verify(relabelled)


def test_signature_binds_the_event_a_code_cannot_be_moved_to_another_event() -> None:
    code = SIGNER.code(TICKET, EVENT)
    _, kid, payload = code.split(".")
    raw = bytearray(base64.b32decode(payload + "=" * (-len(payload) % 8)))
    raw[16:32] = uuid.uuid4().bytes
    moved = f"BX1.{kid}." + base64.b32encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(errors.InvalidTicketCode):
        KEYS.verify(moved)


def test_rotation_both_keys_verify_until_the_old_one_is_retired() -> None:
    old, new = SIGNER, TicketSigner.generate()
    old_code, new_code = old.code(TICKET, EVENT), new.code(uuid.uuid4(), EVENT)
    rotating = TicketKeys([new.public_key, old.public_key])

    assert rotating.kids == [new.kid, old.kid]
    assert rotating.verify(old_code).kid == old.kid
    assert rotating.verify(new_code).kid == new.kid
    retired = TicketKeys([new.public_key])
    with pytest.raises(errors.InvalidTicketCode, match=old.kid):
        retired.verify(old_code)
    assert retired.verify(new_code).kid == new.kid


def test_jwks_lists_each_key_as_an_ed25519_okp_jwk() -> None:
    assert KEYS.jwks() == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": SIGNER.public_text(),
                "kid": SIGNER.kid,
                "use": "sig",
                "alg": "EdDSA",
            }
        ]
    }


def test_legacy_hmac_codes_are_recognised_by_their_ticket_for_an_online_comparison() -> None:
    ticket = uuid.uuid4()
    head = base64.urlsafe_b64encode(ticket.bytes).decode().rstrip("=")
    legacy = f"{head}.{'m' * 22}"

    assert parse_code(KEYS, legacy) == LegacyCode(ticket, legacy)
    assert isinstance(parse_code(KEYS, SIGNER.code(TICKET, EVENT)), SignedTicket)


@pytest.mark.parametrize(
    "code", ["", ".", "abc", "BX1..", "BX2.AAAAAAAA." + "A" * 154, "x" * 300, "é" * 45]
)
def test_malformed_codes_are_invalid(code: str) -> None:
    with pytest.raises(errors.InvalidTicketCode):
        parse_code(KEYS, code)


# -- configuration -------------------------------------------------------------------------------


def test_signing_key_loads_from_its_seed_or_a_pkcs8_pem() -> None:
    seed = SIGNER.private_text()
    pem = (
        load_signer(seed)
        ._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert load_signer(seed).kid == load_signer(pem).kid == SIGNER.kid


@pytest.mark.parametrize("raw", ["", "   ", "an-hmac-key-of-earlier-versions-0123456789", "AAAA"])
def test_missing_or_non_ed25519_signing_key_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="BOXOFFICE_TICKET_SIGNING_KEY"):
        load_signer(raw)


def test_public_keys_are_a_comma_or_space_separated_list() -> None:
    other = TicketSigner.generate()
    keys = load_public_keys(f" {SIGNER.public_text()},\n{other.public_text()} ")
    assert keys.kids == [SIGNER.kid, other.kid]


@pytest.mark.parametrize("raw", ["", " , ", "not-a-key", SIGNER.private_text() + "AA"])
def test_missing_or_malformed_public_keys_are_a_configuration_error(raw: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="BOXOFFICE_TICKET_PUBLIC_KEYS"):
        load_public_keys(raw)


def test_ticketkeys_tool_makes_a_pair_and_derives_the_public_key(
    capsys: pytest.CaptureFixture[str], tmp_path: pytest.TempPathFactory
) -> None:
    assert ticketkeys(["new"]) == 0
    made = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    key_file = tmp_path / "key"  # type: ignore[operator]
    key_file.write_text(made["private"] + "\n")

    assert ticketkeys(["public", str(key_file)]) == 0
    derived = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert derived == {"public": made["public"], "kid": made["kid"]}
    assert load_signer(made["private"]).kid == made["kid"]
