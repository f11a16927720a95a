"""The recognizers the scrubber runs: Presidio's pattern ones, made offline, and our own.

Ours are licence plates of any country, phone numbers as people write them, payment cards of
every network, and street addresses (a house number with a street-type word in English,
Spanish, Portuguese, Italian, French, Dutch, German or Polish). A plate, a phone number or a
card number is often told from an order, model or invoice number only by the word before it,
so these recognizers read the few words before each candidate: a word of their own kind
(plate, matrícula, Kennzeichen; call, teléfono, Handy; card, tarjeta) lets an ambiguous
candidate through, a document word (order, factura, Rechnung, modelo, versión) keeps one out.
Addresses are matched case-sensitively: a capitalised street name is part of the pattern.
"""

from __future__ import annotations

import phonenumbers
import regex
import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
)

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


# Words that announce what the next number is. A phone word lets a number through that would
# be too ambiguous alone ("callback 6985-4274"); a document word keeps an order, invoice or
# model number out even when it is shaped like a phone number or a plate. Both are matched in
# lower case against the few words right before the candidate, in the demo's users' languages.
_PHONE_WORDS = (
    r"phone\w*|telephone|tel|tlf|tfno|telf|call\w*|ring|mobile|cell|cellphone|whatsapp|sms|"
    r"text|fax|hotline|reach\w*|contact\w*|dial|gsm|natel|fono|telem[oó]vel|tlm|tlf|"
    r"tel[eé]f\w*|téléphone|portable|celular|cel|móvil|movil|llam\w*|marca\w*|"
    r"bel|bellen|belt|mobiel\w*|handy\w*|anruf\w*|ruf\w*|erreichbar|"
    r"appel\w*|joindre|chiam\w*|cellulare|dzwo\w*|zadzwo\w*|komórk\w*|"
    r"lig\w*|contato"
)
_DOCUMENT_WORDS = (
    r"order|orders|ord|invoice|inv|bill|receipt|ticket|tkt|ref|reference|case|file|"
    r"pedido|orden|folio|factura|recibo|boleto|expediente|referencia|"
    r"bestelling|factuur|kenmerk|referentie|bon|"
    r"bestellung|bestellnummer|rechnung|auftrag|aktenzeichen|beleg|"
    r"commande|facture|référence|dossier|reçu|"
    r"ordine|fattura|riferimento|pratica|ricevuta|"
    r"zamówienie|zamowienie|faktura|sygnatura|paragon|"
    r"nota|fiscal|protocolo|"
    r"model|models|modelo|modelu|modele|modelem|modèle|modell|modello|type|typ|typu|tipo|"
    r"part|parts|pieza|piezas|pièce|pièces|teil|teile|onderdeel|pezzo|pezzi|część|peça|peças|"
    r"code|codice|código|kod|sku|serial|serie|série|seriennummer|sn|s/n|article|artículo|"
    r"artikel|articolo|artykuł|item|lot|batch|"
    r"version|versión|versie|versione|wersja|versão|release|firmware|fw|build|"
    r"postcode|postal|zip|cp|plz|cap|pocztowy|cep|"
    r"room|sala|zaal|raum|salle|stanza|pokój|line|línea|ruta|route|linie|lijn|ligne|linea|"
    r"seq|id|epoch|port"
)
_LOWER_WORDS = regex.compile(r"[\w/#º°]+\.?")


def _words_before(text: str, start: int, count: int) -> list[str]:
    """The last ``count`` words before ``start`` in lower case, nearest last (same clause)."""
    window = text[max(0, start - 60) : start]
    for stop in (".", ";", "!", "?", "\n"):
        cut = window.rfind(stop + " ")
        if cut >= 0:
            window = window[cut + 2 :]
    return [w.lower() for w in _LOWER_WORDS.findall(window)[-count:]]


def _is_word(word: str, alternatives: str) -> bool:
    return regex.fullmatch(rf"(?:{alternatives})\.?", word) is not None


