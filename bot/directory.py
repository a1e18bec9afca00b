"""Facilities and people in prison: states and their ID formats, search, CSV import."""

from __future__ import annotations

import csv
import difflib
import functools
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.exceptions import DirectoryImportError
from bot.store.models import Facility, Inmate

logger = logging.getLogger(__name__)

STATES_CSV = Path(__file__).resolve().parent / "data" / "states.csv"
PAGE_SIZE = 5
FACILITY_COLUMNS = [
    "facility_id",
    "state",
    "name",
    "timezone",
    "emessages",
    "photos",
    "videograms",
    "replies",
    "mail_runs",
]
INMATE_COLUMNS = ["state", "inmate_id", "first_name", "last_name", "facility_id", "status"]
# Two-letter codes that are also everyday words: asked back before we take them.
CODES_THAT_ARE_WORDS = frozenset({"hi", "in", "me", "oh", "ok", "or", "de", "pa", "la", "ma"})


@dataclass(frozen=True)
class State:
    """A state and the shape of its inmate IDs: some capital letters, then digits."""

    code: str
    name: str
    name_es: str
    timezone: str
    id_letters: int
    id_digits_min: int
    id_digits_max: int
    id_example: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    def display_name(self, language: str) -> str:
        """The state's name in ``language``."""
        return self.name_es if language == "es" else self.name

    def id_fits(self, inmate_id: str) -> bool:
        """True when a normalized ID has this state's shape."""
        return bool(self.pattern.fullmatch(inmate_id))

    def normalize_id(self, text: str) -> str:
        """An ID as typed, made comparable: capitals and digits only.

        ``#01-234 567`` -> ``01234567``. A leading word such as ``TDCJ`` or ``ID`` is dropped
        only when the whole does not fit this state's format and the rest does.
        """
        cleaned = re.sub(r"[^0-9A-Za-z]", "", text).upper()
        if not self.id_fits(cleaned):
            bare = _ID_PREFIX.sub("", cleaned)
            if self.id_fits(bare):
                return bare
        return cleaned


@functools.cache
def states() -> dict[str, State]:
    """Every state by its two-letter code, from ``bot/data/states.csv``."""
    result: dict[str, State] = {}
    with STATES_CSV.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            letters, low, high = (
                int(row["id_letters"]),
                int(row["id_digits_min"]),
                int(row["id_digits_max"]),
            )
            pattern = re.compile(rf"[A-Z]{{{letters}}}\d{{{low},{high}}}")
            result[row["code"]] = State(
                code=row["code"],
                name=row["name"],
                name_es=row["name_es"],
                timezone=row["timezone"],
                id_letters=letters,
                id_digits_min=low,
                id_digits_max=high,
                id_example=row["id_example"],
                pattern=pattern,
            )
    return result


