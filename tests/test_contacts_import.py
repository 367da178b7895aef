"""trackly contacts import / contacts list: CSV to E.164 contacts with merge fields, one
transaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import snapshot

from trackly_cli.core import contacts as core_contacts
from trackly_cli.core import store
from trackly_cli.core.errors import Interrupted


def contacts(db) -> dict[str, dict]:
    """phone -> merge fields, for every contact."""
    return {
        phone: json.loads(fields)
        for phone, fields in db.execute("SELECT phone, fields FROM contacts ORDER BY id")
    }


def members(db, list_name: str) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT c.phone FROM list_members m JOIN contacts c ON c.id = m.contact_id"
            " JOIN lists l ON l.id = m.list_id WHERE l.name = ? ORDER BY c.phone",
            (list_name,),
        )
    ]


@pytest.fixture
def vip(cli):
    cli("account", "create", "acme")
    cli("list", "create", "vip")
    return cli


def write(tmp_path: Path, text: str | bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


# --- the happy path -----------------------------------------------------------------------------


def test_import_keeps_other_columns_as_merge_fields(vip, db, tmp_path):
    csv_file = write(
        tmp_path,
        "phone,First Name,City,Favourite-Colour\n"
        "+12025550143,Ann,Boston,red\n"
        "+447911123456,Bob,London,\n",
    )
    result = vip("contacts", "import", "vip", csv_file)
    assert "Imported 2 of 2 rows" in result.stderr
    assert contacts(db) == {
        "+12025550143": {"first_name": "Ann", "city": "Boston", "favourite_colour": "red"},
        "+447911123456": {"first_name": "Bob", "city": "London"},
    }
    assert members(db, "vip") == ["+12025550143", "+447911123456"]
    row = store.row(db, "SELECT * FROM contacts ORDER BY id")
    assert row["created_at"].endswith("Z")
    assert row["account_id"] == db.execute("SELECT id FROM accounts").fetchone()[0]


def test_import_summary_json(vip, tmp_path):
    csv_file = write(tmp_path, "phone,first_name\n+12025550143,Ann\nnope,Bob\n+12025550143,\n")
    summary = vip.json("contacts", "import", "vip", csv_file)
    assert summary == {
        "list": "vip",
        "rows": 3,
        "imported": 2,
        "new_contacts": 1,
        "added_to_list": 1,
        "invalid": 1,
        "fields": ["first_name"],
    }


@pytest.mark.parametrize(
    ("typed", "country", "e164"),
    [
        ("+12025550143", "US", "+12025550143"),
        ("2025550143", "US", "+12025550143"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("202.555.0143", "us", "+12025550143"),
        ("1 202 555 0143", "US", "+12025550143"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("+12025550143", "GB", "+12025550143"),
    ],
)
def test_numbers_are_normalised_to_e164(vip, db, tmp_path, typed, country, e164):
    csv_file = write(tmp_path, f'phone\n"{typed}"\n')
    vip("contacts", "import", "vip", csv_file, "--country", country)
    assert list(contacts(db)) == [e164]


def test_phone_header_is_found_whatever_its_case_and_place(vip, db, tmp_path):
    csv_file = write(tmp_path, "Name, PHONE \nAnn,2025550143\n")
    vip("contacts", "import", "vip", csv_file)
    assert contacts(db) == {"+12025550143": {"name": "Ann"}}


def test_duplicates_in_the_file_are_merged(vip, db, tmp_path):
    csv_file = write(
        tmp_path,
        "phone,first_name,city,plan\n"
        "+12025550143,Ann,Boston,\n"
        "(202) 555-0143,Annie,,gold\n"
        "2025550143,,Cambridge,\n"
        "+12025550144,Bob,,\n",
    )
    summary = vip.json("contacts", "import", "vip", csv_file)
    assert summary["rows"] == 4
    assert summary["new_contacts"] == 2
    assert summary["added_to_list"] == 2
    # later non-empty values win; empty cells never blank a field
    assert contacts(db) == {
        "+12025550143": {"first_name": "Annie", "city": "Cambridge", "plan": "gold"},
        "+12025550144": {"first_name": "Bob"},
    }
    assert vip.json("list", "show", "vip")["members"] == 2


def test_reimport_merges_into_existing_contacts(vip, db, tmp_path):
    vip(
        "contacts",
        "import",
        "vip",
        write(tmp_path, "phone,first_name,city\n+12025550143,Ann,Boston\n"),
    )
    first_id = db.execute("SELECT id FROM contacts").fetchone()[0]
    vip("list", "create", "spring")
    summary = vip.json(
        "contacts",
        "import",
        "spring",
        write(tmp_path, "phone,first_name,plan\n2025550143,,gold\n+12025550199,Cy,\n", "b.csv"),
    )
    assert summary["new_contacts"] == 1
    assert summary["added_to_list"] == 2
    assert contacts(db) == {
        "+12025550143": {"first_name": "Ann", "city": "Boston", "plan": "gold"},
        "+12025550199": {"first_name": "Cy"},
    }
    assert db.execute("SELECT id FROM contacts WHERE phone = '+12025550143'").fetchone()[0] == (
        first_id
    )
    assert members(db, "vip") == ["+12025550143"]
    assert members(db, "spring") == ["+12025550143", "+12025550199"]
    # importing the same file again changes no membership
    again = vip.json(
        "contacts",
        "import",
        "spring",
        write(tmp_path, "phone,first_name,plan\n2025550143,,gold\n+12025550199,Cy,\n", "b.csv"),
    )
    assert (again["new_contacts"], again["added_to_list"]) == (0, 0)
    assert store.scalar(db, "SELECT count(*) FROM list_members") == 3


def test_blank_lines_are_ignored(vip, db, tmp_path):
    csv_file = write(tmp_path, "phone,first_name\n\n+12025550143,Ann\n,\n\n+12025550144,Bob\n")
    summary = vip.json("contacts", "import", "vip", csv_file)
    assert summary["rows"] == 2
    assert summary["invalid"] == 0
    assert len(contacts(db)) == 2


def test_windows_line_endings_and_quoted_cells(vip, db, tmp_path):
    csv_file = write(
        tmp_path,
        'phone,first_name,note\r\n+12025550143,"Ann, Jr.","said ""hi"""\r\n',
    )
    vip("contacts", "import", "vip", csv_file)
    assert contacts(db) == {"+12025550143": {"first_name": "Ann, Jr.", "note": 'said "hi"'}}


