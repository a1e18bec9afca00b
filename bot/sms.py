"""Count and split SMS segments the way Twilio bills them.

A message is sent as GSM-7 when every character is in the GSM 03.38 default alphabet
(3GPP TS 23.038, section 6.2.1) or its extension table, otherwise as UCS-2 (UTF-16):

* GSM-7: one segment holds 160 septets; a longer message is cut into parts of 153
  septets (the other 7 carry the concatenation header). An extension character costs
  two septets (escape + code) and is never split across parts.
* UCS-2: one segment holds 70 UTF-16 code units; a longer message is cut into parts of
  67 units. A character outside the BMP (most emoji) takes two units, and a
  user-perceived character (grapheme cluster: base + combining marks, emoji ZWJ
  sequences, skin tones, flags, keycaps) is kept whole, as in Twilio's segment
  calculator. Only a cluster larger than a whole part is split, between code points.

Sources: the 3GPP TS 23.038 default alphabet (also in Unicode's ``GSM0338.TXT``),
Twilio's "What is the SMS character limit?" page, and Twilio's open-source
message-segment-calculator (``UnicodeToGSM.ts``, ``SegmentedMessage.ts``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Final

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

GSM7_SINGLE: Final = 160
"""Septets in a message sent as a single segment."""
GSM7_PART: Final = 153
"""Septets in each part of a concatenated message."""
UCS2_SINGLE: Final = 70
"""UTF-16 code units in a message sent as a single segment."""
UCS2_PART: Final = 67
"""UTF-16 code units in each part of a concatenated message."""

# The 3GPP TS 23.038 default alphabet in table order (0x00-0x7F), without ESC (0x1B).
# 0x09 is CAPITAL C with cedilla, as in the 3GPP table and in Twilio's mapping; small ç,
# which Unicode's GSM0338.TXT puts there instead, is not GSM-7. The backtick and the
# lookalike Greek capitals (Α, Β, Ε...) are not in the table either.
_GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table, reached through ESC (so two septets each): FF ^ { } \ [ ~ ] | €.
_GSM7_EXTENSION: Final = "\f^{}\\[~]|€"
_NOT_GSM7: Final = re.compile("[^" + re.escape(_GSM7_BASIC + _GSM7_EXTENSION) + "]")
_ESC: Final = "\x1b"

_REGIONAL_INDICATORS: Final = "".join(map(chr, range(0x1F1E6, 0x1F200)))

# Grapheme cluster classes: a reduced UAX #29 built on unicodedata categories.
_OTHER: Final = 0
_CR: Final = 1
_CONTROL: Final = 2  # LF and the rest of Cc, Cf, Zl, Zp: always a cluster of their own
_EXTEND: Final = 3  # Mn, Me (variation selectors, keycap), ZWNJ, skin tones, tags
_SPACING: Final = 4  # Mc, Thai SARA AM, Lao AM
_ZWJ: Final = 5
_RI: Final = 6  # regional indicator: two make a flag
_PICT: Final = 7  # approximates Extended_Pictographic: © ®, So from U+2000, emoji planes
_L: Final = 8  # Hangul leading consonant jamo
_V: Final = 9  # Hangul vowel jamo
_T: Final = 10  # Hangul trailing consonant jamo
_LV: Final = 11  # Hangul syllable without a trailing consonant
_LVT: Final = 12  # Hangul syllable with a trailing consonant

_ATTACHING: Final = frozenset({_EXTEND, _SPACING, _ZWJ})
_BREAKING: Final = frozenset({_CR, _CONTROL})
# Hangul syllable sequences (GB6-GB8): class -> classes that continue the syllable.
_HANGUL_NEXT: Final = {
    _L: frozenset({_L, _V, _LV, _LVT}),
    _V: frozenset({_V, _T}),
    _LV: frozenset({_V, _T}),
    _T: frozenset({_T}),
    _LVT: frozenset({_T}),
}


def encoding(text: str) -> str:
    """Return the encoding Twilio uses to send ``text``.

    Args:
        text: The message body.

    Returns:
        ``"GSM-7"`` when every character is in the GSM 03.38 default alphabet or its
        extension table (so also for the empty text), otherwise ``"UCS-2"``.

    Examples:
        >>> encoding("¿Qué tal, Ñoño?")
        'GSM-7'
        >>> encoding("¿Cómo estás?")
        'UCS-2'
    """
    return UCS2 if _NOT_GSM7.search(text) else GSM7


_PLAIN: Final = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
     "\u2026": "...", "\u00a0": " ", "\u202f": " "}
)  # fmt: skip


def plain(text: str) -> str:
    """``text`` with typographic punctuation made plain and emoji dropped.

    For quoting a person's words back to them: curly quotes, dashes, ellipses and
    non-breaking spaces would switch a whole text to UCS-2 and halve its room.

    Examples:
        >>> plain("it\u2019s \u201cfine\u201d \u2014 ok\u2026 \U0001f600")
        'it\'s "fine" - ok... '
    """
    kept = []
    for char in text.translate(_PLAIN):
        category = unicodedata.category(char)
        if category in ("So", "Cs", "Co") or char in "\u200d\ufe0f\ufe0e":
            continue
        kept.append(char)
    return "".join(kept)


_UNPRINTABLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def printable(text: str) -> str:
    """``text`` without control characters (an echo of what someone typed may carry them;
    they cannot be sent, and XML such as TwiML cannot hold them). Tabs and line breaks stay."""
    return _UNPRINTABLE.sub("", text)


def septet_length(text: str) -> int:
    """Return the number of GSM-7 septets ``text`` takes.

    Args:
        text: A message body made only of GSM-7 characters.

    Returns:
        One septet per default-alphabet character, two per extension-table character
        (``|^€{}[]~\\`` and form feed).

    Raises:
        ValueError: If ``text`` has a character that GSM-7 cannot encode.

    Examples:
        >>> septet_length("{50 €}")
        9
    """
    if bad := _NOT_GSM7.search(text):
        char = bad.group()
        raise ValueError(f"{char!r} (U+{ord(char):04X}) is not a GSM-7 character")
    return len(_escaped(text))


def segment_count(text: str) -> int:
    """Return the number of segments Twilio sends (and bills) for ``text``.

    Args:
        text: The message body.

    Returns:
        0 for the empty text, 1 when it fits a single segment, otherwise the number of
        parts of the concatenated message.

    Examples:
        >>> segment_count("a" * 160), segment_count("a" * 161)
        (1, 2)
        >>> segment_count("😀" * 35), segment_count("😀" * 36)
        (1, 2)
    """
    return len(_part_ends(text))


def segments(text: str) -> list[str]:
    """Split ``text`` into the parts Twilio sends, consistently with :func:`segment_count`.

    Args:
        text: The message body.

    Returns:
        The parts in order (none for the empty text); joined, they give ``text`` back.

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
        return _gsm7_part_ends(text)
    return _ucs2_part_ends(text)


