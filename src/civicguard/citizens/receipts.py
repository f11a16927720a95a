"""Consent receipts: Kantara Consent Receipt v1.1 documents, signed with Ed25519.

Every grant and withdrawal of consent issues a receipt. It carries the fields of Kantara CR v1.1
(which ISO/IEC TS 27560 builds on), filled from the catalog: the controller, the jurisdiction,
the stream as the service, its purposes, the data categories of its fields and its retention as
the termination. Two copies are signed: the citizen's copy names the citizen id they gave; the
record copy the platform keeps names only their handle (the store never holds the raw id).

The signature is a ``signature`` member of the receipt itself::

    "signature": {"alg": "EdDSA", "crv": "Ed25519", "kid": "<16 hex>", "value": "<base64url>"}

``value`` is the Ed25519 signature of the receipt's *canonical JSON without the signature
member*: keys sorted, no whitespace, UTF-8, no floats (the timestamp is whole seconds, as
Kantara has it). ``kid`` is the first 16 hex digits of the SHA-256 of the raw public key.
Anyone with the platform's public key (``civicguard consent public-key``) can check a receipt
(``civicguard consent verify FILE``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from civicguard.catalog.model import Catalog, Category, Stream
from civicguard.privacy.keys import KeyStore

VERSION = "KI-CR-v1.1.0"
#: The key-store key whose 32 bytes are the Ed25519 private key seed.
SIGNING_KEY = "sign/consent-receipts"
#: Our own member naming what the receipt records (Kantara has no field for a withdrawal).
EXTENSION = "x-civicguard"

#: Kantara CR v1.1 top-level fields and the JSON type each must have.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "version": str,
    "jurisdiction": str,
    "consentTimestamp": int,
    "collectionMethod": str,
    "consentReceiptID": str,
    "publicKey": str,
    "language": str,
    "piiPrincipalId": str,
    "piiControllers": list,
    "policyUrl": str,
    "services": list,
    "sensitive": bool,
    "spiCat": list,
}
_EMAIL = re.compile(r"[^\s,@]+@[^\s,@]+")


class ReceiptError(ValueError):
    """A receipt that does not verify; the message says what is wrong."""


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8, signature left out.

    >>> canonical({"b": 1, "a": [True, "é"], "signature": {"value": "x"}}).decode()
    '{"a":[true,"é"],"b":1}'
    """
    body = {k: v for k, v in document.items() if k != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short id of a public key: 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo)."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; ``ReceiptError`` if it is not one."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ReceiptError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReceiptError(f"not an Ed25519 public key but {type(key).__name__}")
    return key


