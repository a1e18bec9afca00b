"""Tests for bot.sms: GSM-7 / UCS-2 detection and Twilio-style segment counting.

Limits: GSM-7 160 septets in one segment, else parts of 153; UCS-2 70 UTF-16 code units
in one segment, else parts of 67. Expected numbers are worked out by hand in comments.
"""

from __future__ import annotations

import pytest

from bot.sms import encoding, segment_count, segments, septet_length

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦
SPAIN = "\U0001f1ea\U0001f1f8"  # 🇪🇸: two regional indicators
MEXICO = "\U0001f1f2\U0001f1fd"  # 🇲🇽
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # 👍🏽: emoji + skin-tone modifier
KEYCAP_ONE = "1\ufe0f\u20e3"  # 1️⃣: digit + VS16 + combining enclosing keycap
GRIN = "\U0001f600"  # 😀


def utf16_units(text: str) -> int:
    """UTF-16 code units of ``text``, computed independently of bot.sms."""
    return len(text.encode("utf-16-le")) // 2


# --- encoding -------------------------------------------------------------------------

# Every character of the 3GPP TS 23.038 default alphabet (ESC aside), in table order.
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_whole_basic_table_and_extension_table_are_gsm7() -> None:
    assert len(GSM7_BASIC_TABLE) == 127  # 128 positions minus ESC
    assert encoding(GSM7_BASIC_TABLE) == "GSM-7"
    assert encoding("|^€{}[]~\\\f") == "GSM-7"


@pytest.mark.parametrize("char", ["ñ", "é", "Ñ", "¿", "¡", "ü", "à", "è", "É", "Ç", "€", "\r\n"])
def test_spanish_and_table_characters_stay_gsm7(char: str) -> None:
    assert encoding(f"Hola {char} que tal") == "GSM-7"
    assert encoding(char) == "GSM-7"


@pytest.mark.parametrize(
    "char",
    [
        "á",
        "ó",
        "í",
        "ú",
        "Á",
        "ç",  # only CAPITAL Ç is at 0x09 in the 3GPP table
        "\u2019",  # ’ right single (curly) quote
        "\u201c",  # “ left double (curly) quote
        "\u2014",  # — em dash
        "\u2026",  # … ellipsis
        "\u00a0",  # non-breaking space
        "`",  # backtick: the only printable ASCII character missing from GSM-7
        "\t",
        "\u0391",  # Greek capital Alpha, not the Latin A of the table
        GRIN,
    ],
)
def test_characters_outside_the_table_switch_to_ucs2(char: str) -> None:
    assert encoding("Hola mama " + char) == "UCS-2"


# --- septet_length --------------------------------------------------------------------


def test_extension_characters_count_two_septets() -> None:
    assert septet_length("abc") == 3
    assert septet_length("€") == 2
    assert septet_length("\f") == 2
    # "a", "b", " ", "c" = 4 basic; | ^ € { } [ ] ~ \ and form feed = 10 extension
    # characters x 2 = 20; total 24.
    assert septet_length("a|^€{}[]~\\b\f c") == 24


def test_septet_length_rejects_ucs2_text() -> None:
    with pytest.raises(ValueError, match="U\\+00E1"):
        septet_length("mamá")


# --- GSM-7 segments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1, 1),
        (160, 1),
        (161, 2),  # over 160: parts of 153 -> 153 + 8
        (306, 2),  # 2 x 153 = 306
        (307, 3),  # 153 + 153 + 1
        (459, 3),  # 3 x 153
        (460, 4),
    ],
)
def test_ascii_segment_count(length: int, expected: int) -> None:
    assert segment_count("a" * length) == expected


def test_extension_characters_fill_segments_faster() -> None:
    # 80 x 2 = 160 septets: one segment.
    assert segment_count("€" * 80) == 1
    # 80 x 2 + 1 = 161 septets: two parts. 76 euros = 152 septets (a 77th would make
    # 154), so the first part closes at 152 and the second has 4 euros + "a" = 9.
    assert [len(part) for part in segments("€" * 80 + "a")] == [76, 5]
    # 160 "a" fit one segment, one "{" more makes 162 septets.
    assert segment_count("a" * 159 + "{") == 2  # 159 + 2 = 161