def fold(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse spaces: ``Ramírez`` -> ``ramirez``.

    Apostrophes vanish (``O'Brien`` -> ``obrien``); hyphens become spaces.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = re.sub(r"['\u2019`]", "", plain)
    plain = re.sub(r"[^\w]+", " ", plain)
    return " ".join(plain.replace("_", " ").split())


@functools.cache
def _state_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for state in states().values():
        names[fold(state.name)] = state.code
        names[fold(state.name_es)] = state.code
    return names


@dataclass(frozen=True)
class StateMatch:
    """A state read from what someone typed; ``sure`` is False for a guess to confirm."""

    state: State
    sure: bool


def find_state(text: str) -> StateMatch | None:
    """Read a state from free text: a code, an English or Spanish name, or a near miss.

    Args:
        text: What the person typed (``tx``, ``Texas``, ``Texsa``, ``Nuevo México``).

    Returns:
        The match, or ``None`` when nothing is close.
    """
    folded = fold(text)
    for prefix in ("state of ", "estado de ", "the state of "):
        if folded.startswith(prefix):
            folded = folded[len(prefix) :]
    if not folded:
        return None
    compact = folded.replace(" ", "")
    by_code = states().get(compact.upper()) if len(compact) == 2 else None
    if by_code:
        return StateMatch(by_code, sure=compact not in CODES_THAT_ARE_WORDS)
    names = _state_names()
    if folded in names:
        return StateMatch(states()[names[folded]], sure=True)
    close = difflib.get_close_matches(folded, list(names), n=1, cutoff=0.72)
    if close:
        return StateMatch(states()[names[close[0]]], sure=False)
    return None


_ID_PREFIX = re.compile(r"^(ID|NO|NUMBER|NUM|TDCJ|CDCR|DOC|DIN|INMATE)")


def id_key(inmate_id: str) -> str:
    """The form IDs are matched on: leading zeros do not count (``0098765`` = ``98765``)."""
    return inmate_id.lstrip("0") or "0"


def looks_like_id(text: str) -> bool:
    """True when the text carries digits, so it is an ID rather than a name."""
    return any(ch.isdigit() for ch in text)


def find_by_id(session: Session, state: State, inmate_id: str) -> Inmate | None:
    """The person with this ID in this state, or ``None``."""
    query = select(Inmate).where(Inmate.state == state.code, Inmate.id_key == id_key(inmate_id))
    return session.scalars(query).first()


def name_candidates(text: str) -> list[tuple[str, str | None]]:
    """Ways to read a typed name as (last, first-prefix) pairs.

    ``Ruiz, Ana`` is last then first. Without a comma every split is tried both ways, so
    ``Ana Ruiz``, ``Ruiz Ana`` and ``De la Cruz`` all find their person.
    """
    if "," in text:
        last, _, first = text.partition(",")
        last_key, first_key = fold(last), fold(first)
        return [(last_key, first_key or None)] if last_key else []
    words = fold(text).split()
    if not words:
        return []
    pairs: list[tuple[str, str | None]] = [(" ".join(words), None)]
    for i in range(1, len(words)):
        pairs.append((" ".join(words[i:]), " ".join(words[:i])))
        pairs.append((" ".join(words[:i]), " ".join(words[i:])))
    if len(words) > 2:  # a middle name the directory may not have: "Ana Maria Ruiz"
        pairs.append((words[-1], words[0]))
    return pairs


def search_by_name(
    session: Session, state: State, text: str, offset: int = 0, limit: int = PAGE_SIZE
) -> tuple[list[Inmate], int]:
    """People in ``state`` whose name matches, one page at a time.

    Args:
        session: The SQL session.
        state: Where to look.
        text: The name as typed.
        offset: How many matches to skip (for MORE).
        limit: Page size.

    Returns:
        The page of people (by last name, first name, ID) and the total number of matches.
    """
    clauses = []
    for last, first in name_candidates(text):
        clause = Inmate.last_key == last
        if first:
            clause = and_(clause, Inmate.first_key.startswith(first, autoescape=True))
        clauses.append(clause)
    if not clauses:
        return [], 0
    where = and_(Inmate.state == state.code, or_(*clauses))
    total = session.scalar(select(func.count()).select_from(Inmate).where(where)) or 0
    page = session.scalars(
        select(Inmate)
        .where(where)
        .order_by(Inmate.last_key, Inmate.first_key, Inmate.inmate_id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(page), total


def state_has_service(session: Session, state: State) -> bool:
    """True when the directory has at least one facility in ``state``."""
    return (
        session.scalar(select(Facility.id).where(Facility.state == state.code).limit(1)) is not None
    )


# --- CSV import -----------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import changed."""

    facilities_added: int = 0
    facilities_updated: int = 0
    people_added: int = 0
    people_updated: int = 0
    transfers: int = 0
    releases: int = 0
    # People who moved: (inmate id, new facility id), or None for a release.
    moves: list[tuple[int, str | None]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"facilities: {self.facilities_added} added, {self.facilities_updated} updated; "
            f"people: {self.people_added} added, {self.people_updated} updated, "
            f"{self.transfers} transferred, {self.releases} released"
        )


_BOOL = {"yes": True, "no": False, "y": True, "n": False, "true": True, "false": False}
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _rows(handle: IO[str], columns: list[str], label: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in columns if name not in header]
    if missing:
        raise DirectoryImportError([f"{label}: missing columns {', '.join(missing)}"])
    rows = []
    for row in reader:
        clean = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        rows.append((reader.line_num, clean))
    return rows


def _facility_values(line: int, row: dict[str, str], problems: list[str]) -> dict[str, object]:
    where = f"facilities line {line}"
    values: dict[str, object] = {"id": row["facility_id"], "name": row["name"]}
    if not row["facility_id"] or not row["name"]:
        problems.append(f"{where}: facility_id and name are required")
    state = row["state"].upper()
    if state not in states():
        problems.append(f"{where}: unknown state {row['state']!r}")
    values["state"] = state
    try:
        ZoneInfo(row["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}: unknown timezone {row['timezone']!r}")
    values["timezone"] = row["timezone"]
    for column in ("emessages", "photos", "videograms", "replies"):
        flag = _BOOL.get(row[column].lower())
        if flag is None:
            problems.append(f"{where}: {column} must be yes or no, got {row[column]!r}")
        values[column] = bool(flag)
    runs = [part.strip() for part in row["mail_runs"].split(";") if part.strip()]
    bad = [run for run in runs if not _TIME.fullmatch(run)]
    if bad:
        problems.append(f"{where}: mail_runs must be times like 06:00;18:00, got {bad}")
    values["mail_runs"] = ";".join(sorted(runs))
    return values


def import_directory(
    session: Session, facilities: IO[str] | None = None, inmates: IO[str] | None = None
) -> ImportReport:
    """Insert or update facilities and people from CSV; all rows or none.

    A person whose facility changed is recorded as a transfer, and one newly marked
    ``released`` as a release (``directory_events``), for notifications to pick up.

    Args:
        session: The SQL session; the caller commits.
        facilities: CSV with ``FACILITY_COLUMNS``.
        inmates: CSV with ``INMATE_COLUMNS``.

    Returns:
        Counts of what changed.

    Raises:
        DirectoryImportError: With every problem found (line numbers included).
    """
    report = ImportReport()
    problems: list[str] = []
    if facilities is not None:
        facility_rows = _rows(facilities, FACILITY_COLUMNS, "facilities")
        existing = {f.id: f for f in session.scalars(select(Facility))}
        seen: set[str] = set()
        for line, row in facility_rows:
            values = _facility_values(line, row, problems)
            facility = existing.get(str(values["id"]))
            if values["id"] in seen:
                problems.append(f"facilities line {line}: {values['id']} appears twice")
            seen.add(str(values["id"]))
            if facility is not None and facility.state != values["state"]:
                problems.append(
                    f"facilities line {line}: {values['id']} is in {facility.state};"
                    " a facility cannot move to another state (give it a new facility_id)"
                )
            if problems:
                continue
            if facility is None:
                facility = Facility(**values)
                session.add(facility)
                existing[facility.id] = facility
                report.facilities_added += 1
            else:
                changed = False
                for key, value in values.items():
                    if getattr(facility, key) != value:
                        setattr(facility, key, value)
                        changed = True
                report.facilities_updated += changed
        session.flush()
    if inmates is not None and not problems:
        _import_inmates(session, inmates, report, problems)
    if problems:
        session.rollback()
        raise DirectoryImportError(problems)
    return report


def _import_inmates(
    session: Session, handle: IO[str], report: ImportReport, problems: list[str]
) -> None:
    facility_states: dict[str, str] = {
        facility_id: state
        for facility_id, state in session.execute(select(Facility.id, Facility.state))
    }
    people = {(p.state, p.id_key): p for p in session.scalars(select(Inmate))}
    seen: set[tuple[str, str]] = set()
    for line, row in _rows(handle, INMATE_COLUMNS, "inmates"):
        where = f"inmates line {line}"
        state = states().get(row["state"].upper())
        if state is None:
            problems.append(f"{where}: unknown state {row['state']!r}")
            continue
        inmate_id = state.normalize_id(row["inmate_id"])
        if not state.id_fits(inmate_id):
            problems.append(
                f"{where}: ID {row['inmate_id']!r} does not fit {state.name}"
                f" (like {state.id_example})"
            )
        if not row["first_name"] or not row["last_name"]:
            problems.append(f"{where}: first_name and last_name are required")
        if facility_states.get(row["facility_id"]) != state.code:
            problems.append(f"{where}: no facility {row['facility_id']!r} in {state.code}")
        status = row["status"].lower() or "active"
        if status not in ("active", "released"):
            problems.append(f"{where}: status must be active or released, got {row['status']!r}")
        key = (state.code, id_key(inmate_id))
        if key in seen:
            problems.append(f"{where}: {state.code} {inmate_id} appears twice")
        seen.add(key)
        if problems:
            continue
        values = {
            "inmate_id": inmate_id,
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            "first_key": fold(row["first_name"]),
            "last_key": fold(row["last_name"]),
            "facility_id": row["facility_id"],
            "status": status,
        }
        person = people.get(key)
        if person is None:
            session.add(Inmate(state=state.code, id_key=key[1], **values))
            report.people_added += 1
            continue
        # A move (transfer, release) is left to ``bot.delivery``, which also deals with the
        # messages on their way and tells the families: the caller applies ``report.moves``.
        if person.status != "released" and status == "released":
            report.moves.append((person.id, None))
            report.releases += 1
        elif person.facility_id != values["facility_id"] and status != "released":
            report.moves.append((person.id, str(values["facility_id"])))
            report.transfers += 1
        if person.facility_id != values["facility_id"]:
            del values["facility_id"]
        del values["status"]
        changed = any(getattr(person, k) != v for k, v in values.items())
        for name, value in values.items():
            setattr(person, name, value)
        report.people_updated += changed or any(pk == person.id for pk, _ in report.moves)
