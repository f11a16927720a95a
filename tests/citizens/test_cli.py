"""The consent and subject commands, run as an operator runs them (in a subprocess)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from civicguard.platform import Platform
from civicguard.settings import Settings
from tests.test_cli import run

from .conftest import APP_STREAM

CITIZEN = "fer-2208"


@pytest.fixture
def receipt_file(tmp_path: Path) -> Path:
    """A grant receipt issued by a platform on ``tmp_path`` (file key store), written out."""
    platform = Platform.build(Settings(data_dir=tmp_path))
    try:
        receipt = platform.citizens.consent.grant(CITIZEN, APP_STREAM).receipt
    finally:
        platform.close()
    path = tmp_path / "receipt.json"
    path.write_bytes(orjson.dumps(receipt, option=orjson.OPT_INDENT_2))
    return path


def test_a_good_receipt_is_valid(tmp_path: Path, receipt_file: Path) -> None:
    done = run("consent", "verify", str(receipt_file), data_dir=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("valid")


def test_the_exported_public_key_checks_it_too(tmp_path: Path, receipt_file: Path) -> None:
    pem = run("consent", "public-key", data_dir=tmp_path).stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    key = tmp_path / "platform.pem"
    key.write_text(pem)
    elsewhere = tmp_path / "empty"
    done = run("consent", "verify", str(receipt_file), "--public-key", str(key), data_dir=elsewhere)
    assert done.returncode == 0, done.stderr


def test_a_tampered_receipt_is_invalid_and_says_why(tmp_path: Path, receipt_file: Path) -> None:
    receipt = orjson.loads(receipt_file.read_bytes())
    receipt["services"][0]["purposes"][0]["thirdPartyDisclosure"] = True
    receipt_file.write_bytes(orjson.dumps(receipt))
    done = run("consent", "verify", str(receipt_file), data_dir=tmp_path, check=False)
    assert done.returncode == 1
    assert "invalid" in done.stdout and "bad signature" in done.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"not json at all", "not JSON"), (b'{"version": "KI-CR-v1.1.0"}', "missing field")],
)
def test_what_is_not_a_receipt_is_invalid(
    tmp_path: Path, receipt_file: Path, content: bytes, problem: str
) -> None:
    receipt_file.write_bytes(content)
    done = run("consent", "verify", str(receipt_file), data_dir=tmp_path, check=False)
    assert done.returncode == 1 and problem in done.stdout


def test_a_receipt_of_another_platform_is_the_wrong_key(tmp_path: Path, receipt_file: Path) -> None:
    other = tmp_path / "other"
    run("consent", "public-key", data_dir=other)
    done = run("consent", "verify", str(receipt_file), data_dir=other, check=False)
    assert done.returncode == 1 and "wrong key" in done.stdout


def test_subject_export_and_erase(tmp_path: Path, receipt_file: Path) -> None:
    exported = orjson.loads(run("subject", "export", CITIZEN, data_dir=tmp_path).stdout)
    assert exported["subject"] == CITIZEN
    assert {i["kind"] for i in exported["items"]} >= {"consent", "consent_receipt"}
    erased = run("subject", "erase", CITIZEN, "--yes", data_dir=tmp_path)
    assert "key destroyed" in erased.stdout
    after = orjson.loads(run("subject", "export", CITIZEN, data_dir=tmp_path).stdout)
    # Only the requests remain (the export, the erasure, and this export itself).
    assert {i["kind"] for i in after["items"]} == {"subject_request"}
    assert [i["data"]["kind"] for i in after["items"]] == ["export", "erasure", "export"]
    assert CITIZEN.encode() not in (tmp_path / "civicguard.db").read_bytes()
    keys = (tmp_path / "keys" / "keys.json").read_bytes()
    assert b"subject/" not in keys