def test_extension_character_is_never_split_across_parts() -> None:
    # 152 + 2 + 10 = 164 septets. The euro would need septets 153-154, so the first
    # part closes early at 152 septets and the euro opens the second part.
    text = "a" * 152 + "€" + "b" * 10
    assert segments(text) == ["a" * 152, "€" + "b" * 10]
    # With one "a" less the euro ends exactly on septet 153: 151 + 2 = 153.
    text = "a" * 151 + "€" + "b" * 10
    assert segments(text) == ["a" * 151 + "€", "b" * 10]


def test_straddling_extension_character_costs_an_extra_segment() -> None:
    # 152 + 2 + 152 = 306 septets = 2 x 153, but the euro cannot straddle parts:
    # part 1 = 152, part 2 = euro + 151 "a" = 153, part 3 = the last "a".
    text = "a" * 152 + "€" + "a" * 152
    assert septet_length(text) == 306
    assert segment_count(text) == 3
    assert [septet_length(part) for part in segments(text)] == [152, 153, 1]


def test_spanish_text_with_gsm7_accents_only() -> None:
    text = (
        "¿Qué tal, Ñoño? Mañana te veré en la visita del lunes. ¡Feliz cumpleaños a Begoña "
        "y a Inés! Saluda a la niña de mi parte. Te quiero mucho."
    )
    assert len(text) == 138
    assert encoding(text) == "GSM-7"
    assert segment_count(text) == 1
    # 138 + 1 + 138 = 277 septets: more than 160, at most 2 x 153 = 306.
    assert segment_count(text + " " + text) == 2
    # One "ó" turns the message into UCS-2: 138 + 7 = 145 units, 67 + 67 + 11.
    assert segment_count(text + " Adiós.") == 3


# --- UCS-2 segments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (70, 1),
        (71, 2),  # over 70: parts of 67 -> 67 + 4
        (134, 2),  # 2 x 67 = 134
        (135, 3),  # 67 + 67 + 1
        (201, 3),  # 3 x 67
        (202, 4),
    ],
)
def test_ucs2_segment_count(length: int, expected: int) -> None:
    assert segment_count("á" * length) == expected
    assert segment_count("á" + "a" * (length - 1)) == expected


def test_long_spanish_text_with_accents() -> None:
    text = (
        "Hola mamá, ya estoy de vuelta en el módulo. Mañana te llamo a las tres; el abogado "
        "dice que la audiencia será el próximo miércoles. ¿Necesitas algo? Dile a Lucía que "
        "la extraño y que siga estudiando. Te quiero mucho, cuídate."
    )
    assert len(text) == 225  # all in the BMP, no combining marks: 225 units
    assert encoding(text) == "UCS-2"
    # 225 = 67 + 67 + 67 + 24
    assert segment_count(text) == 4
    assert [len(part) for part in segments(text)] == [67, 67, 67, 24]


def test_emoji_count_two_units() -> None:
    assert segment_count(GRIN * 35) == 1  # 35 x 2 = 70
    assert segment_count(GRIN * 36) == 2  # 72 > 70
    assert segment_count("a" * 68 + GRIN) == 1  # 68 + 2 = 70
    assert segment_count("a" * 69 + GRIN) == 2  # 69 + 2 = 71


def test_emoji_is_never_split_at_the_67_unit_boundary() -> None:
    # 66 + 2 + 10 = 78 units. The emoji would take units 67-68, so the first part
    # closes at 66 units and the emoji opens the second part (2 + 10 = 12 units).
    text = "a" * 66 + GRIN + "b" * 10
    assert segments(text) == ["a" * 66, GRIN + "b" * 10]
    # 65 + 2 = 67: the emoji ends exactly on the boundary.
    text = "a" * 65 + GRIN + "b" * 10
    assert segments(text) == ["a" * 65 + GRIN, "b" * 10]


def test_straddling_emoji_costs_an_extra_segment() -> None:
    # 66 + 2 + 66 = 134 units = 2 x 67, but the emoji cannot straddle parts:
    # part 1 = 66, part 2 = emoji + 65 = 67, part 3 = the last "á".
    text = "á" * 66 + GRIN + "á" * 66
    assert utf16_units(text) == 134
    assert segment_count(text) == 3
    assert [utf16_units(part) for part in segments(text)] == [66, 67, 1]