def _announced(text: str, start: int, words: str, reach: int) -> str:
    """What the words before ``start`` announce: ``"own"`` (one of ``words``), ``"document"``
    (a document word) or ``""``; the nearest word that is not neutral decides.
    """
    for word in reversed(_words_before(text, start, reach)):
        if _is_word(word, words):
            return "own"
        if _is_word(word, _DOCUMENT_WORDS):
            return "document"
    return ""


#: Regions whose national formats are checked for a number written without country code.
PHONE_REGIONS: tuple[str, ...] = (
    "MX", "US", "CA", "GB", "IE", "NL", "BE", "DE", "AT", "CH", "FR", "ES", "IT", "PT", "PL",
    "BR", "AR", "CO", "CL", "IN", "AU",
)  # fmt: skip

_PHONE_CANDIDATE = regex.compile(
    r"""
    (?<![\w+@/.,:\-])
    (?:
        (?:\+|\b00)\ ?\d{1,3}           # country code
        (?:\ ?\(0\))?                   # the trunk zero some keep in brackets
        [\ .\-]?
    )?
    (?:(?:1[\ .\-]?)?\(\d{1,5}\)\ ?[\-.]?\ ?)?   # an area code in brackets
    \d{1,12}(?:(?:[\ .\-/]|\ -\ )\d{1,12}){0,5}
    (?P<ext>\ ?(?:x|ext\.?|extn|extension|ext|anexo|poste|Durchwahl|interno)\ ?\d{1,5})?
    (?![\w@]|[.,:/\-]\d)
    """,
    regex.VERBOSE,
)
_DATE_OR_TIME = regex.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2})|"
    r"\d{1,2}[.:h]\d{2}"
)
_NOT_PHONE_SHAPES = (
    _DATE_OR_TIME,
    regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}"),  # an IPv4 address
    regex.compile(r"\d+(?:\.\d+)*\.\d(?:\.\d+)*"),  # a version: a dotted group of one
    regex.compile(r"(?:19|20)\d{2}[/-]\d{1,6}"),  # a year and a number: 2023/417
)


#: A count written in thousands (1 234 567): a phone number only when a phone word says so.
_THOUSANDS = regex.compile(r"\d{1,3}(?: \d{3})+|\d{1,3}(?:\.\d{3})+")


def _not_a_phone(written: str) -> bool:
    """True when ``written`` reads as a date, time, address, count, version or file number."""
    return any(shape.fullmatch(written) for shape in _NOT_PHONE_SHAPES)


_NANP = regex.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
_CURRENCY_AROUND = regex.compile(
    r"(?:[$€£¥]|\b(?:MXN|USD|EUR|GBP|CHF|PLN|BRL|ARS|COP|CLP|INR|pesos|euros?|dollars?|zł))"
)