def test_a_utf8_bom_is_fine(vip, db, tmp_path):
    csv_file = write(tmp_path, "\ufeffphone,first_name\n+12025550143,Zoë\n".encode())
    vip("contacts", "import", "vip", csv_file)
    assert contacts(db) == {"+12025550143": {"first_name": "Zoë"}}


def test_import_by_list_id(vip, db, tmp_path):
    list_id = vip.json("list", "show", "vip")["id"]
    vip("contacts", "import", str(list_id), write(tmp_path, "phone\n+12025550143\n"))
    assert members(db, "vip") == ["+12025550143"]


# --- invalid rows -------------------------------------------------------------------------------


def test_invalid_rows_are_reported_with_line_numbers_and_skipped(vip, db, tmp_path):
    csv_file = write(
        tmp_path,
        "phone,first_name\n"
        "+12025550143,Ann\n"  # line 2
        "not a number,Bob\n"  # line 3
        "+15555550100,Cy\n"  # line 4: parses, but is not a valid number
        ",Dee\n"  # line 5: empty phone
        "+12025550144,Eve\n"  # line 6
        "123,Fay\n",  # line 7
    )
    result = vip("contacts", "import", "vip", csv_file)
    stderr = result.stderr
    for line, value in ((3, "not a number"), (4, "+15555550100"), (5, ""), (7, "123")):
        assert f"line {line}: {value!r}" in stderr, (line, stderr)
    assert "line 2" not in stderr and "line 6" not in stderr
    assert "Imported 2 of 6 rows" in stderr
    assert "4 invalid" in stderr
    assert result.stdout == ""
    assert list(contacts(db)) == ["+12025550143", "+12025550144"]


def test_a_row_with_too_many_cells_is_invalid(vip, db, tmp_path):
    csv_file = write(tmp_path, "phone,first_name\n+12025550143,Ann,extra\n+12025550144,Bob\n")
    result = vip("contacts", "import", "vip", csv_file)
    assert "line 2" in result.stderr
    assert list(contacts(db)) == ["+12025550144"]


def test_a_row_with_fewer_cells_is_fine(vip, db, tmp_path):
    csv_file = write(tmp_path, "first_name,phone,city\nAnn,+12025550143\nBob\n")
    result = vip("contacts", "import", "vip", csv_file)
    assert "line 3" in result.stderr  # Bob has no phone cell at all
    assert contacts(db) == {"+12025550143": {"first_name": "Ann"}}


def test_line_numbers_count_physical_lines(vip, tmp_path):
    csv_file = write(
        tmp_path,
        'phone,note\n+12025550143,"two\nlines"\nbad,x\n',
    )
    result = vip("contacts", "import", "vip", csv_file)
    assert "line 4: 'bad'" in result.stderr


