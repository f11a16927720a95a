"""The recognizers the scrubber runs: Presidio's pattern ones, made offline, and our own.

Ours are licence plates (Mexico, the Netherlands, Germany, the United Kingdom, France, Spain,
Italy), street addresses (a house number with a street-type word in English, Spanish, Dutch,
German or French) and phone numbers in national formats. Plates and addresses are matched
case-sensitively: an upper-case plate or a capitalised street name is part of the pattern
(only the dashed Mexican and French formats, distinctive enough, are read in lower case too).
"""

from __future__ import annotations

import phonenumbers
import regex
import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    PhoneRecognizer,
)

#: Regions whose national phone formats are recognised (international ones always are).
PHONE_REGIONS: tuple[str, ...] = ("MX", "US", "NL", "GB", "DE", "FR", "ES", "IT")

_CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE

# The snapshot of the public suffix list that ships inside tldextract: no cache directory
# and no URLs, so nothing is read from or written to the network or the disk at run time.
_OFFLINE_TLD = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer with the domain checked against the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        """True when the address ends in a known public suffix."""
        return _OFFLINE_TLD(pattern_text.rsplit("@", 1)[-1]).fqdn != ""


def email_recognizer() -> EntityRecognizer:
    """E-mail addresses, validated offline."""
    return OfflineEmailRecognizer()


class WrittenPhoneRecognizer(PatternRecognizer):
    """Phone numbers written in ways libphonenumber does not parse, each checked by it.

    Mexican mobiles with the prefixes retired in 2019 but still written (``+52 1 449 ...``,
    ``044 449 ...``): the ten digits that follow must be a valid Mexican number. International
    numbers that keep the trunk zero in brackets (``+31 (0)6 ...``): without the ``(0)`` they
    must be a valid number.
    """

    def __init__(self) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="WrittenPhoneRecognizer",
            patterns=[
                Pattern(
                    "MX mobile, old prefix",
                    r"(?<![\w+])(?:\+52[ .-]?1|04[45])[ .-]?\(?\d{2,3}\)?(?:[ .-]?\d){7,8}(?!\d)",
                    0.4,
                ),
                Pattern(
                    "international with (0)",
                    r"(?<![\w+])\+[1-9]\d{0,2} ?\(0\) ?\d(?:[ .-]?\d){5,12}(?!\d)",
                    0.4,
                ),
            ],
            global_regex_flags=_CASE_SENSITIVE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """True when the number, rewritten as libphonenumber expects it, is valid."""
        if "(0)" in pattern_text:
            written, region = pattern_text.replace("(0)", ""), None
        else:
            digits = "".join(ch for ch in pattern_text if ch.isdigit())
            written, region = digits[3:], "MX"  # after "521", "044" or "045"
            if len(written) != 10:
                return False
        try:
            number = phonenumbers.parse(written, region)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(number))


def phone_recognizers(regions: tuple[str, ...]) -> list[EntityRecognizer]:
    """Phone numbers valid in ``regions`` (via libphonenumber) and the formats it misses.

    Strict grouping (leniency 2) requires the digits to be grouped as the region writes them,
    which keeps dates (03.04.2024) and order numbers (2024-000387) out.
    """
    return [PhoneRecognizer(supported_regions=regions, leniency=2), WrittenPhoneRecognizer()]


_IBAN_START = regex.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2}")
_IBAN_WINDOW = 64  # the longest IBAN written in groups of four, with room to spare


class EveryStartIbanRecognizer(IbanRecognizer):
    """Presidio's IBAN recognizer, also looking again from every place an IBAN could start.

    Its pattern consumes a token that looks like the start of an IBAN ("PM10" in
    "PM10 DE89 3704 ...") and, when the checksum then fails, never tries the real IBAN
    that follows inside the same match.
    """

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """IBANs with a valid checksum in ``text``."""
        found: list[RecognizerResult] = super().analyze(text, entities)
        covered = [(r.start, r.end) for r in found]
        for start in _IBAN_START.finditer(text, overlapped=True):
            at = start.start()
            if at == 0 or any(a <= at < b for a, b in covered):
                continue
            window = text[at : at + _IBAN_WINDOW]
            for result in super().analyze(window, entities):
                if result.start == 0:
                    result.end += at
                    result.start = at
                    found.append(result)
                    covered.append((result.start, result.end))
        return found


def iban_recognizer() -> EntityRecognizer:
    """IBANs with a valid checksum, with or without spaces."""
    return EveryStartIbanRecognizer()