def _gsm7_part_ends(text: str) -> list[int]:
    """Cut GSM-7 ``text`` into parts of at most 153 septets without splitting an escape."""
    septets = _escaped(text)  # one character per septet
    if len(septets) <= GSM7_SINGLE:
        return [len(text)]
    ends: list[int] = []
    start = index = 0  # index: where the part starting at ``septets[start]`` is in ``text``
    while start < len(septets):
        end = min(start + GSM7_PART, len(septets))
        if septets[end - 1] == _ESC:
            end -= 1  # the extension character would straddle the parts: it moves on
        index += end - start - septets.count(_ESC, start, end)
        ends.append(index)
        start = end
    return ends


def _ucs2_part_ends(text: str) -> list[int]:
    """Cut UCS-2 ``text`` into parts of at most 67 UTF-16 units, keeping graphemes whole.

    Each part takes as many whole grapheme clusters as fit; a cluster that does not fit
    starts the next part. A cluster larger than a part on its own is split between code
    points. The work grows with the length of the text, not with its square.
    """
    length = len(text)
    if _utf16_units(text) <= UCS2_SINGLE:
        return [length]
    ends: list[int] = []
    start = anchor = 0  # anchor: the last known cluster boundary at or before start
    while start < length:
        end = _fit_utf16(text, start, UCS2_PART)
        if end < length:
            cut = end
            while cut > start and not _is_grapheme_boundary(text, cut, anchor):
                cut -= 1
            if cut > start:
                end = anchor = cut
            # else: the cluster at start is larger than a part; split it at ``end``.
        ends.append(end)
        start = end
    return ends