def test_many_invalid_rows_are_summarised(vip, db, tmp_path):
    rows = "".join(f"bad{i},x\n" for i in range(30))
    csv_file = write(tmp_path, "phone,first_name\n+12025550143,Ann\n" + rows)
    result = vip("contacts", "import", "vip", csv_file)
    assert "line 3:" in result.stderr
    assert "and 10 more invalid rows" in result.stderr
    assert len(contacts(db)) == 1


def test_strict_imports_nothing_when_a_row_is_invalid(vip, db, db_path, tmp_path):
    # more valid rows than one batch, so that some were already written when the bad row comes
    good = "".join(f"+1202555{i:04d},n{i}\n" for i in range(6000))
    csv_file = write(tmp_path, "phone,first_name\n" + good + "bad-number,x\n")
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", csv_file, "--strict")
    assert "line 6002" in message
    assert "nothing was imported" in message
    assert snapshot(db_path) == before
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 0
    assert store.scalar(db, "SELECT count(*) FROM list_members") == 0


def test_an_import_interrupted_while_checking_leaves_nothing_behind(vip, db, tmp_path):
    """Ctrl-C while the rows are read and checked: nothing has been written yet."""
    good = "".join(f"+1202555{i:04d},n{i}\n" for i in range(8000))
    path = write(tmp_path, "phone,first_name\n" + good)
    calls = []

    def progress(phase: str, done: int, of: int | None) -> None:
        calls.append((phase, done))
        raise KeyboardInterrupt

    with path.open("rb") as stream, pytest.raises(KeyboardInterrupt):
        core_contacts.import_csv(db, None, "vip", stream, progress=progress)
    assert calls == [("checking", core_contacts.BATCH)]
    assert not db.in_transaction
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 0
    assert store.scalar(db, "SELECT count(*) FROM list_members") == 0


def test_an_import_interrupted_while_writing_keeps_its_chunks_and_a_rerun_completes_it(
    vip, db, db_path, tmp_path
):
    """Ctrl-C between two chunks: the committed ones stay, the message says how far it got,
    and the same import again ends exactly where one uninterrupted import would."""
    rows = "".join(f"+1202555{i:04d},n{i}\n" for i in range(8000))
    path = write(tmp_path, "phone,first_name\n+12025550001,earlier\n" + rows)
    vip("contacts", "import", "vip", write(tmp_path, "phone,city\n+12025550001,Oslo\n", "a.csv"))
    written = []

    def progress(phase: str, done: int, of: int | None) -> None:
        if phase == "writing":
            written.append((done, of))
            raise KeyboardInterrupt

    with path.open("rb") as stream, pytest.raises(Interrupted) as stopped:
        core_contacts.import_csv(db, None, "vip", stream, progress=progress)
    first = written[0][0]
    assert written == [(first, 8001)] and 0 < first < 8000
    assert f"after writing {first:,} of 8,001 contacts" in stopped.value.message
    assert "run the same import again" in stopped.value.message
    assert stopped.value.exit_code == 130
    assert not db.in_transaction
    # (the first chunk's rows: the earlier +12025550001 and +12025550000 … 0998, one of them
    # the number of a.csv, which existed)
    assert store.scalar(db, "SELECT count(*) FROM contacts") == first - 1
    with path.open("rb") as stream:
        result = core_contacts.import_csv(db, None, "vip", stream)
    assert (result.imported, result.new_contacts) == (8001, 8000 - (first - 1))
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 8000
    assert store.scalar(db, "SELECT count(*) FROM list_members") == 8000
    # the merge was applied once, as by one import: the later row of the file wins
    assert contacts(db)["+12025550001"] == {"city": "Oslo", "first_name": "n1"}


def test_a_large_import_is_written_in_short_transactions(vip, db, db_path, tmp_path):
    """Other writers get the lock between chunks: count the commits an import makes."""
    rows = "".join(f"+1{201 + i // 10_000}555{i % 10_000:04d},n{i}\n" for i in range(30_000))
    path = write(tmp_path, "phone,first_name\n" + rows)
    commits = []
    db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    with path.open("rb") as stream:
        core_contacts.import_csv(db, None, "vip", stream)
    db.set_trace_callback(None)
    assert len(commits) > 1  # (the first chunk is 1,000 rows; the rest sized to 0.2 s)
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 30_000


