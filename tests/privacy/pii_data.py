"""The labelled PII sentences: parse the markup in tests/data/pii/sentences.txt into JSON lines.

``python -m tests.privacy.pii_data`` rewrites tests/data/pii/sentences.jsonl from the markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "pii"
MARKUP = DATA / "sentences.txt"
JSONL = DATA / "sentences.jsonl"

CODES = {
    "EM": "EMAIL_ADDRESS",
    "PH": "PHONE_NUMBER",
    "IB": "IBAN_CODE",
    "CC": "CREDIT_CARD",
    "IP": "IP_ADDRESS",
    "MAC": "MAC_ADDRESS",
    "PL": "LICENCE_PLATE",
    "AD": "STREET_ADDRESS",
    "PER": "PERSON",
}
_MARK = re.compile(r"\[\[([A-Z]+)\|([^\]]+)\]\]")


def parse_line(line: str, split: str, where: str) -> dict[str, Any]:
    """One marked-up sentence as ``{"text", "entities", "split"}``."""
    text: list[str] = []
    entities: list[dict[str, Any]] = []
    at = 0
    length = 0
    for match in _MARK.finditer(line):
        code, value = match.groups()
        if code not in CODES:
            raise ValueError(f"{where}: unknown type code {code!r}")
        text.append(line[at : match.start()])
        length += match.start() - at
        entities.append({"type": CODES[code], "start": length, "end": length + len(value)})
        text.append(value)
        length += len(value)
        at = match.end()
    text.append(line[at:])
    joined = "".join(text)
    if "[[" in joined or "]]" in joined:
        raise ValueError(f"{where}: unbalanced markup")
    return {"text": joined, "entities": entities, "split": split}


def parse(markup: str) -> list[dict[str, Any]]:
    """Every sentence of the markup file, in order."""
    out: list[dict[str, Any]] = []
    split = ""
    for number, raw in enumerate(markup.splitlines(), start=1):
        line = raw.rstrip("\n")
        if line.startswith("## "):
            split = line[3:].strip()
        elif line and not line.startswith("#"):
            if not split:
                raise ValueError(f"line {number}: sentence before any '## dev' or '## test'")
            out.append(parse_line(line, split, f"line {number}"))
    return out


def render(records: list[dict[str, Any]]) -> str:
    """The JSON-lines text of ``records``."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


if __name__ == "__main__":
    JSONL.write_text(render(parse(MARKUP.read_text(encoding="utf-8"))), encoding="utf-8")
    print(f"wrote {JSONL}")