class ReceiptSigner:
    """Signs receipts with the platform's Ed25519 key, whose seed lives in the key store."""

    def __init__(self, keys: KeyStore) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(keys.get_or_create(SIGNING_KEY))
        self.public_key = self._private.public_key()
        self.public_pem = public_key_pem(self.public_key)
        self.kid = key_id(self.public_key)

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with its ``signature`` member (any previous one is replaced)."""
        value = self._private.sign(canonical(document))
        signed = {k: v for k, v in document.items() if k != "signature"}
        signed["signature"] = {
            "alg": "EdDSA",
            "crv": "Ed25519",
            "kid": self.kid,
            "value": base64.urlsafe_b64encode(value).rstrip(b"=").decode(),
        }
        return signed


def _days(days: float) -> str:
    if days == int(days):
        return f"{int(days)} day" + ("" if days == 1 else "s")
    return f"{days * 24:g} hours"


def data_categories(stream: Stream) -> list[str]:
    """The categories of personal data a stream's readings carry, in the catalog's words."""
    located = set(stream.location or ())
    out: list[str] = []
    for spec in stream.fields:
        if spec.name in located:
            if "location" not in out:
                out.append("location")
        elif spec.identifier:
            out.append(spec.identifier)
        else:
            out.append(spec.name if spec.unit is None else f"{spec.name} ({spec.unit})")
    return out


def controller_entry(controller: str) -> dict[str, str]:
    """The catalog's ``controller`` line as Kantara's piiControllers entry.

    >>> controller_entry("City of X, Security Centre, dpo@x.example")["email"]
    'dpo@x.example'
    """
    parts = [p.strip() for p in controller.split(",") if p.strip()]
    emails = [p for p in parts if _EMAIL.fullmatch(p)]
    rest = [p for p in parts if p not in emails]
    return {
        "piiController": rest[0] if rest else controller,
        "contact": ", ".join(rest[1:]),
        "address": "",
        "email": emails[0] if emails else "",
        "phone": "",
    }


def build_receipt(
    *,
    catalog: Catalog,
    stream: Stream,
    action: str,
    purposes: list[str],
    principal_id: str,
    at: float,
    receipt_id: str,
    collection_method: str,
    public_key: str,
    language: str = "en",
) -> dict[str, Any]:
    """An unsigned receipt of ``action`` (``grant`` or ``withdraw``) for ``purposes``."""
    described = {p.name: p.description for p in catalog.purposes}
    termination = (
        f"Until withdrawn; a withdrawal applies from the next reading. Readings are deleted "
        f"{_days(stream.retention_days)} after collection."
    )
    categories = data_categories(stream)
    return {
        "version": VERSION,
        "jurisdiction": catalog.jurisdiction,
        "consentTimestamp": int(at),
        "collectionMethod": collection_method,
        "consentReceiptID": receipt_id,
        "publicKey": public_key,
        "language": language,
        "piiPrincipalId": principal_id,
        "piiControllers": [controller_entry(catalog.controller)],
        "policyUrl": f"urn:civicguard:catalog:{catalog.version}:{stream.name}",
        "services": [
            {
                "service": stream.title,
                "purposes": [
                    {
                        "purpose": described.get(p, p),
                        "purposeCategory": [p],
                        "consentType": "EXPLICIT",
                        "piiCategory": categories,
                        "primaryPurpose": p == stream.purposes[0],
                        "termination": termination,
                        "thirdPartyDisclosure": False,
                        "thirdPartyName": "",
                    }
                    for p in purposes
                ],
            }
        ],
        "sensitive": stream.category is Category.SPECIAL,
        "spiCat": ["special category (GDPR Art. 9)"] if stream.category is Category.SPECIAL else [],
        EXTENSION: {"action": action, "stream": stream.name, "catalogVersion": catalog.version},
    }


def parse_receipt(data: bytes) -> dict[str, Any]:
    """A receipt document from JSON bytes; ``ReceiptError`` if it is not a JSON object."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ReceiptError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ReceiptError(f"not a JSON object but a {type(document).__name__}")
    return document


def _check_shape(document: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED if name not in document]
    if missing:
        raise ReceiptError(f"missing field(s): {', '.join(missing)}")
    for name, kind in REQUIRED.items():
        value = document[name]
        # bool is an int in Python; a timestamp of true is still wrong.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ReceiptError(f"field {name} must be {getattr(kind, '__name__', kind)}")
    if not document["piiControllers"] or not document["services"]:
        raise ReceiptError("piiControllers and services must not be empty")


def verify_receipt(document: dict[str, Any], public_key: Ed25519PublicKey) -> None:
    """Check a receipt against ``public_key``; ``ReceiptError`` names the first problem found."""
    _check_shape(document)
    signature = document.get("signature")
    if not isinstance(signature, dict):
        raise ReceiptError("missing field(s): signature")
    if signature.get("alg") != "EdDSA" or signature.get("crv") != "Ed25519":
        raise ReceiptError("signature must be alg EdDSA, crv Ed25519")
    kid = key_id(public_key)
    if signature.get("kid") != kid:
        raise ReceiptError(
            f"wrong key: the receipt names key {signature.get('kid')!r}, the key given is {kid!r}"
        )
    try:
        value = base64.urlsafe_b64decode(str(signature.get("value", "")) + "==")
        public_key.verify(value, canonical(document))
    except (ValueError, InvalidSignature):
        raise ReceiptError(
            "bad signature: the receipt was changed after signing, or not signed by this key"
        ) from None
    if document["publicKey"].strip() != public_key_pem(public_key).strip():
        raise ReceiptError("the receipt's publicKey is not the key it was checked against")


def stored_public_key(data_dir: Path) -> Ed25519PublicKey:
    """The platform's receipt key from the key store in ``data_dir``, never creating one."""
    from civicguard.privacy.keys import FileKeyStore

    if not (data_dir / "keys" / "keys.json").exists():
        raise ReceiptError(f"no key store in {data_dir}; pass --public-key")
    seed = FileKeyStore.in_dir(data_dir).get(SIGNING_KEY)
    if seed is None:
        raise ReceiptError(f"the key store in {data_dir} has no receipt key; pass --public-key")
    return Ed25519PrivateKey.from_private_bytes(seed).public_key()