def test_strict_with_valid_rows_imports(vip, db, tmp_path):
    csv_file = write(tmp_path, "phone\n+12025550143\n+447911123456\n")
    vip("contacts", "import", "vip", csv_file, "--strict")
    assert len(contacts(db)) == 2


def test_a_file_with_no_valid_row_is_an_error(vip, db_path, tmp_path):
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", write(tmp_path, "phone\nnope\n123\n"))
    assert "line 2" in message
    assert snapshot(db_path) == before


# --- bad files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        ("number,first_name\n+12025550143,Ann\n", "phone"),
        ("first_name\nAnn\n", "phone"),
        ("", "empty"),
        ("phone,first_name\n", "no rows"),
        ("phone,Phone\n+12025550143,+12025550144\n", "repeats"),
    ],
)
def test_bad_files_are_refused(vip, db_path, tmp_path, content, hint):
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", write(tmp_path, content))
    assert hint in message
    assert snapshot(db_path) == before


def test_an_unclosed_quote_is_an_error_not_silently_swallowed_rows(vip, db_path, tmp_path):
    # csv's lenient mode reads everything after an unclosed quote as one cell: the rows after
    # it would vanish without being reported as invalid
    content = 'phone,note\n+12025550143,"unclosed\n+12025550144,Bob\n+12025550145,Cy\n'
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", write(tmp_path, content))
    assert "line " in message  # where the quote opens (2) or where the file ends (4)
    assert snapshot(db_path) == before


def test_missing_phone_header_names_the_columns(vip, tmp_path):
    message = vip.error("contacts", "import", "vip", write(tmp_path, "mobile,name\n1,2\n"))
    assert "phone" in message
    assert "mobile" in message


def test_non_utf8_bytes_are_refused_naming_the_line(vip, db, db_path, tmp_path):
    content = (
        b"phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n+12025550145,Jos\xe9\n"
        b"+12025550146,Eve\n"
    )
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", write(tmp_path, content))
    assert "line 4" in message
    assert "UTF-8" in message
    assert snapshot(db_path) == before
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 0


def test_non_utf8_bytes_after_many_rows_leave_nothing_behind(vip, db, db_path, tmp_path):
    # past the first batches, which were already written inside the transaction
    good = "".join(f"+1202555{i:04d},n{i}\n" for i in range(7000)).encode()
    content = b"phone,first_name\n" + good + b"+12125550143,Jos\xe9\n"
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", write(tmp_path, content))
    assert "line 7002" in message
    assert snapshot(db_path) == before
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 0


def test_non_utf8_header_is_refused(vip, db_path, tmp_path):
    before = snapshot(db_path)
    message = vip.error(
        "contacts", "import", "vip", write(tmp_path, b"phone,pr\xe9nom\n+12025550143,Ann\n")
    )
    assert "line 1" in message
    assert snapshot(db_path) == before


def test_utf16_file_is_refused(vip, db_path, tmp_path):
    before = snapshot(db_path)
    content = "phone,first_name\n+12025550143,Ann\n".encode("utf-16")
    vip.error("contacts", "import", "vip", write(tmp_path, content))
    assert snapshot(db_path) == before


def test_missing_file_is_an_error(vip, db_path, tmp_path):
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "vip", tmp_path / "nope.csv")
    assert "nope.csv" in message
    assert snapshot(db_path) == before


def test_unknown_list_is_an_error(vip, db_path, tmp_path):
    before = snapshot(db_path)
    message = vip.error("contacts", "import", "nope", write(tmp_path, "phone\n+12025550143\n"))
    assert "nope" in message
    assert snapshot(db_path) == before


def test_unknown_country_is_an_error(vip, db_path, tmp_path):
    before = snapshot(db_path)
    csv_file = write(tmp_path, "phone\n2025550143\n")
    assert "XX" in vip.error("contacts", "import", "vip", csv_file, "--country", "XX")
    vip.error("contacts", "import", "vip", csv_file, "--country", "USA")
    assert snapshot(db_path) == before


def test_list_of_another_account_is_not_found(vip, db_path, tmp_path):
    vip("account", "create", "globex")
    before = snapshot(db_path)
    csv_file = write(tmp_path, "phone\n+12025550143\n")
    vip.error("contacts", "import", "vip", csv_file, "--account", "globex")
    vip.error("contacts", "import", "vip", csv_file)  # two accounts, none chosen
    assert snapshot(db_path) == before
    vip("contacts", "import", "vip", csv_file, "--account", "acme")


# --- contacts list ------------------------------------------------------------------------------


