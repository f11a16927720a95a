"""Write tests/data/pii/generated.jsonl: labelled sentences the scrubber's authors did not write.

``python bench/make_pii_sentences.py`` fills sentence templates in eight languages with
identifiers that Faker makes up in the formats of dozens of countries (licence plates of every
Latin-script locale Faker knows, phone numbers, street addresses, e-mails, IBANs, cards, IPv4
and MAC addresses) and with hard negatives that look like identifiers but are not (dates,
times, order and ticket numbers, prices, model numbers, postcodes alone, counts, versions).

The set has its own ``dev`` part (tune on it) and ``test`` part (held out). The two parts are
filled from different templates, so that a recognizer tuned on the phrasing of dev is scored on
phrasing it has not seen; the values of both come from the same generators (a plate format is
a fact about a country, not about a sentence). The output is fully determined by ``SEED``:
running the script again writes the same file, and a test checks that it does.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from faker import Faker

SEED = 20261207
PER_TEMPLATE = 10  # sentences drawn from each template
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii" / "generated.jsonl"

#: Faker locales whose ``license_plate()`` writes a Latin-script plate (others use scripts the
#: demo's users do not read on a car). The default provider (``en``) holds US state formats.
PLATE_LOCALES = (
    "en_US", "es_MX", "en_GB", "en_CA", "en_NZ", "en_PH", "nl_NL", "nl_BE", "de_DE", "de_AT",
    "de_CH", "fr_FR", "it_IT", "es_ES", "es_AR", "es_CL", "es_CO", "pt_BR", "pt_PT", "pl_PL",
    "da_DK", "no_NO", "sv_SE", "fi_FI", "et_EE", "lt_LT", "hu_HU", "ro_RO", "sk_SK", "sq_AL",
    "mk_MK", "tr_TR", "az_AZ", "id_ID", "vi_VN", "he_IL", "ar_JO", "ar_PS", "zh_TW", "el_GR",
    "uk_UA",
)  # fmt: skip

#: Plate formats Faker does not write, as ``bothify`` masks (``?`` a letter, ``#`` a digit):
#: India (state code, district, series, number), Mexican states (Aguascalientes' series
#: starts with A), US vanity-free state series written the way their states print them.
_IN_STATES = ("MH", "DL", "KA", "TN", "GJ", "UP", "RJ", "WB", "HR", "PB", "KL", "TS", "AP")
EXTRA_PLATES: tuple[Callable[[Faker], str], ...] = (
    lambda f: (
        f"{f.random_element(_IN_STATES)} {f.numerify('##')} {f.lexify('??')} {f.numerify('####')}"
    ),
    lambda f: (
        f"{f.random_element(_IN_STATES)}{f.numerify('##')}{f.lexify('??')}{f.numerify('####')}"
    ),
    lambda f: (
        f"{f.random_element(_IN_STATES)}-{f.numerify('##')}-{f.lexify('?')}-{f.numerify('####')}"
    ),
    lambda f: f.bothify("A??-###-?"),
    lambda f: f.bothify("A?-####-?"),
    lambda f: f.bothify("???-##-##"),
    lambda f: f.bothify("#??-####"),
    lambda f: f.bothify("##-??-##"),
)


def plate(fakers: dict[str, Faker], rng: random.Random) -> str:
    """A licence plate of a random country, upper case as printed, sometimes as typed."""
    if rng.random() < 0.2:
        value = rng.choice(EXTRA_PLATES)(fakers["en_US"]).upper()
    else:
        value = fakers[rng.choice(PLATE_LOCALES)].license_plate()
    if rng.random() < 0.08:  # typed in a hurry: no separators, or in lower case
        value = re.sub(r"[-\s•]", "", value) if rng.random() < 0.5 else value.lower()
    return value


#: Locales whose own formats fill each language's phone numbers and addresses.
LANGUAGE_LOCALES: dict[str, tuple[str, ...]] = {
    "en": ("en_US", "en_GB", "en_CA", "en_IN", "en_IE", "en_AU"),
    "es": ("es_MX", "es_MX", "es_ES", "es_AR", "es_CO", "es_CL"),
    "nl": ("nl_NL", "nl_BE"),
    "de": ("de_DE", "de_AT", "de_CH"),
    "fr": ("fr_FR", "fr_CH", "fr_CA"),
    "it": ("it_IT",),  # it_CH has no addresses of its own (Faker falls back to English)
    "pl": ("pl_PL",),
    "pt": ("pt_BR", "pt_PT"),
}


def _grouped(digits: str, size: int, sep: str) -> str:
    return sep.join(digits[i : i + size] for i in range(0, len(digits), size))


#: Faker locales of countries that use IBANs (Faker makes one up for any locale, even for
#: Mexico or Argentina, which have none, with a BBAN of the wrong length).
IBAN_LOCALES = ("nl_NL", "nl_BE", "de_DE", "de_AT", "de_CH", "fr_FR", "es_ES", "it_IT", "pt_PT",
                "pl_PL", "en_GB", "en_IE", "pt_BR")  # fmt: skip


def _iban(f: Faker, rng: random.Random) -> str:
    local = Faker(rng.choice(IBAN_LOCALES))
    local.seed_instance(rng.randrange(2**32))
    value = str(local.iban())
    return _grouped(value, 4, " ") if rng.random() < 0.5 else value


def _card(f: Faker, rng: random.Random) -> str:
    value = str(f.credit_card_number())
    if len(value) == 16 and rng.random() < 0.6:
        return _grouped(value, 4, rng.choice([" ", "-"]))
    return value


def _address(f: Faker, rng: random.Random) -> str:
    for _ in range(20):
        value = re.sub(r"\s*\n\s*", ", ", str(f.street_address())).strip(" ,")
        # Faker pads some house numbers with zeros ("Roospad 049"), which no street sign does.
        value = re.sub(r"(?<![\d.])0+(?=[1-9])", "", value)
        if any(ch.isdigit() for ch in value):  # a street without a number names no home
            return value
    return value


def _date(f: Faker, rng: random.Random) -> str:
    day = f.date_between(start_date=date(2023, 1, 1), end_date=date(2027, 12, 31))
    mask = rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m/%d/%Y", "%d.%m.%y"])
    return day.strftime(mask)


def _time(f: Faker, rng: random.Random) -> str:
    hour, minute = rng.randrange(24), rng.randrange(60)
    return rng.choice(
        [f"{hour:02d}:{minute:02d}", f"{hour}:{minute:02d}:{rng.randrange(60):02d}",
         f"{hour % 12 or 12}:{minute:02d} {'pm' if hour >= 12 else 'am'}", f"{hour}h{minute:02d}",
         f"{hour:02d}.{minute:02d}"]
    )  # fmt: skip


def _order(f: Faker, rng: random.Random) -> str:
    return f.bothify(
        rng.choice(["ORD-######", "####-######", "#########", "PO-####-####", "INV/####/###",
                    "TKT-####-####", "#??-#####", "A-########", "###-####-####"]),
        letters="ABCDEFGHJKLMNPRSTUVWXYZ",
    )  # fmt: skip


def _price(f: Faker, rng: random.Random) -> str:
    amount = rng.randrange(100, 2_000_000) / 100
    return rng.choice(
        [f"${amount:,.2f}", f"{amount:,.2f} MXN", f"€ {amount:.2f}".replace(".", ","),
         f"{amount:,.0f} EUR".replace(",", "."), f"£{amount:,.2f}", f"MXN {amount:,.0f}",
         f"{amount:,.2f} zł".replace(",", " ").replace(".", ",")]
    )  # fmt: skip


def _model(f: Faker, rng: random.Random) -> str:
    return f.bothify(
        rng.choice(["??-###", "???-####", "??####?", "?-###", "???###", "??-#??##?",
                    "?? ###", "??-####", "###-??", "??#-###"]),
        letters="ABCDEFGHJKLMNPRSTUVWXYZ",
    )  # fmt: skip


def _postcode(f: Faker, rng: random.Random) -> str:
    return str(f.postcode())


def _count(f: Faker, rng: random.Random) -> str:
    n = rng.randrange(2, 250_000)
    return rng.choice([str(n), f"{n:,}", f"{n:,}".replace(",", " "), f"{n:,}".replace(",", ".")])


def _version(f: Faker, rng: random.Random) -> str:
    parts = [str(rng.randrange(0, 20)) for _ in range(rng.choice([2, 3, 3, 4]))]
    return rng.choice(["", "v", "V"]) + ".".join(parts)


#: Slot name -> (entity type or None for a hard negative, generator).
SLOTS: dict[str, tuple[str | None, Callable[[Faker, random.Random], str]]] = {
    "PH": ("PHONE_NUMBER", lambda f, r: str(f.phone_number())),
    "AD": ("STREET_ADDRESS", _address),
    "EM": ("EMAIL_ADDRESS", lambda f, r: str(f.email())),
    "IB": ("IBAN_CODE", _iban),
    "CC": ("CREDIT_CARD", _card),
    "IP": ("IP_ADDRESS", lambda f, r: str(f.ipv4())),
    "MAC": ("MAC_ADDRESS", lambda f, r: str(f.mac_address())),
    "DATE": (None, _date),
    "TIME": (None, _time),
    "ORDER": (None, _order),
    "PRICE": (None, _price),
    "MODEL": (None, _model),
    "POST": (None, _postcode),
    "N": (None, _count),
    "VER": (None, _version),
}

# Templates: {PL} a plate, other slots as in SLOTS. Dev and test never share a template.
# fmt: off
DEV: dict[str, list[str]] = {
    "en": [
        "The car with plate {PL} has been parked on the sidewalk since {DATE}.",
        "Witness saw a grey pickup, plate number {PL}, leave at {TIME}.",
        "Please tow the van {PL}; it blocks the entrance of {AD}.",
        "You can reach me at {PH} or {EM} if you need more details.",
        "Noise complaint from the tenant at {AD}, callback {PH}.",
        "Tag {PL} ran the red light near the school around {TIME}.",
        "Refund the parking fine to {IB}, reference {ORDER}.",
        "The kiosk charged card {CC} twice for {PRICE}.",
        "Scanner traffic from {IP} hit the camera portal {N} times.",
        "Unknown device {MAC} joined the sensor VLAN at {TIME}.",
        "Order {ORDER} for {N} model {MODEL} cameras ships on {DATE}.",
        "Firmware {VER} fixed the crash on {N} units; next check {DATE} at {TIME}.",
        "Postcode {POST} had {N} reports this month, budget {PRICE}.",
    ],
    "es": [
        "El coche con placas {PL} lleva tres días estacionado frente a {AD}.",
        "Un taxi con matrícula {PL} se pasó el alto a las {TIME}.",
        "Mi celular es {PH}, llámenme si encuentran al responsable.",
        "Reporto una fuga de agua en {AD}; mi correo es {EM}.",
        "La camioneta {PL} bloquea la rampa para sillas de ruedas.",
        "Depositar el reembolso en la cuenta {IB} antes del {DATE}.",
        "Se cobró dos veces la tarjeta {CC} en el parquímetro.",
        "El pedido {ORDER} incluye {N} sensores modelo {MODEL} por {PRICE}.",
        "Versión {VER} instalada el {DATE} a las {TIME} en {N} equipos.",
        "Código postal {POST}: {N} reportes atendidos esta semana.",
        "Conexión sospechosa desde {IP} hacia la cámara {N}.",
    ],
    "nl": [
        "De auto met kenteken {PL} staat al weken op {AD}.",
        "Bel mij gerust op {PH} of mail naar {EM}.",
        "Een bestelbus ({PL}) reed om {TIME} door rood.",
        "Stort het bedrag terug op {IB}, kenmerk {ORDER}.",
        "Bestelling {ORDER} van {N} stuks type {MODEL} komt op {DATE}.",
        "Postcode {POST} meldde {N} storingen; versie {VER} lost het op.",
        "Onbekend apparaat {MAC} op het cameranetwerk om {TIME}.",
    ],
    "de": [
        "Das Auto mit dem Kennzeichen {PL} parkt seit {DATE} in der Feuerwehrzufahrt.",
        "Der Anrufer wohnt in {AD} und ist unter {PH} erreichbar.",
        "Ein Transporter, Kennzeichen {PL}, blockiert die Ausfahrt.",
        "Bitte erstatten Sie den Betrag auf {IB}.",
        "Bestellung {ORDER}: {N} Kameras Modell {MODEL} zu je {PRICE}.",
        "Version {VER} läuft seit {DATE} um {TIME} auf {N} Geräten.",
        "Antwort bitte an {EM}, nicht an die Zentrale.",
    ],
    "fr": [
        "La voiture immatriculée {PL} est garée devant {AD} depuis le {DATE}.",
        "Appelez-moi au {PH} ou écrivez à {EM}.",
        "Un scooter ({PL}) a grillé le feu rouge à {TIME}.",
        "Remboursement sur le compte {IB}, commande {ORDER}.",
        "Commande {ORDER} : {N} capteurs modèle {MODEL} pour {PRICE}.",
        "Code postal {POST} : {N} signalements, version {VER} déployée.",
    ],
    "it": [
        "L'auto targata {PL} è in sosta vietata davanti a {AD}.",
        "Potete chiamarmi al {PH} oppure scrivere a {EM}.",
        "Rimborso sul conto {IB} entro il {DATE}.",
        "Ordine {ORDER}: {N} telecamere modello {MODEL} a {PRICE}.",
        "Versione {VER} installata il {DATE} alle {TIME}.",
    ],
    "pl": [
        "Samochód o numerze rejestracyjnym {PL} stoi na chodniku przy {AD}.",
        "Proszę dzwonić pod numer {PH} albo pisać na {EM}.",
        "Zwrot na konto {IB} do {DATE}.",
        "Zamówienie {ORDER}: {N} kamer model {MODEL} za {PRICE}.",
    ],
    "pt": [
        "O carro de placa {PL} está estacionado na calçada da {AD}.",
        "Liguem para {PH} ou escrevam para {EM}.",
        "Pedido {ORDER}: {N} câmeras modelo {MODEL} por {PRICE}, entrega em {DATE}.",
    ],
}

TEST: dict[str, list[str]] = {
    "en": [
        "A white sedan, registration {PL}, keeps parking across my driveway.",
        "I think the driver of {PL} was on the phone when he hit the bollard.",
        "Number plate {PL} was seen again outside {AD} at {TIME}.",
        "Call me back on {PH}, I'm home after six.",
        "Send the form to {EM}; my address is {AD}.",
        "The plates on the abandoned truck read {PL}.",
        "Please wire the deposit back to {IB} (invoice {ORDER}).",
        "My card {CC} was charged {PRICE} although the meter was broken.",
        "Brute-force attempts from {IP} since {DATE}.",
        "Device {MAC} keeps reconnecting to the street Wi-Fi.",
        "Ticket {ORDER} closed on {DATE} at {TIME} after {N} visits.",
        "We replaced {N} units of part {MODEL} for {PRICE}; release {VER} is next.",
        "The area around {POST} saw {N} potholes fixed by {DATE}.",
    ],
    "es": [
        "Una moto sin casco, placa {PL}, circula en sentido contrario.",
        "El vehículo {PL} estuvo involucrado en el choque de las {TIME}.",
        "Vivo en {AD} y el ruido no me deja dormir, mi teléfono es {PH}.",
        "Contestar a {EM} por favor, no tengo WhatsApp.",
        "Matrícula del coche abandonado: {PL}.",
        "Transferencia recibida desde {IB} con folio {ORDER}.",
        "Pagué con {CC} y no me dieron recibo.",
        "Factura {ORDER} del {DATE}: {N} piezas modelo {MODEL}, total {PRICE}.",
        "La actualización {VER} se aplicó a las {TIME} en {N} postes.",
        "En el CP {POST} se registraron {N} baches.",
        "La IP {IP} intentó entrar {N} veces.",
    ],
    "nl": [
        "Scooter met nummerbord {PL} rijdt steeds over de stoep.",
        "Mijn telefoonnummer is {PH}, ik woon op {AD}.",
        "Wagen {PL} staat al sinds {DATE} op de invalidenplek.",
        "Factuur {ORDER} van {PRICE} voor {N} sensoren van type {MODEL}.",
        "Update naar {VER} om {TIME}, postcode {POST}.",
        "Terugbetaling graag naar {IB}.",
        "Mail me op {EM} als er nieuws is.",
    ],
    "de": [
        "Der Lieferwagen mit Nummernschild {PL} stand heute wieder auf dem Radweg.",
        "Meine Telefonnummer lautet {PH}, Adresse {AD}.",
        "Kennz. {PL}, Fahrer flüchtig, Unfall um {TIME}.",
        "Rechnung {ORDER} vom {DATE}: {N} Stück Typ {MODEL}, {PRICE}.",
        "PLZ {POST}, {N} Meldungen, Softwarestand {VER}.",
        "Schreiben Sie mir an {EM} oder überweisen Sie auf {IB}.",
        "Zugriff von {IP} auf die Kamera um {TIME}.",
    ],
    "fr": [
        "Plaque d'immatriculation {PL}, véhicule abandonné depuis le {DATE}.",
        "Mon numéro : {PH}, j'habite {AD}.",
        "Le camion {PL} bloque la piste cyclable tous les matins.",
        "Facture {ORDER} de {PRICE} pour {N} pièces référence {MODEL}.",
        "Mise à jour {VER} à {TIME} pour {N} caméras.",
        "Merci de répondre à {EM}; IBAN {IB}.",
    ],
    "it": [
        "Il furgone con targa {PL} ha bloccato il passo carrabile.",
        "Il mio numero di cellulare è {PH}, abito in {AD}.",
        "Fattura {ORDER} del {DATE}: {N} pezzi codice {MODEL}, {PRICE}.",
        "Aggiornamento {VER} alle {TIME}, CAP {POST}.",
        "Scrivetemi a {EM}; IBAN {IB}.",
    ],
    "pl": [
        "Auto z tablicą rejestracyjną {PL} blokuje wjazd do garażu.",
        "Mój numer telefonu to {PH}, mieszkam przy {AD}.",
        "Faktura {ORDER} z {DATE}: {N} sztuk modelu {MODEL}, {PRICE}.",
        "Kod pocztowy {POST}, {N} zgłoszeń, wersja {VER}.",
    ],
    "pt": [
        "A moto de matrícula {PL} passou o sinal vermelho às {TIME}.",
        "Meu telefone é {PH} e moro na {AD}.",
        "Nota fiscal {ORDER} de {DATE}: {N} peças modelo {MODEL}, {PRICE}.",
    ],
}
# fmt: on

_SLOT = re.compile(r"\{([A-Z]+)\}")


def fill(
    template: str, language: str, fakers: dict[str, Faker], rng: random.Random
) -> dict[str, object]:
    """One labelled sentence from ``template``: its text and the identifiers' spans."""
    text: list[str] = []
    entities: list[dict[str, object]] = []
    length = 0
    at = 0
    local = fakers[rng.choice(LANGUAGE_LOCALES[language])]
    for match in _SLOT.finditer(template):
        text.append(template[at : match.start()])
        length += match.start() - at
        slot = match.group(1)
        if slot == "PL":
            entity_type: str | None = "LICENCE_PLATE"
            value = plate(fakers, rng)
        else:
            entity_type, make = SLOTS[slot]
            value = make(local, rng)
        if entity_type is not None:
            entities.append({"type": entity_type, "start": length, "end": length + len(value)})
        text.append(value)
        length += len(value)
        at = match.end()
    text.append(template[at:])
    return {"text": "".join(text), "entities": entities}


def generate(seed: int = SEED) -> list[dict[str, object]]:
    """Every sentence of the generated set: dev first, then test, in template order."""
    rng = random.Random(seed)
    locales = sorted({*PLATE_LOCALES, *(loc for locs in LANGUAGE_LOCALES.values() for loc in locs)})
    fakers = {}
    for index, locale in enumerate(locales):
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(seed + index)
    out: list[dict[str, object]] = []
    for split, templates in (("dev", DEV), ("test", TEST)):
        for language, lines in templates.items():
            for template in lines:
                for _ in range(PER_TEMPLATE):
                    record = fill(template, language, fakers, rng)
                    out.append({**record, "split": split, "lang": language})
    return out


def render(records: list[dict[str, object]]) -> str:
    """The JSON-lines text of ``records``."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main() -> None:
    """Write the set to :data:`OUT` (or to the path given as the only argument)."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    records = generate()
    out.write_text(render(records), encoding="utf-8")
    print(f"wrote {len(records)} sentences to {out}")


if __name__ == "__main__":
    main()
