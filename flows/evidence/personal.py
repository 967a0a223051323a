"""Personal data in what arrives from outside: e-mail, phone, card, national id and IBAN numbers.

Each kind is found by its written shape and then checked by what makes it real, so ids and
timestamps that merely look alike survive: a card number must pass the Luhn check
(`stdnum.luhn`) and start like a card network's, a US SSN must lie in the ranges ever issued
(`stdnum.us.ssn`), an IBAN must pass its country's format and mod-97 check (`stdnum.iban`), a
phone number must be valid where it is from (`phonenumbers`). A value found is replaced by a
marker naming its kind, `[REDACTED:email]`, so a reader knows what was removed and redaction is
counted by kind.

Collected artifacts are large, so the scans are gated: the text is mapped once to a skeleton
(every ASCII digit `0`, every capital `A`) in which each shape below leaves a fixed trace
(`0-0000`, `AA00`, ...), and a scan runs only where its trace is found. Most log lines (dates,
times, short ids) leave none. Every pattern starts only where a word starts and repeats a
bounded number of times, so long unbroken text is scanned in linear time.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache


class PersonalData(StrEnum):
    """A kind of personal data redaction can remove, named as its marker names it."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    """Payment card numbers that pass the Luhn check and carry a card network's prefix."""
    NATIONAL_ID = "national_id"
    """US Social Security numbers (written 123-45-6789) and UK National Insurance numbers."""
    IBAN = "iban"


def marker(kind: PersonalData) -> str:
    """What a value of this kind is replaced with: `[REDACTED:email]`."""
    return f"[REDACTED:{kind.value}]"


# After a `/` it is a URL's user (`postgres://app@db.internal/orders`), not a mailbox.
_EMAIL = re.compile(
    r"(?<![\w.%+/-])[A-Za-z0-9][\w.%+-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}(?P<tld>[A-Za-z]{2,24})(?![\w-])"
)
# `icon@2x.png` names a file, not a mailbox.
_FILE_ENDINGS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "css", "js", "json", "txt", "log"}
)

# Letter-led: an IBAN (country, check digits, then letters and digits, in fours when spaced)
# and a UK National Insurance number (its first letter is never D, F, I, Q, U or V, its second
# never those or O; the suffix is A to D).
_LETTERS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<iban>[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)"
    r"|(?P<nino>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D])"
    r")(?![A-Za-z0-9])"
)
_NINO_UNUSED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})

# Digit-led shapes. A card is 13 to 19 digits run together, or in fours (Amex: 4-6-5) with one
# separator throughout. An SSN is 3-2-4, one separator throughout. A phone number is written
# the way people write them: `+` and a country code, `(415) 555-2671`, three or four groups
# joined by one separator and ending in four or more digits (`415-555-2671`,
# `020 7946 0018`), pairs (`06 12 34 56 78`), or a 0-led trunk and subscriber number
# (`07700 900123`). Bare digit runs are never taken for phone numbers or SSNs: logs are full
# of ids that would validate.
# Every card network's numbers start with 2 to 6: epoch milliseconds (1...) never look like one.
# The two shapes searched on their own are (first character, the rest): see `_led_pattern`.
_CARD_RUN = ("[2-6]", r"[0-9]{12,18}")
_CARD_GROUPED = (
    r"[2-6][0-9]{3}(?P<cs>[ -])[0-9]{4}(?P=cs)[0-9]{4}(?P=cs)[0-9]{1,7}"
    r"|3[0-9]{3}(?P<ax>[ -])[0-9]{6}(?P=ax)[0-9]{4,5}"
)
_SSN = r"[0-9]{3}(?P<ss>[- ])[0-9]{2}(?P=ss)[0-9]{4}"
_PHONE_INTERNATIONAL = (
    r"\+",
    r"(?>[1-9][0-9]{0,3}(?:[ .-]?+(?:\([0-9]{1,5}\)|[0-9]{1,6}+)){1,6}+)",
)
_PHONE_NATIONAL = (
    r"\([0-9]{2,5}\) ?[0-9]{2,5}[ .-][0-9]{4,6}"
    r"|[0-9]{2,5}(?P<ps>[ .-])[0-9]{2,5}(?P=ps)[0-9]{4,6}(?:(?P=ps)[0-9]{2,6})?"
    r"|[0-9]{2}(?P<pp>[ .-])[0-9]{2}(?P=pp)[0-9]{2}(?P=pp)[0-9]{2}(?:(?P=pp)[0-9]{2})?"
    r"|0[0-9]{3,4}[ -][0-9]{5,7}"
)
_DIGITS_START = r"(?<![\w.+/-])"
_DIGITS_END = r"(?![\w]|[.:/-][0-9])"
_NOT_DIGITS = re.compile(r"[^0-9]")