def test_contacts_list_json_by_list(vip, tmp_path):
    vip("list", "create", "other")
    vip(
        "contacts",
        "import",
        "vip",
        write(tmp_path, "phone,First Name\n+12025550143,Ann\n+447911123456,Bob\n"),
    )
    vip("contacts", "import", "other", write(tmp_path, "phone\n+12025550199\n", "o.csv"))
    in_vip = vip.json("contacts", "list", "--list", "vip")
    assert [(c["phone"], c["fields"]) for c in in_vip] == [
        ("+12025550143", {"first_name": "Ann"}),
        ("+447911123456", {"first_name": "Bob"}),
    ]
    assert {"id", "phone", "fields", "created_at"} <= set(in_vip[0])
    assert [c["phone"] for c in vip.json("contacts", "list", "--list", "other")] == ["+12025550199"]
    everyone = vip.json("contacts", "list")
    assert len(everyone) == 3
    assert len(vip.json("contacts", "list", "--limit", "2")) == 2
    assert "+447911123456" in vip("contacts", "list", "--list", "vip").stdout
    csv_out = vip("contacts", "list", "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "id,phone,fields,created_at"


def test_contacts_list_unknown_list(vip):
    assert "nope" in vip.error("contacts", "list", "--list", "nope")


def test_contacts_list_empty(vip):
    assert vip.json("contacts", "list") == []
    assert vip.json("contacts", "list", "--list", "vip") == []


def test_contacts_are_kept_per_account(vip, db, tmp_path):
    vip("account", "create", "globex")
    vip("list", "create", "vip", "-a", "globex")
    csv_file = write(tmp_path, "phone,first_name\n+12025550143,Ann\n")
    vip("contacts", "import", "vip", csv_file, "-a", "acme")
    vip(
        "contacts",
        "import",
        "vip",
        write(tmp_path, "phone\n+12025550143\n", "g.csv"),
        "-a",
        "globex",
    )
    assert store.scalar(db, "SELECT count(*) FROM contacts") == 2
    assert vip.json("contacts", "list", "-a", "globex")[0]["fields"] == {}
    assert vip.json("contacts", "list", "-a", "acme")[0]["fields"] == {"first_name": "Ann"}


# --- line breaks of any kind, and rows too long to read -------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_csv_lines_splits_every_kind_of_line_break_across_reads(size):
    import io

    data = 'a,b\r\nc,é\rd,e\nf,"g\r\nh"\r\r\nlast'.encode()
    lines = list(core_contacts.CsvLines(io.BytesIO(data), chunk_bytes=size))
    assert lines == ["a,b\n", "c,é\n", "d,e\n", 'f,"g\n', 'h"\n', "\n", "last\n"]


def test_a_file_with_carriage_returns_only_imports(vip, db, tmp_path):
    """Old Mac exports end lines with CR alone (#15: Python's 'universal-newline' error)."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"phone,first_name\r+12025550143,Ann\r+12025550144,Bob\r")
    vip("contacts", "import", "vip", path)
    assert contacts(db) == {
        "+12025550143": {"first_name": "Ann"},
        "+12025550144": {"first_name": "Bob"},
    }


def test_a_row_too_long_is_a_bad_row_and_memory_stays_bounded(vip, db, tmp_path):
    """A 1 M-character field aborted the whole import, and a one-line 200 MB file took 463 MB
    (#15): now each is one bad row, read no further than a megabyte."""
    import io
    import tracemalloc

    path = tmp_path / "long.csv"
    with path.open("wb") as handle:
        handle.write(b"phone,note\n+12025550143,ok\n+12025550144,")
        handle.write(b"x" * 30_000_000)  # a 30 MB line
        handle.write(b"\n+12025550145," + b"y" * 200_000 + b"\n")  # a field over 128 kB
        handle.write(b"+12025550146,fine\n")
    result = vip("contacts", "import", "vip", path, "--format", "json")
    summary = json.loads(result.stdout)
    assert (summary["imported"], summary["invalid"]) == (2, 2)
    assert "line 3: '': the row is too long (skipped)" in result.stderr
    assert "line 4: '': the row is too long (skipped)" in result.stderr
    assert sorted(contacts(db)) == ["+12025550143", "+12025550146"]
    assert "--strict" not in result.stderr
    # reading the file keeps at most about a megabyte of it
    tracemalloc.start()
    with path.open("rb") as stream:
        lines = sum(1 for _ in core_contacts.CsvLines(stream))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lines == 5
    assert peak < 4 * core_contacts.MAX_LINE_BYTES, peak
    message = vip.error("contacts", "import", "vip", path, "--strict")
    assert "line 3" in message and "too long" in message
    assert io  # (imported for the parametrised test above)