def _fit_utf16(text: str, start: int, limit: int) -> int:
    """Return the largest ``end`` such that ``text[start:end]`` is at most ``limit`` units.

    Every code point is 1 or 2 units, so dropping ``ceil(excess / 2)`` code points from
    the end never drops more than needed; the excess at least halves at each round.
    """
    end = min(len(text), start + limit)
    excess = _utf16_units(text[start:end]) - limit
    while excess > 0:
        drop = (excess + 1) // 2
        excess -= _utf16_units(text[end - drop : end])
        end -= drop
    return end


def _is_grapheme_boundary(text: str, index: int, anchor: int) -> bool:
    """Tell whether a grapheme cluster boundary lies just before ``text[index]``.

    Follows the UAX #29 extended grapheme cluster rules GB3-GB13 except two that no SMS
    of ours should meet: GB9b (the few "Prepend" characters, such as the Arabic number
    signs, start their own cluster here) and GB9c (Indic conjuncts, new in Unicode 15.1
    and unknown to the grapheme splitter Twilio's calculator uses).

    Args:
        text: The message body.
        index: A position with ``anchor < index < len(text)``.
        anchor: A position known to be a boundary; look-behind stops there.
    """
    before = _grapheme_class(text[index - 1])
    after = _grapheme_class(text[index])
    if before == _CR and text[index] == "\n":
        return False  # GB3: CR LF
    if before in _BREAKING or after in _BREAKING:
        return True  # GB4, GB5
    if after in _HANGUL_NEXT.get(before, ()):
        return False  # GB6-GB8: Hangul syllables
    if after in _ATTACHING:
        return False  # GB9, GB9a: marks, ZWJ, spacing marks
    if before == _ZWJ and after == _PICT:  # GB11: emoji ZWJ sequences
        position = index - 2
        while position >= anchor and _grapheme_class(text[position]) == _EXTEND:
            position -= 1
        return not (position >= anchor and _grapheme_class(text[position]) == _PICT)
    if before == _RI and after == _RI:  # GB12, GB13: regional indicators pair up
        preceding = text[anchor:index]
        run = len(preceding) - len(preceding.rstrip(_REGIONAL_INDICATORS))
        return run % 2 == 0
    return True  # GB999


@functools.cache
def _grapheme_class(char: str) -> int:
    """Return the grapheme cluster class of one character (one of the ``_OTHER``... ints)."""
    code = ord(char)
    if char == "\r":
        return _CR
    if char == "\u200d":
        return _ZWJ
    if char in _REGIONAL_INDICATORS:
        return _RI
    if (
        0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tags (subdivision flags such as England's)
        or char in "\u200c\uff9e\uff9f"  # ZWNJ, halfwidth katakana voicing marks
    ):
        return _EXTEND
    category = unicodedata.category(char)
    if category in ("Mn", "Me"):
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


def _escaped(text: str) -> str:
    """Return GSM-7 ``text`` with ESC before each extension character: one char per septet."""
    for char in _GSM7_EXTENSION:
        if char in text:
            text = text.replace(char, _ESC + char)
    return text


def _utf16_units(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units (2 per character beyond the BMP)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