# Shaped like a phone number but a date or an IPv4 address: never a phone number.
_NOT_A_PHONE = re.compile(
    r"[0-9]{4}([-./ ])[0-9]{1,2}\1[0-9]{1,2}|[0-9]{1,2}([-./ ])[0-9]{1,2}\2[0-9]{4}"
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
)

# The skeleton: the text with every ASCII digit `0`, every capital `A` and every separator a
# number is written with (space, `.`, `-`) `s`. Each shape above leaves one of its scan's traces
# in it, whatever its digits; access logs, dates, times and short ids leave none, so most text
# is passed over at the speed of a few substring searches.
_SKELETON = str.maketrans(
    string.digits + string.ascii_uppercase + " .-", "0" * 10 + "A" * 26 + "s" * 3
)
_TRACES = {
    "email": ("@",),
    "letters": ("AA00", "AAs00"),
    "phone_international": ("+0",),
    "card_run": ("0" * 13,),
    # The SSN's `000s00s0000` holds `0s00s0000`, a card's four groups hold `0s0000s0000`, and
    # Amex's `0000s000000s0000` holds the trunk's `0000s00000`.
    "grouped": (
        "(00",
        *(f"0s{'0' * n}s0000" for n in range(2, 6)),
        "00s00s00s00",
        "0000s00000",
    ),
}

# Card network prefixes (IIN ranges) and the lengths each issues: Visa, Mastercard, American
# Express, Diners Club, Discover, JCB, UnionPay, Maestro.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),
    (51, 55, frozenset({16})),
    (2221, 2720, frozenset({16})),
    (34, 34, frozenset({15})),
    (37, 37, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (6011, 6011, frozenset(range(16, 20))),
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),
    (62, 62, frozenset(range(16, 20))),
    (50, 50, frozenset(range(13, 20))),
    (56, 69, frozenset(range(13, 20))),
)


@lru_cache(maxsize=4096)
def is_card_number(digits: str) -> bool:
    """Whether a digit string is a payment card number: a network's prefix and length, Luhn."""
    from stdnum import luhn

    issued = any(
        low <= int(digits[: len(str(low))]) <= high and len(digits) in lengths
        for low, high, lengths in _CARD_RANGES
    )
    return issued and bool(luhn.is_valid(digits))


@lru_cache(maxsize=4096)
def is_ssn(digits: str) -> bool:
    """Whether nine digits are a US Social Security number in the ranges ever issued."""
    from stdnum.us import ssn

    return bool(ssn.is_valid(digits))


def is_nino(text: str) -> bool:
    """Whether text shaped like a UK National Insurance number has a prefix ever allocated."""
    return text[:2] not in _NINO_UNUSED_PREFIXES


@lru_cache(maxsize=4096)
def is_iban(text: str) -> bool:
    """Whether text is an IBAN: its country's length and format, and the mod-97 check."""
    from stdnum import iban

    return bool(iban.is_valid(text))


@cache
def phone_checker(region: str) -> Callable[[str], bool]:
    """Whether text is a valid phone number, read as written in `region` when it has no `+`."""
    # phonenumbers takes 60 ms to import: loaded when the first phone-shaped text is seen.
    import phonenumbers

    # The same number recurs through a log (a support line, a customer's callback): parsed once.
    @lru_cache(maxsize=4096)
    def is_phone(text: str) -> bool:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.is_valid_number(number))

    return is_phone


@dataclass(frozen=True)
class _Scan:
    """One pattern, what its matches leave in the skeleton, and what decides a match's kind."""

    pattern: re.Pattern[str]
    traces: tuple[str, ...]
    kind_of: Callable[[re.Match[str]], PersonalData | None]


def _digit_pattern(shapes: dict[str, str]) -> re.Pattern[str]:
    """Shapes as named alternatives, each from where a number starts to where it ends."""
    body = "|".join(f"(?P<{name}>{shape})" for name, shape in shapes.items())
    return re.compile(f"{_DIGITS_START}(?:{body}){_DIGITS_END}", re.ASCII)


def _led_pattern(name: str, shape: tuple[str, str]) -> re.Pattern[str]:
    """One shape that starts with `first`, matched where a number starts, to where it ends.

    `first` comes before the check of what precedes it: a pattern that opens with a character
    (`+`, `[2-6]`) is searched for many times faster than one that opens with a lookbehind.
    """
    first, rest = shape
    start = f"(?<![\\w.+/-]{first})"
    return re.compile(f"(?P<{name}>{first}{start}{rest}){_DIGITS_END}", re.ASCII)


