"""The directory: states and ID formats, search, and the CSV import command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import directory
from bot.store.models import DirectoryEvent, Facility, Inmate
from tests.conftest import SAMPLE


@pytest.mark.parametrize(
    ("typed", "code", "sure"),
    [
        ("TX", "TX", True),
        ("tx", "TX", True),
        ("Texas", "TX", True),
        ("  texas. ", "TX", True),
        ("Texsa", "TX", False),
        ("Tejas", "TX", False),
        ("New Mexico", "NM", True),
        ("Nuevo México", "NM", True),
        ("north carolina", "NC", True),
        ("Carolina del Norte", "NC", True),
        ("Californa", "CA", False),
        ("ok", "OK", False),  # a code that is also a word is asked back
        ("Oklahoma", "OK", True),
    ],
)
def test_find_state(typed, code, sure):
    match = directory.find_state(typed)
    assert match is not None
    assert (match.state.code, match.sure) == (code, sure)


@pytest.mark.parametrize("typed", ["", "   ", "Narnia", "12345", "qwertyuiop"])
def test_find_state_gives_up_on_nonsense(typed):
    assert directory.find_state(typed) is None


@pytest.mark.parametrize(
    ("code", "good", "bad"),
    [
        ("TX", ["01234567", "98765"], ["123456789", "AB1234"]),
        ("CA", ["AB1234"], ["A1234", "AB12345", "1234"]),
        ("FL", ["A12345"], ["12345", "AB12345"]),
    ],
)
def test_id_formats_per_state(code, good, bad):
    state = directory.states()[code]
    assert all(state.id_fits(value) for value in good)
    assert not any(state.id_fits(value) for value in bad)


def test_every_state_example_fits_its_own_format():
    states = directory.states()
    assert len(states) == 51
    assert all(state.id_fits(state.id_example) for state in states.values())


@pytest.mark.parametrize(
    ("code", "typed", "normal"),
    [
        ("TX", "#0123-4567", "01234567"),
        ("CA", "ab 1234", "AB1234"),
        ("TX", "TDCJ 01234567", "01234567"),
        ("TX", "ID# 98765", "98765"),
        ("CA", "NO1234", "NO1234"),  # letters that are the ID itself are kept
        ("PA", "ID1234", "ID1234"),
    ],
)
def test_normalize_id(code, typed, normal):
    assert directory.states()[code].normalize_id(typed) == normal


def test_leading_zeros_do_not_make_another_person(rt, app, sample_directory, tmp_path):
    georgia = directory.states()["GA"]
    with rt.db.session() as session:
        assert directory.find_by_id(session, georgia, "0000998877").full_name == "Shanice Davis"
    stripped = write(
        tmp_path / "excel.csv",
        directory.INMATE_COLUMNS,
        [["TX", "1234567", "Ana", "Ruiz", "TX-MV", "active"]],  # a spreadsheet ate the 0
    )
    result = run_import(app, "--inmates", str(stripped))
    assert result.exit_code == 0, result.output
    assert "0 added, 1 updated, 1 transferred" in result.output
    with rt.db.session() as session:
        ruiz = session.scalars(
            select(Inmate).where(Inmate.last_name == "Ruiz", Inmate.first_name == "Ana")
        ).all()
    assert sorted(p.facility_id for p in ruiz) == ["TX-MV", "TX-MV"]


def test_fold_strips_accents_apostrophes_and_hyphens():
    assert directory.fold("Ramírez") == "ramirez"
    assert directory.fold("O'Brien") == "obrien"
    assert directory.fold("Smith-Hernández") == "smith hernandez"


def run_import(app, *args: str):
    return app.test_cli_runner().invoke(args=["directory", "import", *args])


def test_import_command_loads_the_sample(rt, app):
    result = run_import(
        app,
        "--facilities",
        str(SAMPLE / "facilities.csv"),
        "--inmates",
        str(SAMPLE / "inmates.csv"),
    )
    assert result.exit_code == 0, result.output
    with SAMPLE.joinpath("inmates.csv").open() as handle:
        people = sum(1 for _ in csv.DictReader(handle))
    assert f"{people} added" in result.output
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Inmate)) == people
        states = set(session.scalars(select(Facility.state)))
    assert len(states) >= 5


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_reimport_updates_in_place_and_records_transfers_and_releases(
    rt, app, sample_directory, tmp_path
):
    moved = write(
        tmp_path / "moved.csv",
        directory.INMATE_COLUMNS,
        [
            ["TX", "01234567", "Ana", "Ruiz", "TX-LM", "active"],
            ["TX", "03456789", "David", "Nguyen", "TX-EL", "released"],
        ],
    )
    result = run_import(app, "--inmates", str(moved))
    assert result.exit_code == 0, result.output
    assert "1 transferred, 1 released" in result.output
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        assert ana.facility_id == "TX-LM"
        events = session.scalars(select(DirectoryEvent).order_by(DirectoryEvent.id)).all()
        assert [(e.kind, e.from_facility, e.to_facility) for e in events] == [
            ("transfer", "TX-HV", "TX-LM"),
            ("released", "TX-EL", None),
        ]
        total = session.scalar(select(func.count()).select_from(Inmate))
    again = run_import(app, "--inmates", str(moved))
    assert "0 transferred, 0 released" in again.output
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Inmate)) == total


def test_bad_rows_are_all_reported_and_nothing_is_imported(rt, app, sample_directory, tmp_path):
    bad = write(
        tmp_path / "bad.csv",
        directory.INMATE_COLUMNS,
        [
            ["TX", "01234567", "Ana", "Ruiz", "TX-MV", "active"],  # fine on its own
            ["TX", "ABC", "Bad", "Id", "TX-HV", "active"],
            ["ZZ", "1", "No", "State", "TX-HV", "active"],
            ["TX", "07777777", "No", "Facility", "CA-SQ", "active"],
            ["TX", "07777778", "Odd", "Status", "TX-HV", "paroled"],
        ],
    )
    result = run_import(app, "--inmates", str(bad))
    assert result.exit_code != 0
    assert "line 3" in result.output and "does not fit Texas" in result.output
    assert "unknown state 'ZZ'" in result.output
    assert "no facility 'CA-SQ' in TX" in result.output
    assert "status must be active or released" in result.output
    assert "nothing imported" in result.output
    with rt.db.session() as session:
        ana = session.scalars(select(Inmate).where(Inmate.inmate_id == "01234567")).one()
        assert ana.facility_id == "TX-HV"


def test_bad_facility_rows_and_missing_columns(rt, app, sample_directory, tmp_path):
    bad = write(
        tmp_path / "f.csv",
        directory.FACILITY_COLUMNS,
        [["TX-XX", "TX", "X Unit", "Mars/Olympus", "maybe", "yes", "no", "no", "6am"]],
    )
    result = run_import(app, "--facilities", str(bad))
    assert result.exit_code != 0
    assert "unknown timezone" in result.output
    assert "emessages must be yes or no" in result.output
    assert "mail_runs must be times" in result.output
    twice = write(
        tmp_path / "twice.csv",
        directory.FACILITY_COLUMNS,
        [["TX-HV", "CA", "Huntsville Unit", "America/Chicago", "yes", "yes", "no", "no", ""]] * 2,
    )
    result = run_import(app, "--facilities", str(twice))
    assert "TX-HV appears twice" in result.output
    assert "TX-HV is in TX; a facility cannot move to another state" in result.output
    short = write(tmp_path / "short.csv", ["facility_id", "state"], [["A", "TX"]])
    result = run_import(app, "--facilities", str(short))
    assert "missing columns" in result.output
    assert run_import(app).exit_code != 0


def test_name_search_pages(rt, sample_directory):
    state = directory.states()["TX"]
    with rt.db.session() as session:
        first, total = directory.search_by_name(session, state, "GARCIA")
        second, _ = directory.search_by_name(session, state, "garcia", offset=5)
    assert total == 9 and len(first) == 5 and len(second) == 4
    assert not {p.id for p in first} & {p.id for p in second}


def test_search_is_scoped_to_the_state(rt, sample_directory):
    with rt.db.session() as session:
        pa = directory.find_by_id(session, directory.states()["PA"], "AB1234")
        ca = directory.find_by_id(session, directory.states()["CA"], "AB1234")
    assert pa.state == "PA" and ca.state == "CA" and pa.full_name != ca.full_name


def test_models_and_migrations_agree(database_url):
    from alembic import command

    from bot.store.migrate import alembic_config

    command.check(alembic_config(database_url))  # raises when a migration is missing
