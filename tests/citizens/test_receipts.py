"""Consent receipts: Kantara fields from the catalog, Ed25519 signature, tampering detected."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from civicguard.citizens.consent import receipt_context
from civicguard.citizens.receipts import (
    REQUIRED,
    ReceiptError,
    ReceiptSigner,
    load_public_key,
    parse_receipt,
    public_key_pem,
    verify_receipt,
)
from civicguard.platform import Platform
from civicguard.privacy.keys import MemoryKeyStore

from .conftest import APP_STREAM

CITIZEN = "CURP-GAMA800101HDFRRN09"


@pytest.fixture
def granted(platform: Platform) -> dict[str, Any]:
    """The citizen's copy of a grant receipt."""
    return platform.citizens.consent.grant(CITIZEN, APP_STREAM).receipt


def test_a_grant_receipt_carries_the_kantara_fields_from_the_catalog(
    platform: Platform, granted: dict[str, Any]
) -> None:
    catalog = platform.catalog
    stream = catalog.stream(APP_STREAM)
    assert set(REQUIRED) <= set(granted)
    assert granted["version"] == "KI-CR-v1.1.0"
    assert granted["jurisdiction"] == catalog.jurisdiction == "MX"
    assert granted["consentTimestamp"] == int(platform.clock.now())
    assert granted["piiPrincipalId"] == CITIZEN
    (controller,) = granted["piiControllers"]
    assert controller["piiController"] in catalog.controller
    assert controller["email"] == "dpo@example.invalid"
    (service,) = granted["services"]
    assert service["service"] == stream.title
    assert [p["purposeCategory"] for p in service["purposes"]] == [[p] for p in stream.purposes]
    purpose = service["purposes"][0]
    assert purpose["primaryPurpose"] is True
    assert purpose["consentType"] == "EXPLICIT"
    assert "citizen_id" in purpose["piiCategory"] and "location" in purpose["piiCategory"]
    assert "2 days" in purpose["termination"]
    assert purpose["thirdPartyDisclosure"] is False
    assert granted["sensitive"] is False and granted["spiCat"] == []
    assert granted["x-civicguard"]["action"] == "grant"
    verify_receipt(granted, platform.citizens.signer.public_key)


def test_the_stored_copy_names_the_handle_and_verifies_too(
    platform: Platform, granted: dict[str, Any]
) -> None:
    citizens = platform.citizens
    handle = citizens.index.handle(CITIZEN)
    (row,) = citizens.consent.consents.receipts(handle)
    assert CITIZEN.encode() not in bytes(row["document_sealed"])
    opened = citizens.vault.open(handle, bytes(row["document_sealed"]), receipt_context(row["id"]))
    assert opened is not None
    record = orjson.loads(opened)
    assert record["piiPrincipalId"] == handle != CITIZEN
    assert record["consentReceiptID"] == granted["consentReceiptID"]
    verify_receipt(record, citizens.signer.public_key)


def test_the_receipt_survives_a_round_trip_through_a_file(granted: dict[str, Any]) -> None:
    again = parse_receipt(orjson.dumps(granted, option=orjson.OPT_INDENT_2))
    verify_receipt(again, load_public_key(granted["publicKey"].encode()))


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list) and node:
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


def _changed(value: Any, salt: str) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 + len(salt)
    if isinstance(value, str):
        return value + (salt or "x")
    if isinstance(value, list):
        return [salt or "x"]
    raise AssertionError(f"unexpected leaf {value!r}")


RECEIPT = ReceiptSigner(MemoryKeyStore())


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    """A receipt signed by a throwaway key, built the way the registry builds them."""
    from civicguard.catalog.loader import demo_catalog
    from civicguard.citizens.receipts import build_receipt

    catalog = demo_catalog()
    return RECEIPT.sign(
        build_receipt(
            catalog=catalog,
            stream=catalog.stream(APP_STREAM),
            action="grant",
            purposes=list(catalog.stream(APP_STREAM).purposes),
            principal_id=CITIZEN,
            at=1_790_000_000,
            receipt_id="0b6f3e8e-5d0c-4a53-9b7f-2d5d3c1c6b11",
            collection_method="test",
            public_key=RECEIPT.public_pem,
        )
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), salt=st.text(max_size=3))
def test_changing_any_field_breaks_verification(
    sample: dict[str, Any], data: st.DataObject, salt: str
) -> None:
    verify_receipt(sample, RECEIPT.public_key)
    paths = [p for p in _leaves(sample) if p[0] != "signature"]
    path = data.draw(st.sampled_from(paths))
    tampered = copy.deepcopy(sample)
    node = tampered
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _changed(node[path[-1]], salt)
    with pytest.raises(ReceiptError):
        verify_receipt(tampered, RECEIPT.public_key)


@pytest.mark.parametrize(
    "path", [("piiPrincipalId",), ("services", 0, "purposes", 0, "termination")]
)
def test_a_well_formed_change_is_caught_by_the_signature(
    sample: dict[str, Any], path: tuple[Any, ...]
) -> None:
    tampered = copy.deepcopy(sample)
    node = tampered
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "someone else"
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(tampered, RECEIPT.public_key)


def test_a_receipt_checked_against_another_key_is_refused(sample: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ReceiptError, match="wrong key"):
        verify_receipt(sample, other)


def test_a_signature_by_another_key_under_our_key_id_is_refused(sample: dict[str, Any]) -> None:
    forger = ReceiptSigner(MemoryKeyStore())
    forged = forger.sign(sample)
    forged["signature"]["kid"] = RECEIPT.kid
    with pytest.raises(ReceiptError, match="bad signature"):
        verify_receipt(forged, RECEIPT.public_key)


@pytest.mark.parametrize("field", [*REQUIRED, "signature"])
def test_a_missing_field_is_named(sample: dict[str, Any], field: str) -> None:
    broken = {k: v for k, v in sample.items() if k != field}
    with pytest.raises(ReceiptError, match=f"missing field.*{field}"):
        verify_receipt(broken, RECEIPT.public_key)


@pytest.mark.parametrize(
    ("data", "problem"), [(b"{not json", "not JSON"), (b"[1, 2]", "not a JSON object")]
)
def test_what_is_not_a_receipt_says_so(data: bytes, problem: str) -> None:
    with pytest.raises(ReceiptError, match=problem):
        parse_receipt(data)


def test_a_public_key_that_is_not_ed25519_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = public_key_pem(ec.generate_private_key(ec.SECP256R1()).public_key())  # type: ignore[arg-type]
    with pytest.raises(ReceiptError, match="not an Ed25519"):
        load_public_key(pem.encode())
    with pytest.raises(ReceiptError, match="not a PEM"):
        load_public_key(b"hello")