def test_zwj_family_emoji_is_not_split() -> None:
    # The family is 4 emoji (2 units each) joined by 3 ZWJ (1 unit each): 11 units.
    assert utf16_units(FAMILY) == 11
    # 60 + 11 + 10 = 81 units; 60 + 11 = 71 > 67, so the family opens the second part
    # (a plain 67-unit cut would leave 👨 ZWJ 👩 ZWJ and half of the next surrogate pair).
    text = "a" * 60 + FAMILY + "b" * 10
    assert segments(text) == ["a" * 60, FAMILY + "b" * 10]
    assert segment_count(text) == 2


def test_flag_is_not_split() -> None:
    # A flag is 2 regional indicators, 4 units. 65 + 4 + 5 = 74 units; 65 + 4 = 69 > 67,
    # so the flag opens the second part instead of leaving one indicator behind.
    text = "a" * 65 + SPAIN + "b" * 5
    assert segments(text) == ["a" * 65, SPAIN + "b" * 5]


def test_adjacent_flags_pair_up_correctly() -> None:
    # 63 + 4 = 67: Spain ends the first part exactly; Mexico opens the second
    # (the cut falls between the two flags, not inside one): 63 + 8 + 5 = 76 units.
    text = "a" * 63 + SPAIN + MEXICO + "b" * 5
    assert segments(text) == ["a" * 63 + SPAIN, MEXICO + "b" * 5]
    # 20 flags = 80 units: 16 flags = 64 units (a 17th would make 68), then 4.
    assert segments(SPAIN * 20) == [SPAIN * 16, SPAIN * 4]


@pytest.mark.parametrize(
    ("cluster", "units"),
    [
        (THUMBS_UP_MEDIUM, 4),  # 2 + 2
        (KEYCAP_ONE, 3),  # 1 + 1 + 1
        ("e\u0301", 2),  # e + combining acute (decomposed é)
        ("\u2764\ufe0f", 2),  # ❤️ red heart + VS16
        ("\r\n", 2),  # CR LF is one cluster too
    ],
)
def test_other_grapheme_clusters_are_not_split(cluster: str, units: int) -> None:
    assert utf16_units(cluster) == units
    # "á" * 66 leaves 1 unit of room in the first part: too little for the cluster,
    # which opens the second part. 66 + units + 5 > 70 so the text needs two parts.
    text = "á" * 66 + cluster + "b" * 5
    assert segments(text) == ["á" * 66, cluster + "b" * 5]


def test_grapheme_larger_than_a_part_is_split_between_code_points() -> None:
    # "e" + 100 combining accents: one cluster of 101 units, more than 67, so it is
    # split between code points: 67 + 34.
    text = "e" + "\u0301" * 100
    assert [len(part) for part in segments(text)] == [67, 34]


# --- segments() and edge cases --------------------------------------------------------

MIXED_TEXTS = [
    "a" * 500,
    "€" * 200 + "a" * 3 + "[x]" * 40,
    "á" * 300,
    (GRIN + "a") * 100,
    (FAMILY + " " + SPAIN + MEXICO + " " + KEYCAP_ONE + THUMBS_UP_MEDIUM + "é") * 20,
    "Hola mamá \u2014 ¿cómo estás? \u201cTodo bien\u201d\u2026 " * 15,
    "Línea uno\r\nLínea dos\r\n" * 20,
    "e" + "\u0301" * 150 + "fin" + GRIN * 40,
]


@pytest.mark.parametrize("text", MIXED_TEXTS)
def test_segments_rebuild_the_text_within_limits(text: str) -> None:
    parts = segments(text)
    assert "".join(parts) == text
    assert len(parts) == segment_count(text)
    assert all(parts)
    if encoding(text) == "GSM-7":
        assert all(septet_length(part) <= 153 for part in parts)
    else:
        assert all(utf16_units(part) <= 67 for part in parts)


def test_short_text_is_a_single_segment() -> None:
    assert segments("Hola") == ["Hola"]
    assert segments("á" * 70) == ["á" * 70]


def test_empty_text() -> None:
    assert segment_count("") == 0
    assert segments("") == []
    assert septet_length("") == 0
    assert encoding("") == "GSM-7"