class PhoneNumberRecognizer(EntityRecognizer):
    """Phone numbers as people write them: spaces, dots, dashes, brackets, (0), extensions.

    A candidate is any run of digit groups. It is a phone number when it carries a country
    code (``+52 ...``, ``0052 ...``), when a phone word comes just before it ("call",
    "teléfono", "bel", "Handy", "numer" ...), when it is grouped the North American way
    (``(449) 978-1200``, ``449.978.1200``), when it starts with a trunk zero (``06-12345678``,
    ``0118 496 0982``), or when libphonenumber finds it valid in one of :data:`PHONE_REGIONS`.
    Never when it reads as a date, a time, a dotted address or an amount, or when the word
    before it names a document (order, factura, Rechnung ...), unless a phone word does too.
    """

    def __init__(self, regions: tuple[str, ...] = PHONE_REGIONS) -> None:
        super().__init__(supported_entities=["PHONE_NUMBER"], name="PhoneNumberRecognizer")
        self.regions = regions

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Phone numbers in ``text``."""
        found: list[RecognizerResult] = []
        for match in _PHONE_CANDIDATE.finditer(text):
            score = self._score(text, match)
            if score:
                found.append(RecognizerResult("PHONE_NUMBER", match.start(), match.end(), score))
        return found

    def _score(self, text: str, match: regex.Match[str]) -> float:
        """The candidate's score, 0 when it is not a phone number."""
        written = match.group()
        if match.group("ext"):
            written = written[: match.start("ext") - match.start()]
        digits = "".join(ch for ch in written.replace("(0)", "") if ch.isdigit())
        if not 7 <= len(digits) <= 15 or _not_a_phone(written):
            return 0.0
        if _amount(text, match.start(), match.end()):
            return 0.0
        announced = _announced(text, match.start(), _PHONE_WORDS, 4)
        if announced == "own":
            return 0.6
        if announced == "document" or _announced(text, match.start(), _VEHICLE_WORDS, 2):
            return 0.0
        return self._unannounced_score(written, digits)

    def _unannounced_score(self, written: str, digits: str) -> float:
        """The score of a candidate no word announces: its shape must say phone number."""
        if _THOUSANDS.fullmatch(written):
            score = 0.0
        elif written.startswith(("+", "00")):
            score = 0.7 if len(digits) >= 8 else 0.0
        elif _NANP.fullmatch(written) or (digits[0] == "0" and len(digits) >= 9):
            score = 0.5
        elif written != digits and self._valid_somewhere(written):
            score = 0.45
        else:
            score = 0.0
        return score

    def _valid_somewhere(self, written: str) -> bool:
        for region in self.regions:
            try:
                number = phonenumbers.parse(written, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False


def _amount(text: str, start: int, end: int) -> bool:
    """True when a currency sign or code stands right before or after ``text[start:end]``."""
    return bool(
        _CURRENCY_AROUND.search(text[max(0, start - 5) : start])
        or _CURRENCY_AROUND.match(text[end : end + 6].lstrip())
    )


def phone_recognizers(regions: tuple[str, ...] = PHONE_REGIONS) -> list[EntityRecognizer]:
    """Phone numbers with or without country code, in the national formats of ``regions``."""
    return [PhoneNumberRecognizer(regions)]


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


_VERSION_WORD = regex.compile(
    r"(?i)\b(?:version|ver\.?|v|build|release|firmware|fw|rev\.?|versión|versie|versione|"
    r"wersja|versão|softwarestand|update|actualización|aggiornamento)\s*$"
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


_CARD = regex.compile(
    r"(?<![\w+\-.])(?:\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,3})?|\d{4}[ \-]\d{6}[ \-]\d{4,5}|"
    r"\d{12,19})(?![\w\-]|[.,]\d)"
)
#: Issuer prefixes (the first digits of a card number) of the networks people carry.
_CARD_PREFIX = regex.compile(r"4|5[0-5]|2[2-7]|3[47]|3[0689]|35|6|1800|2131|50|5[6-9]")
_CARD_WORDS = (
    r"card|cards|credit|debit|visa|mastercard|amex|maestro|jcb|tarjeta|tarjetas|crédito|"
    r"débito|karte|kreditkarte|carte|cb|carta|karta|kartą|cartão|pinpas|betaalpas"
)


def _luhn(digits: str) -> bool:
    total = 0
    for index, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class CardNumberRecognizer(EntityRecognizer):
    """Payment card numbers that pass the Luhn check: 13 to 19 digits with an issuer's prefix
    (Visa, Mastercard's 2- and 5-series, Amex, Diners, Discover, JCB, Maestro), or 12 to 19
    digits after a card word (card, tarjeta, Karte, carte, carta, karta, cartão ...).
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["CREDIT_CARD"], name="CardNumberRecognizer")

    def load(self) -> None:
        """Nothing to load: the pattern is compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Card numbers in ``text``."""
        found: list[RecognizerResult] = []
        for match in _CARD.finditer(text):
            digits = "".join(ch for ch in match.group() if ch.isdigit())
            if not 12 <= len(digits) <= 19 or not _luhn(digits):
                continue
            announced = _announced(text, match.start(), _CARD_WORDS, 4) == "own"
            if announced or (len(digits) >= 13 and _CARD_PREFIX.match(digits)):
                found.append(RecognizerResult("CREDIT_CARD", match.start(), match.end(), 1.0))
        return found


def card_recognizer() -> EntityRecognizer:
    """Payment card numbers passing the Luhn check."""
    return CardNumberRecognizer()


# Licence plates. A plate is a short run of letter and digit groups; what tells it from a
# model or order number is mostly the word before it, so the recognizer reads that first.
_PLATE_WORDS = (
    r"plate|plates|plated|numberplate|numberplates|licen[cs]e|registration|registered|reg|"
    r"rego|vrm|tag|tags|anpr|"
    r"placa|placas|placa\w*|matrícula|matricula|matriculado|matriculada|patente|chapa|dominio|"
    r"kenteken|kentekenplaat|nummerbord|nummerplaat|"
    r"kennzeichen|kennz|nummernschild|autokennzeichen|amtliches|"
    r"immatriculation|immatriculé|immatriculée|immatriculés|immatriculées|immat|plaque|plaques|"
    r"targa|targato|targata|targati|targate|targhe|"
    r"tablica|tablicy|tablicą|tablice|tablic|rejestracyjny|rejestracyjnym|rejestracyjną|"
    r"rejestracyjnej|rejestracyjne|rejestracja|rejestracji|"
    r"emplacamento|placa\.?"
)
_VEHICLE_WORDS = (
    r"car|cars|van|vans|truck|trucks|lorry|pickup|pick-up|sedan|hatchback|suv|taxi|cab|bus|"
    r"minibus|motorbike|motorcycle|scooter|moped|vehicle|vehicles|driver|jeep|trailer|"
    r"coche|carro|auto|autos|automóvil|camioneta|camión|moto|motocicleta|vehículo|vehiculo|"
    r"combi|tráiler|conductor|"
    r"wagen|bestelbus|vrachtwagen|bestelwagen|busje|brommer|motor|voertuig|bestuurder|"
    r"fahrzeug|pkw|lkw|transporter|lieferwagen|motorrad|roller|fahrer|"
    r"voiture|véhicule|camionnette|camion|conducteur|"
    r"macchina|veicolo|furgone|motorino|conducente|"
    r"samochód|samochodu|pojazd|pojazdu|ciężarówka|motocykl|kierowca|"
    r"caminhão|veículo|motorista"
)
# A group is upper case and digits (ABC, 123, 7ABC123), or lower case with a digit in it
# (abc123); a short lower-case group of letters only joins a plate by a dash (prs-312-b), so
# that the words of a sentence never run into one.
_UP_GROUP = r"[\p{Lu}\d]{1,10}"
_LOW_GROUP = r"[\p{Ll}\d]{0,9}\d[\p{Ll}\d]{0,9}"
_GROUP = rf"(?:{_UP_GROUP}|{_LOW_GROUP})"
_PLATE_TOKEN = regex.compile(
    rf"(?<![\w@:/.\-])(?:{_GROUP}|\p{{Ll}}{{1,3}}(?=-))"
    rf"(?:(?:\ |\ ?[•·]\ ?){_GROUP}|-(?:{_GROUP}|\p{{Ll}}{{1,3}}\b)){{0,9}}"
    r"(?![\w@:]|[\-./]\w)"
)
_PLATE_GROUP = regex.compile(r"[\p{L}\d]+")
_PLATE_SEP_BEFORE = regex.compile(r"(?:[ \-]|\ ?[•·]\ ?)$")
#: Upper-case words and codes that stand beside numbers without being part of a plate.
_NOT_A_PLATE = regex.compile(
    r"(?:^|\W)(?:ISO|RFC|EN|DIN|NOM|CVE|COVID|SARS|PM|USB|HDMI|WIFI|LTE|GPS|ANPR|CCTV|"
    r"MXN|USD|EUR|GBP|CHF|PLN|BRL|ARS|COP|CLP|KWH|MWH|KHZ|MHZ|GHZ|RPM|AM|PM|UTC|CET|CST|"
    r"KM|KG|MB|GB|TB|Q[1-4]|H[12]|FY|KB|CP|PLZ|CAP|ZIP|CEP|NR|NO|SN)(?:\W|$|(?=\d))"
)
#: Six digits in a row are a serial or patch number: no plate has so many without letters.
_LONG_DIGITS = regex.compile(r"\d{6}")


def _plate_shape(token: str) -> tuple[int, int, int]:
    """Letters, digits and the longest letters-only group of ``token``."""
    letters = sum(ch.isalpha() for ch in token)
    digits = sum(ch.isdigit() for ch in token)
    longest = max((len(g) for g in _PLATE_GROUP.findall(token) if g.isalpha()), default=0)
    return letters, digits, longest


class LicencePlateRecognizer(EntityRecognizer):
    """Licence plates of any country: a plate word before, a vehicle word, or a plate's shape.

    The candidate is a run of up to four letter and digit groups (``ABC-123-D``, ``MH 12 AB
    1234``, ``7ABC123``, ``GX-123-B``). After a plate word in one of the demo's users'
    languages (plate, tag, placa, matrícula, kenteken, Kennzeichen, immatriculée, targa,
    tablica rejestracyjna ...) any such run with a digit is a plate, in lower case too, and so
    is a number of three digits or more (some states print only digits). After a vehicle word
    (car, camioneta, Fahrzeug, voiture ...) the run must mix letters and digits. With neither,
    an upper-case run of five to ten characters with letters and at least two digits is a
    plate, unless the word before it names a document, a model or a version (order, modelo,
    Typ, référence ...): no format list can tell ``ABC-1234`` on a car from ``ABC-1234`` on a
    box, the sentence can.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["LICENCE_PLATE"], name="LicencePlateRecognizer")

    def load(self) -> None:
        """Nothing to load: the patterns are compiled at import."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Licence plates in ``text``."""
        found: list[RecognizerResult] = []
        for match in _PLATE_TOKEN.finditer(text):
            result = self._plate_in(text, match.start(), match.group())
            if result is not None:
                found.append(result)
        return found

    def _plate_in(self, text: str, start: int, token: str) -> RecognizerResult | None:
        if not any(ch.isdigit() for ch in token):
            return None
        plate_word = _announced(text, start, _PLATE_WORDS, 5)
        vehicle_word = plate_word == "" and _announced(text, start, _VEHICLE_WORDS, 6) == "own"
        # A plate of digits only is read as one only right after the word that announces it.
        right_after = bool(_announced(text, start, f"{_PLATE_WORDS}|{_VEHICLE_WORDS}", 2))
        # Shorter and shorter runs of whole groups, cut only where a space separates them; a
        # run of more groups than any plate has is an account or card number, not a plate.
        groups = list(_PLATE_GROUP.finditer(token))
        if len(groups) > 5:
            return None
        for count in range(min(len(groups), 4), 0, -1):
            end = groups[count - 1].end()
            if count < len(groups) and token[end] != " ":
                continue
            if count < len(groups) and not plate_word and groups[count].group().isdigit():
                continue  # the run goes on in digits: a phone or account number's start
            candidate = token[:end]
            if _DATE_OR_TIME.fullmatch(candidate):
                continue
            score = self._score(candidate, plate_word, vehicle_word, right_after)
            if score:
                if _amount(text, start, start + end):
                    return None
                return RecognizerResult("LICENCE_PLATE", start, start + end, score)
        return None

    @staticmethod
    def _score(candidate: str, plate_word: str, vehicle_word: bool, right_after: bool) -> float:
        """The candidate's score, 0 when it is not a plate."""
        letters, digits, longest = _plate_shape(candidate)
        size = letters + digits
        if not 2 <= size <= 10 or digits == 0 or longest > 4 or _NOT_A_PLATE.search(candidate):
            return 0.0
        if letters == 0:
            needed = 3 if plate_word == "own" else 5
            return 0.6 if right_after and plate_word != "document" and digits >= needed else 0.0
        if plate_word == "own":
            return 0.65
        if plate_word == "document" or _LONG_DIGITS.search(candidate):
            return 0.0
        if vehicle_word and size >= 4:
            return 0.55
        # Nothing announces it: an upper-case run with enough digits to be more than a code.
        shaped = candidate.isupper() and size >= 5 and digits >= 2 and (digits >= 3 or size >= 6)
        return 0.5 if shaped else 0.0


def plate_recognizer() -> EntityRecognizer:
    """Licence plates of any country (see :class:`LicencePlateRecognizer`)."""
    return LicencePlateRecognizer()


# Street addresses. A capitalised word; a dot only inside it (J.F.), so a full stop stays out.
_NAME = r"[\p{Lu}](?:[\w'\u2019-]|\.(?=\w))*"
# House numbers never start with 0 (a phone number does) and are not part of a longer number.
_NUMBER = r"[1-9]\d{0,4}(?: ?[A-Za-z]\b)?(?:[-/][1-9]\d{0,3})?(?![\d-])"
# Street types written after the name, English-speaking countries (USPS Publication 28's
# suffixes, Australian road types, India's), capitalised; abbreviations with their dot.
_EN_TYPE = (
    r"(?:Street|St\b\.?|Avenue|Ave\b\.?|Road|Rd\b\.?|Lane|Ln\b\.?|Boulevard|Blvd\b\.?|"
    r"Drive|Dr\b\.?|Way|Place|Pl\b\.?|Court|Ct\b\.?|Square|Sq\b\.?|Terrace|Close|Crescent|"
    r"Parkway|Pkwy\b\.?|Highway|Hwy\b\.?|Row|Gardens?|Hills?|Walk|Alley|Bridge|Brooks?|"
    r"Bypass|Canyon|Causeway|Centre|Center|Circle|Circuit|Cliffs?|Common|Corners?|Course|"
    r"Cove|Creek|Crest|Crossing|Crossroad|Curve|Dale|Dam|Divide|Drives|Estates?|"
    r"Expressway|Extension|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|Forge|Fork|Fort|"
    r"Freeway|Gateway|Glen|Green|Grove|Harbou?r|Haven|Heights|Hollow|Inlet|Island|Isle|"
    r"Junction|Keys?|Knolls?|Lakes?|Landing|Light|Lodge|Loop|Mall|Manor|Meadows?|Mews|"
    r"Mills?|Mission|Motorway|Mount|Mountain|Orchard|Oval|Overpass|Parade|Park|Pass|"
    r"Passage|Path|Pike|Pines?|Plains?|Plaza|Point|Ports?|Prairie|Promenade|Quay|Radial|"
    r"Ramp|Ranch|Rapids?|Ridge|River|Route|Run|Shoals?|Shores?|Skyway|Springs?|Spur|"
    r"Station|Stream|Summit|Trace|Track|Trail|Tunnel|Turnpike|Underpass|Valley|Viaduct|"
    r"Views?|Village|Vista|Wells?|Nook|Concourse|Break|Chase|Esplanade|Grange|Rise|"
    r"Chowk|Marg|Nagar|Gali)"
)
_EN_UNIT = r"(?:Apt\.|Apartment|Suite|Ste\.|Unit|Flat|Studio|Level|#)"
_ES_TYPE = (
    r"(?:Calle|C/|Cl\.|Avenida|Av\.|Avda\.|Calzada|Calz\.|Paseo|Camino|Privada|Callejón|"
    r"Bulevar|Boulevard|Blvd\.|Plaza|Prolongación|Prol\.|Circuito|Andador|Cerrada|Ronda|"
    r"Travesía|Viaducto|Eje vial|Eje|Periférico|Peatonal|Pasaje|Psje\.|Circunvalación|"
    r"Retorno|Diagonal|Dg\.|Corredor|Continuación|Ampliación|Urbanización|Carrera|Cra\.|Cr\.|"
    r"Transversal|Tr\.|Rambla|Glorieta|Alameda|Acceso|Cuesta|Pasadizo|Vía|Via)"
)
_ES_LINK = r"(?:de|del|la|las|los|el|y|San|Santa)"
_ES_NUMBER = rf"(?:(?:No\.?|Núm\.?|núm\.?|N°|Nº|nº|#) ?)?{_NUMBER}"
_FR_TYPE = (
    r"(?:rue|avenue|av\.|boulevard|bd|place|allée|impasse|quai|chemin|cours|route|square|"
    r"passage|faubourg|montée|voie|sentier|rang|ruelle|parvis|promenade|esplanade|"
    r"rond-point)"
)
_FR_LINK = r"(?:de la|de l'|de|du|des|la|le|l'|d')"
_IT_TYPE = (
    r"(?:Via|Viale|V\.le|Piazza|P\.za|Piazzale|Corso|C\.so|Largo|Vicolo|Strada|Borgo|"
    r"Contrada|Rotonda|Incrocio|Stretto|Canale|Lungomare|Lungotevere|Salita|Galleria|"
    r"Vico|Calle)"
)
_IT_LINK = r"(?:di|del|della|dei|degli|delle|de|da|d'|San|Santa|Santo)"
_PT_TYPE = (
    r"(?:Rua|R\.|Avenida|Av\.?|Alameda|Área|Travessa|Tv\.|Praça|Pç\.|Largo|Estrada|Rodovia|"
    r"Aeroporto|Campo|Chácara|Núcleo|Pátio|Jardim|Vila|Quadra|Setor|Ladeira|Parque|"
    r"Residencial|Condomínio|Conjunto|Esplanada|Viela|Vereda|Trecho|Sítio|Fazenda|"
    r"Loteamento|Morro|Lagoa|Colônia|Distrito|Passarela|Praia|Recanto|Trevo|Viaduto|"
    r"Estação|Beco|Calçada|Caminho)"
)
_PT_LINK = r"(?:de|da|do|das|dos|e)"
_PL_TYPE = r"(?:ul\.|ulica|al\.|aleja|pl\.|plac|os\.|osiedle|rondo|skwer|bulwar)"
_NL_DE_SUFFIX = (
    r"(?:straat|weg|laan|gracht|plein|kade|singel|dijk|steeg|hof|markt|park|dreef|pad|baan|"
    r"boulevard|lei|ring|wal|burgwal|kant|veld|"
    r"straße|strasse|str\.|allee|gasse|platz|damm|ufer|chaussee|zeile|steig|pfad|gässli|"
    r"graben|berg|wall)"
)
_NL_DE_WORD = (
    r"(?:Straße|Strasse|Str\.|Allee|Weg|Platz|Ring|Gasse|Damm|Ufer|Laan|Straat|Plein|Kade|"
    r"Dijk|Gracht|Steeg|Singel)"
)

#: (language, pattern) — each pattern covers the house number and the street's name.
ADDRESS_PATTERNS: tuple[tuple[str, str], ...] = (
    # English: 221B Baker Street, 1600 Pennsylvania Ave., 45/913, Kapur Chowk, Apt. 4 after.
    (
        "en",
        rf"(?:\b{_EN_UNIT} ?\d{{1,4}}\w?,? )?\b\d{{1,5}}[A-Z]?(?:/\d{{1,5}})?,? "
        rf"(?:{_NAME} ){{1,4}}{_EN_TYPE}\b(?:,? {_EN_UNIT} ?\d{{1,5}}\w?)?",
    ),
    # English, a flat without a house number: Studio 2, Heather Drive.
    ("en", rf"\b(?:Studio|Flat|Unit) \d{{1,4}}\w?,? (?:{_NAME} ){{1,3}}{_EN_TYPE}\b"),
    # French: 12 rue de Rivoli, 5 bis avenue des Champs-Élysées, 496, rue Roger Seguin.
    (
        "fr",
        rf"\b\d{{1,5}}(?: ?(?:bis|ter))?,? {_FR_TYPE} (?:{_FR_LINK} ?)?{_NAME}"
        rf"(?: (?:{_FR_LINK} ?)?{_NAME}){{0,3}}",
    ),
    # French and Swiss, number after: rue de la Gare 12.
    (
        "fr",
        rf"\b{_FR_TYPE} (?:{_FR_LINK} ?)?{_NAME}(?: (?:{_FR_LINK} ?)?{_NAME}){{0,3}},? "
        rf"{_NUMBER}",
    ),
    # Spanish: Calle 5 de Mayo 12, Av. Insurgentes Sur No. 1602, Cr. 4W # 64-86.
    (
        "es",
        rf"\b{_ES_TYPE} (?:(?:{_ES_LINK}|{_NAME}|\d{{1,3}}[A-Z]?) ){{1,7}}?,? ?{_ES_NUMBER}\b",
    ),
    # Italian: Via Roma 12, Piazza Claudia, 996.
    (
        "it",
        rf"\b{_IT_TYPE} (?:(?:{_IT_LINK}|{_NAME}|\d{{1,2}}) ){{0,5}}{_NAME},? "
        rf"(?:n\. ?)?{_NUMBER}",
    ),
    # Portuguese: Rua Rocha, 54; Avenida da Expo 98, 99.
    (
        "pt",
        rf"\b{_PT_TYPE} (?:(?:{_PT_LINK}|{_NAME}|\d{{1,3}}) ){{0,5}}{_NAME},? "
        rf"(?:n[º°.] ?)?{_NUMBER}",
    ),
    # Polish: ul. Harcerska 64/68, plac Konstytucji 3 Maja 111.
    ("pl", rf"\b{_PL_TYPE} (?:(?:{_NAME}|\d{{1,2}}) ){{0,4}}{_NAME} {_NUMBER}"),
    # Dutch and German, street type joined to the name: Keizersgracht 123, Hauptstraße 5a.
    ("nl/de", rf"\b(?:{_NAME} )?[\p{{Lu}}][\p{{Ll}}ß]+{_NL_DE_SUFFIX} {_NUMBER}"),
    # German, hyphenated names: Julia-Täsche-Platz 58, Konrad-Adenauer-Straße 7.
    ("de", rf"\b[\p{{Lu}}][\w]*(?:-[\p{{Lu}}][\w]*)*-{_NL_DE_WORD} {_NUMBER}"),
    # Dutch and German, street type as a word: Berliner Straße 12, Laan van Meerdervoort 50.
    ("nl/de", rf"\b(?:{_NAME} ){{1,2}}{_NL_DE_WORD} {_NUMBER}"),
    (
        "nl",
        rf"\b(?:Laan|Plein|Kade|Burgemeester) (?:(?:van|der|de|den|het|{_NAME}) ){{1,4}}"
        rf"{_NUMBER}",
    ),
)


def address_recognizer() -> EntityRecognizer:
    """Street addresses: a house number with a street-type word, in eight languages."""
    return PatternRecognizer(
        supported_entity="STREET_ADDRESS",
        name="StreetAddressRecognizer",
        patterns=[
            Pattern(f"address {language}", pattern, 0.66) for language, pattern in ADDRESS_PATTERNS
        ],
        global_regex_flags=_CASE_SENSITIVE,
    )