class PersonalDataRedactor:
    """Replaces personal data of the chosen kinds in text with markers naming each kind."""

    def __init__(
        self, kinds: Iterable[PersonalData] = tuple(PersonalData), phone_region: str = "US"
    ) -> None:
        self.kinds = frozenset(kinds)
        self.phone_region = phone_region
        """Where phone numbers written without `+` and a country code are taken to be from."""
        self._scans = self._choose_scans()

    def _choose_scans(self) -> tuple[_Scan, ...]:
        """The scans the chosen kinds need, in the order they run: the most specific first, so
        `+1 415-555-2671` goes whole before its national part could be taken alone."""
        kinds = self.kinds
        scans: list[_Scan] = []
        if PersonalData.EMAIL in kinds:
            scans.append(_Scan(_EMAIL, _TRACES["email"], _email_kind))
        if kinds & {PersonalData.IBAN, PersonalData.NATIONAL_ID}:
            scans.append(_Scan(_LETTERS, _TRACES["letters"], self._letter_kind))
        if PersonalData.PHONE in kinds:
            international = _led_pattern("phone", _PHONE_INTERNATIONAL)
            scans.append(_Scan(international, _TRACES["phone_international"], self._number_kind))
        grouped = {
            kind.value: shape
            for kind, shape in (
                (PersonalData.CARD, _CARD_GROUPED),
                (PersonalData.NATIONAL_ID, _SSN),
                (PersonalData.PHONE, _PHONE_NATIONAL),
            )
            if kind in kinds
        }
        if grouped:
            scans.append(_Scan(_digit_pattern(grouped), _TRACES["grouped"], self._number_kind))
        if PersonalData.CARD in kinds:
            runs = _led_pattern("card", _CARD_RUN)
            scans.append(_Scan(runs, _TRACES["card_run"], self._number_kind))
        return tuple(scans)

    def redact(self, text: str) -> tuple[str, int]:
        """Text with the chosen kinds of personal data replaced, and how many were replaced."""
        total = 0
        if not self._scans:
            return text, total
        # One skeleton serves every scan: a marker holds no digit and no `@`, so a replacement
        # never brings in a shape where the skeleton showed none.
        skeleton = text.translate(_SKELETON)
        for scan in self._scans:
            if any(_holds(skeleton, trace) for trace in scan.traces):
                text, n = _substitute(scan.pattern, scan.kind_of, text)
                total += n
        return text, total

    def _letter_kind(self, match: re.Match[str]) -> PersonalData | None:
        found = match.group(0).replace(" ", "")
        if match.group("iban"):
            return PersonalData.IBAN if PersonalData.IBAN in self.kinds and is_iban(found) else None
        if PersonalData.NATIONAL_ID in self.kinds and is_nino(found):
            return PersonalData.NATIONAL_ID
        return None

    def _number_kind(self, match: re.Match[str]) -> PersonalData | None:
        found = match.group(0)
        groups = match.groupdict()  # each pattern holds the groups of its own shapes only
        if groups.get("card"):
            return PersonalData.CARD if is_card_number(_digits(found)) else None
        if groups.get("national_id"):
            return PersonalData.NATIONAL_ID if is_ssn(_digits(found)) else None
        if len(_digits(found)) < 7 or _NOT_A_PHONE.fullmatch(found):
            return None
        return PersonalData.PHONE if phone_checker(self.phone_region)(found) else None


def _holds(skeleton: str, trace: str) -> bool:
    # A trace led by a character rare in logs is looked for by that character first: searching
    # for one character is a memchr, while a trace ending in `0` is slow to rule out in text
    # full of digits.
    if trace[0] in _RARE_LEADS and trace[0] not in skeleton:
        return False
    return trace in skeleton


_RARE_LEADS = frozenset("@+(")


def _digits(text: str) -> str:
    return _NOT_DIGITS.sub("", text)


def _email_kind(match: re.Match[str]) -> PersonalData | None:
    return None if match.group("tld").lower() in _FILE_ENDINGS else PersonalData.EMAIL


def _substitute(
    pattern: re.Pattern[str], kind_of: Callable[[re.Match[str]], PersonalData | None], text: str
) -> tuple[str, int]:
    """Replace each match `kind_of` names a kind for with that kind's marker; count them."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        kind = kind_of(match)
        if kind is None:
            return match.group(0)
        count += 1
        return marker(kind)

    return pattern.sub(replace, text), count
