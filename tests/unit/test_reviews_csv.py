"""CSV import validation (services/reviews/csv_import.py): every bad row named, no value echoed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.reviews.csv_import import InvalidCsv, MalformedCsv, parse_csv

NOW = datetime(2026, 11, 1, tzinfo=UTC)
HEADER = "reviewer,rating,comment,submitted_at"


def parse(text: str, max_rows: int = 100) -> list:
    return parse_csv(text.encode(), NOW, max_rows).rows


def problems(text: str | bytes, max_rows: int = 100) -> list[dict]:
    body = text.encode() if isinstance(text, str) else text
    with pytest.raises(InvalidCsv) as caught:
        parse_csv(body, NOW, max_rows)
    return caught.value.problems


def test_a_valid_export_with_quotes_newlines_bom_and_optional_dimensions() -> None:
    text = (
        "\ufeff Reviewer , RATING,comment,submitted_at,reliability,Respondent ID\n"
        'ann@x.test,5,"Two lines,\nand a comma",2026-10-03T09:00:00Z,4,17\n'
        "\n"
        "bob@x.test,1,,2026-10-04 09:00:00+02:00,,18\n"
    )
    parsed = parse_csv(text.encode(), NOW, 10)
    first, second = parsed.rows
    assert first.reviewer == "ann@x.test" and first.comment == "Two lines,\nand a comma"
    assert first.dimensions == {"reliability": 4}
    assert second.comment is None and second.dimensions == {}
    assert second.submitted_at == datetime(2026, 10, 4, 7, tzinfo=UTC)
    assert parsed.ignored_columns == ["respondent id"]


def test_every_bad_row_is_listed_without_its_values() -> None:
    text = (
        f"{HEADER},communication\n"
        "ok@x.test,4,fine,2026-10-01T00:00:00Z,\n"
        "secret-person@x.test,6,,2026-10-01T00:00:00Z,\n"
        ",4,,2026-10-01T00:00:00Z,\n"
        "c@x.test,4,,2026-10-01T00:00:00,\n"
        "d@x.test,4,,yesterday,0\n"
        "e@x.test,4,,2027-01-01T00:00:00Z,\n"
        f"f@x.test,4,{'x' * 5001},2026-10-01T00:00:00Z,\n"
        "g@x.test,4.0,,2026-10-01T00:00:00Z,\n"
        "h@x.test,4\n"
    )
    found = problems(text)
    assert [p["row"] for p in found] == [2, 3, 4, 5, 6, 7, 8, 9]
    fields = {p["row"]: sorted(str(e["field"]) for e in p["errors"]) for p in found}
    assert fields[2] == ["rating"]
    assert fields[3] == ["reviewer"]
    assert fields[4] == ["submitted_at"]
    assert fields[5] == ["communication", "submitted_at"]
    assert fields[6] == ["submitted_at"]
    assert fields[7] == ["comment"]
    assert fields[8] == ["rating"]
    assert fields[9] == ["None"]
    assert "secret-person" not in repr(found) and "xxxx" not in repr(found)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (f"{HEADER}\n", "no data rows"),
        ("reviewer,rating\nann,5\n", "missing column"),
        (f"{HEADER},rating\na,5,,2026-10-01T00:00:00Z,4\n", "repeated column"),
    ],
)
def test_file_level_problems(text: str, message: str) -> None:
    (problem,) = problems(text)
    assert problem["row"] == 0
    assert any(e["msg"] == message for e in problem["errors"])


def test_too_many_rows() -> None:
    rows = "".join(f"r{i},4,,2026-10-01T00:00:00Z\n" for i in range(3))
    assert "at most 2" in problems(f"{HEADER}\n{rows}", max_rows=2)[0]["errors"][0]["msg"]


@pytest.mark.parametrize("body", [b"\xff\xfe\x00bad", b'reviewer,rating\n"unterminated,5\n'])
def test_unreadable_csv_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedCsv):
        parse_csv(body, NOW, 10)
