"""Count and split SMS segments the way Twilio bills them.

A message is sent as GSM-7 when every character is in the GSM 03.38 default alphabet
(3GPP TS 23.038, section 6.2.1) or its extension table, otherwise as UCS-2 (UTF-16):

* GSM-7: one segment holds 160 septets; a longer message is cut into parts of 153
  septets (7 septets go to the concatenation header). An extension character costs two
  septets (escape + code) and is never split across parts.
* UCS-2: one segment holds 70 UTF-16 code units; a longer message is cut into parts of
  67 units. A character outside the BMP (most emoji) takes two units, and a user-perceived
  character (grapheme cluster: base + combining marks, emoji ZWJ sequences, skin tones,
  flags, keycaps) is kept whole, as Twilio's segment calculator does.

Sources: 3GPP TS 23.038 default alphabet (as mirrored in Unicode's ``GSM0338.TXT``),
Twilio's "What is the SMS character limit?" glossary page, and Twilio's open-source
message-segment-calculator (``UnicodeToGSM.ts``, ``SegmentedMessage.ts``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Final

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

GSM7_SINGLE: Final = 160
"""Septets in a message sent as one segment."""
GSM7_PART: Final = 153
"""Septets in each part of a concatenated message."""
UCS2_SINGLE: Final = 70
"""UTF-16 code units in a message sent as one segment."""
UCS2_PART: Final = 67
"""UTF-16 code units in each part of a concatenated message."""

# 3GPP TS 23.038 default alphabet, in table order (0x00-0x7F), without ESC at 0x1B.
# Position 0x09 is CAPITAL C with cedilla as in the 3GPP table and in Twilio's mapping;
# small ç (which Unicode's GSM0338.TXT substitutes there) is not GSM-7.
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Extension table (reached through ESC, so two septets each): FF ^ { } \ [ ~ ] | €.
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")
_GSM7_ALL: Final = _GSM7_BASIC | _GSM7_EXTENSION

_GSM7_PIECE: Final = re.compile("[" + re.escape("".join(sorted(_GSM7_EXTENSION))) + "]")

# Grapheme cluster classes (a reduced UAX #29 built on unicodedata categories).
_OTHER: Final = 0
_CR: Final = 1
_CONTROL: Final = 2  # LF and other Cc, Cf, Zl, Zp: always a cluster of their own
_EXTEND: Final = 3  # Mn, Me, ZWNJ, emoji modifiers, tags, halfwidth kana voicing marks
_SPACING: Final = 4  # Mc, Thai SARA AM, Lao AM
_ZWJ: Final = 5
_RI: Final = 6  # regional indicator: two make a flag
_PICT: Final = 7  # approximates Extended_Pictographic: © ®, symbols (So) from U+2000, emoji planes
_L: Final = 8  # Hangul leading jamo
_V: Final = 9  # Hangul vowel jamo
_T: Final = 10  # Hangul trailing jamo
_LV: Final = 11  # Hangul syllable without trailing consonant
_LVT: Final = 12  # Hangul syllable with trailing consonant

# Classes that may attach to the character before them.
_JOINS_PREVIOUS: Final = frozenset({_EXTEND, _SPACING, _ZWJ, _V, _T})
# Hangul syllable sequences (UAX #29 rules GB6-GB8): class -> classes that may follow.
_HANGUL_NEXT: Final = {
    _L: frozenset({_L, _V, _LV, _LVT}),
    _V: frozenset({_V, _T}),
    _LV: frozenset({_V, _T}),
    _T: frozenset({_T}),
    _LVT: frozenset({_T}),
}

# BMP blocks where every character is a one-unit cluster of its own unless something
# attaching follows it (no marks, no CR, no Hangul L jamo). Long runs of these are
# counted arithmetically; tests check each range against _grapheme_class.
_SIMPLE_RANGES: Final = (
    (0x0000, 0x000C),
    (0x000E, 0x02FF),  # ASCII, Latin-1, Latin Extended, spacing modifiers
    (0x0370, 0x0482),  # Greek, Cyrillic
    (0x048A, 0x052F),
    (0x05D0, 0x05EA),  # Hebrew letters
    (0x0621, 0x064A),  # Arabic letters
    (0x0660, 0x0669),
    (0x0E01, 0x0E30),  # Thai consonants and vowels
    (0x0E32, 0x0E32),
    (0x0E3F, 0x0E46),
    (0x1E00, 0x1FFF),  # Latin Extended Additional, Greek Extended
    (0x2000, 0x200B),  # spaces
    (0x200E, 0x2064),  # punctuation: curly quotes, dashes, ellipsis
    (0x20A0, 0x20CF),  # currency
    (0x2100, 0x2BFF),  # letterlike, arrows, math, shapes, symbols, dingbats
    (0x3000, 0x3029),  # CJK punctuation, kana
    (0x3030, 0x3098),
    (0x309B, 0x30FF),
    (0x3400, 0x4DBF),  # CJK ideographs
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xFF01, 0xFF9D),  # fullwidth forms, halfwidth katakana
)
_SIMPLE_RUN: Final = re.compile(
    "[" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in _SIMPLE_RANGES) + "]+"
)

_RUN: Final = -1
"""Width marking a piece made of one-unit clusters (see ``_cuts``)."""


def encoding(text: str) -> str:
    """Return the encoding Twilio uses to send ``text``.

    Args:
        text: The message body.

    Returns:
        ``"GSM-7"`` when every character is in the GSM 03.38 default alphabet or its
        extension table (the empty text included), otherwise ``"UCS-2"``.

    Examples:
        >>> encoding("¿Qué tal, Ñandú?")
        'GSM-7'
        >>> encoding("¿Cómo estás?")
        'UCS-2'
    """
    return GSM7 if _GSM7_ALL.issuperset(text) else UCS2


def septet_length(text: str) -> int:
    """Return the number of GSM-7 septets ``text`` takes.

    Args:
        text: A message body made only of GSM-7 characters.

    Returns:
        The length in septets: 1 per default-alphabet character, 2 per extension-table
        character (``|^€{}[]~\\`` and form feed).

    Raises:
        ValueError: If ``text`` has a character GSM-7 cannot encode.

    Examples:
        >>> septet_length("{50 €}")
        9
    """
    if not _GSM7_ALL.issuperset(text):
        bad = next(char for char in text if char not in _GSM7_ALL)
        raise ValueError(f"{bad!r} (U+{ord(bad):04X}) is not a GSM-7 character")
    return len(text) + sum(text.count(char) for char in _GSM7_EXTENSION)


def segment_count(text: str) -> int:
    """Return the number of segments Twilio sends (and bills) for ``text``.

    Args:
        text: The message body.

    Returns:
        0 for the empty text, 1 when it fits a single segment, otherwise the number of
        concatenated parts (see the module docstring for the limits and splitting rules).

    Examples:
        >>> segment_count("a" * 160), segment_count("a" * 161)
        (1, 2)
        >>> segment_count("😀" * 35), segment_count("😀" * 36)
        (1, 2)
    """
    if not text:
        return 0
    return len(_part_ends(text))


def segments(text: str) -> list[str]:
    """Split ``text`` into the parts Twilio sends, consistently with :func:`segment_count`.

    Args:
        text: The message body.

    Returns:
        The parts in order; joined, they give ``text`` back. Empty for the empty text.

    Examples:
        >>> [len(part) for part in segments("a" * 200)]
        [153, 47]
    """
    parts: list[str] = []
    start = 0
    for end in _part_ends(text):
        parts.append(text[start:end])
        start = end
    return parts


def _part_ends(text: str) -> list[int]:
    """Return the index in ``text`` where each part ends (the last one is ``len(text)``)."""
    if not text:
        return []
    if encoding(text) == GSM7:
        if septet_length(text) <= GSM7_SINGLE:
            return [len(text)]
        cuts = _cuts(text, _gsm7_pieces(text), GSM7_PART)
    else:
        if _utf16_units(text) <= UCS2_SINGLE:
            return [len(text)]
        cuts = _cuts(text, _ucs2_pieces(text), UCS2_PART)
    cuts.append(len(text))
    return cuts


def _cuts(text: str, pieces: Iterator[tuple[int, int, int]], limit: int) -> list[int]:
    """Pack the pieces of ``text`` greedily into parts of at most ``limit`` units.

    Args:
        text: The message body.
        pieces: ``(start, end, width)`` spans covering ``text`` in order. A width of
            ``_RUN`` means each character of the span is a one-unit cluster; any other
            width is the size in units of one indivisible cluster.
        limit: Units per part.

    Returns:
        The indices in ``text`` where a new part starts (never 0, never ``len(text)``).
    """
    cuts: list[int] = []
    used = 0
    for start, end, width in pieces:
        if width == _RUN:
            position = start
            while position < end:
                if used == limit:
                    cuts.append(position)
                    used = 0
                take = min(limit - used, end - position)
                position += take
                used += take
            continue
        if used + width <= limit:
            used += width
            continue
        if used:  # the cluster does not fit the room left: it starts the next part
            cuts.append(start)
        used = width
        if width > limit:  # a cluster larger than a part: split it between code points
            used = 0
            for index in range(start, end):
                units = _utf16_units(text[index])
                if used + units > limit:
                    cuts.append(index)
                    used = 0
                used += units
    return cuts


def _gsm7_pieces(text: str) -> Iterator[tuple[int, int, int]]:
    """Yield runs of one-septet characters and each two-septet extension character."""
    position = 0
    for match in _GSM7_PIECE.finditer(text):
        start = match.start()
        if start > position:
            yield position, start, _RUN
        yield start, start + 1, 2
        position = start + 1
    if position < len(text):
        yield position, len(text), _RUN


def _ucs2_pieces(text: str) -> Iterator[tuple[int, int, int]]:
    """Yield the grapheme clusters of ``text`` with their size in UTF-16 code units.

    Long stretches of characters that each stand alone (``_SIMPLE_RUN``) are yielded as
    one ``_RUN`` piece; everything else goes through :func:`_cluster_end`.
    """
    length = len(text)
    position = 0
    while position < length:
        match = _SIMPLE_RUN.match(text, position)
        if match:
            end = match.end()
            if end < length and _grapheme_class(text[end]) in _JOINS_PREVIOUS:
                end -= 1  # the last character is the base of the cluster that follows
            if end > position:
                yield position, end, _RUN
                position = end
                continue
        end = _cluster_end(text, position)
        yield position, end, _utf16_units(text[position:end])
        position = end


def _cluster_end(text: str, start: int) -> int:
    """Return where the grapheme cluster that begins at ``text[start]`` ends.

    Follows the UAX #29 extended grapheme cluster rules GB3-GB13, except GB9b (the few
    "Prepend" characters, such as the Arabic number signs, start their own cluster).
    """
    length = len(text)
    kind = _grapheme_class(text[start])
    end = start + 1
    if kind == _CR:  # GB3: CR LF stay together; GB4: break after any other control
        return end + 1 if end < length and text[end] == "\n" else end
    if kind == _CONTROL:
        return end
    if kind == _RI:  # GB12/GB13: regional indicators pair up into flags
        if end < length and _grapheme_class(text[end]) == _RI:
            end += 1
    elif kind in _HANGUL_NEXT:  # GB6-GB8: Hangul syllable sequences
        while end < length and (following := _grapheme_class(text[end])) in _HANGUL_NEXT[kind]:
            kind = following
            end += 1
    pictographic = kind == _PICT
    while end < length:  # GB9, GB9a, GB11: marks, ZWJ and emoji ZWJ sequences
        kind = _grapheme_class(text[end])
        if kind == _EXTEND:
            end += 1
        elif kind == _SPACING:
            end += 1
            pictographic = False
        elif kind == _ZWJ:
            end += 1
            if pictographic and end < length and _grapheme_class(text[end]) == _PICT:
                end += 1
            else:
                pictographic = False
        else:
            break
    return end


@functools.cache
def _grapheme_class(char: str) -> int:
    """Return the grapheme cluster class of one character (see the ``_OTHER``... constants)."""
    code = ord(char)
    if char == "\r":
        return _CR
    if char == "\u200d":
        return _ZWJ
    if 0x1F1E6 <= code <= 0x1F1FF:
        return _RI
    if (
        0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tags (subdivision flags such as England's)
        or char in "\u200c\uff9e\uff9f"  # ZWNJ, halfwidth katakana voicing marks
    ):
        return _EXTEND
    category = unicodedata.category(char)
    if category in ("Mn", "Me"):  # includes variation selectors and the keycap mark
        return _EXTEND
    if category == "Mc" or char in "\u0e33\u0eb3":
        return _SPACING
    if 0x1100 <= code <= 0x115F or 0xA960 <= code <= 0xA97C:
        return _L
    if 0x1160 <= code <= 0x11A7 or 0xD7B0 <= code <= 0xD7C6:
        return _V
    if 0x11A8 <= code <= 0x11FF or 0xD7CB <= code <= 0xD7FB:
        return _T
    if 0xAC00 <= code <= 0xD7A3:
        return _LV if (code - 0xAC00) % 28 == 0 else _LVT
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return _CONTROL
    if char in "©®" or (code >= 0x2000 and category == "So") or 0x1F000 <= code <= 0x1FFFD:
        return _PICT
    return _OTHER


def _utf16_units(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units (2 per character beyond the BMP)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