def card_recognizer() -> EntityRecognizer:
    """Payment card numbers passing the Luhn check."""
    return CreditCardRecognizer()


_VERSION_WORD = regex.compile(
    r"(?i)\b(?:version|ver\.?|v|build|release|firmware|fw|rev\.?|versión|versie)\s*$"
)


class AddressOrVersionIpRecognizer(IpRecognizer):
    """Presidio's IP recognizer, except that ``build 4.2.0.1`` is a version, not an address."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """IP addresses in ``text`` that do not follow a word that announces a version."""
        found = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in found if not _VERSION_WORD.search(text, max(0, r.start - 16), r.start)]


def ip_recognizer() -> EntityRecognizer:
    """IPv4 and IPv6 addresses, compressed forms included; version numbers left alone."""
    return AddressOrVersionIpRecognizer()


def mac_recognizer() -> EntityRecognizer:
    """MAC addresses with colons, hyphens or Cisco dots."""
    return MacAddressRecognizer()


_B = r"(?<![\w-])"  # not inside a longer token
_E = r"(?![\w-])"
_NL_LETTER = "[B-DF-HJ-NP-TV-Z]"
_SEP = "[- ]"

#: (country, pattern) — each pattern is a whole plate as it is written.
PLATE_PATTERNS: tuple[tuple[str, str], ...] = (
    # Mexico: federal series ABC-123-D (ANPR logs may write it in lower case), older
    # ABC-12-34, Mexico City 123-ABC.
    ("MX", rf"[A-Z]{{3}}{_SEP}?\d{{3}}{_SEP}?[A-Z]|(?i:[a-z]{{3}}-\d{{3}}-[a-z])"),
    ("MX", rf"[A-Z]{{3}}{_SEP}\d{{2}}{_SEP}\d{{2}}"),
    ("MX", r"\d{3}-[A-Z]{3}"),
    # Netherlands: the side codes with letters and digits in groups, dashes required.
    (
        "NL",
        "(?:"
        + "|".join(
            (
                r"[A-Z]{2}-\d{2}-\d{2}",
                r"\d{2}-\d{2}-[A-Z]{2}",
                r"\d{2}-[A-Z]{2}-\d{2}",
                r"[A-Z]{2}-\d{2}-[A-Z]{2}",
                r"[A-Z]{2}-[A-Z]{2}-\d{2}",
                r"\d{2}-[A-Z]{2}-[A-Z]{2}",
                rf"\d{{2}}-{_NL_LETTER}{{3}}-\d",
                rf"\d-{_NL_LETTER}{{3}}-\d{{2}}",
                rf"{_NL_LETTER}{{2}}-\d{{3}}-{_NL_LETTER}",
                rf"{_NL_LETTER}-\d{{3}}-{_NL_LETTER}{{2}}",
                rf"{_NL_LETTER}{{3}}-\d{{2}}-{_NL_LETTER}",
                rf"{_NL_LETTER}-\d{{2}}-{_NL_LETTER}{{3}}",
                rf"\d-{_NL_LETTER}{{2}}-\d{{3}}",
                rf"\d{{3}}-{_NL_LETTER}{{2}}-\d",
            )
        )
        + ")",
    ),
    # Germany: district, series letters, number (optional E/H suffix): M-AB 1234, B XY 42.
    ("DE", r"[A-ZÄÖÜ]{1,3}[- ][A-Z]{1,2} ?[1-9]\d{0,3}[EH]?"),
    # United Kingdom since 2001: two letters, the age identifier, three letters.
    ("GB", r"[A-HJ-PR-Y]{2}(?:0[2-9]|[12]\d|5[1-9]|[67]\d) ?[A-HJ-PR-Z]{3}"),
    # France (SIV) and Italy: AB-123-CD (also in lower case), AB 123 CD, AB123CD.
    ("FR/IT", r"[A-HJ-NP-TV-Z]{2}([- ]?)\d{3}\1[A-HJ-NP-TV-Z]{2}|(?i:[a-z]{2}-\d{3}-[a-z]{2})"),
    # Spain since 2000: four digits and three consonants; not an amount in a currency.
    ("ES", r"\d{4}[- ]?(?!MXN|GBP|CHF|CZK|DKK|HKD|JPY|NZD|PLN|SGD|THB|TWD)[B-DF-HJ-NP-TV-Z]{3}"),
)


def plate_recognizer() -> EntityRecognizer:
    """Licence plates of the countries in :data:`PLATE_PATTERNS`."""
    return PatternRecognizer(
        supported_entity="LICENCE_PLATE",
        name="LicencePlateRecognizer",
        patterns=[
            Pattern(f"plate {country}", f"{_B}(?:{pattern}){_E}", 0.6)
            for country, pattern in PLATE_PATTERNS
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )


# A capitalised word; a dot only inside it (J.F.), so a sentence's full stop stays out.
_NAME = r"[A-ZÁÉÍÓÚÑÄÖÜÇÈÊ](?:[\w'\u2019-]|\.(?=\w))*"
# House numbers never start with 0 (a phone number does) and are not part of a longer number.
_NUMBER = r"[1-9]\d{0,4}(?: ?[A-Za-z]\b)?(?:[-/][1-9]\d{0,3})?(?![\d-])"
_EN_TYPE = (
    r"(?:Street|St\b\.?|Avenue|Ave\b\.?|Road|Rd\b\.?|Lane|Ln\b\.?|Boulevard|Blvd\b\.?|"
    r"Drive|Dr\b\.?|Way|Place|Pl\b\.?|Court|Ct\b\.?|Square|Sq\b\.?|Terrace|Close|Crescent|"
    r"Parkway|Highway|Row|Gardens|Hill|Walk)"
)
_ES_TYPE = (
    r"(?:Calle|C/|Avenida|Av\.|Avda\.|Calzada|Calz\.|Paseo|Camino|Privada|"
    r"Callejón|Bulevar|Boulevard|Blvd\.|Plaza|Prolongación|Prol\.|Circuito|Andador|Cerrada|"
    r"Ronda|Travesía)"
)
_ES_LINK = r"(?:de|del|la|las|los|el|y|San|Santa)"
_FR_TYPE = (
    r"(?:rue|avenue|av\.|boulevard|bd|place|allée|impasse|quai|chemin|cours|route|"
    r"square|passage|faubourg)"
)
_FR_LINK = r"(?:de la|de l'|de|du|des|la|le|l'|d')"
_NL_DE_SUFFIX = (
    r"(?:straat|weg|laan|gracht|plein|kade|singel|dijk|steeg|hof|markt|park|dreef|pad|"
    r"straße|strasse|str\.|allee|gasse|platz|ring|damm|ufer|chaussee|zeile)"
)
_NL_DE_WORD = r"(?:Straße|Strasse|Str\.|Allee|Weg|Platz|Ring|Gasse|Laan|Straat|Plein|Kade|Dijk)"

#: (language, pattern) — each pattern covers the house number and the street's name.
ADDRESS_PATTERNS: tuple[tuple[str, str], ...] = (
    # English: 221B Baker Street, 1600 Pennsylvania Ave.
    ("en", rf"\b\d{{1,5}}[A-Z]?,? (?:{_NAME} ){{1,4}}{_EN_TYPE}"),
    # French: 12 rue de Rivoli, 5 bis avenue des Champs-Élysées.
    (
        "fr",
        rf"\b\d{{1,4}}(?: ?(?:bis|ter))?,? {_FR_TYPE} (?:{_FR_LINK} ?)?{_NAME}"
        rf"(?: (?:{_FR_LINK} ?)?{_NAME}){{0,3}}",
    ),
    # Spanish: Calle 5 de Mayo 12, Av. Insurgentes Sur No. 1602.
    (
        "es",
        rf"\b{_ES_TYPE} (?:(?:{_ES_LINK}|{_NAME}|\d{{1,2}}) ){{1,6}}?"
        rf"(?:(?:No\.?|Núm\.?|núm\.?|#) ?)?{_NUMBER}\b",
    ),
    # Dutch and German, street type joined to the name: Keizersgracht 123, Hauptstraße 5a.
    ("nl/de", rf"\b(?:{_NAME} )?[A-ZÄÖÜ][a-zäöüß]+{_NL_DE_SUFFIX} {_NUMBER}"),
    # Dutch and German, street type as a word: Berliner Straße 12, Laan van Meerdervoort 50.
    ("nl/de", rf"\b(?:{_NAME} ){{1,2}}{_NL_DE_WORD} {_NUMBER}"),
    (
        "nl",
        rf"\b(?:Laan|Plein|Kade|Burgemeester) (?:(?:van|der|de|den|het|{_NAME}) ){{1,4}}"
        rf"{_NUMBER}",
    ),
)


def address_recognizer() -> EntityRecognizer:
    """Street addresses: a house number with a street-type word, in five languages."""
    return PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="StreetAddressRecognizer",
        patterns=[
            Pattern(f"address {language}", pattern, 0.5) for language, pattern in ADDRESS_PATTERNS
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )
