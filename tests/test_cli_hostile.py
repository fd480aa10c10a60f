"""The CLI against hostile and careless input (issue 23, items 5, 8, 9 and 10).

- 5: text stored by one user (author, note, message, description, content, variant names) holds
  terminal control sequences; every human-readable output shows them as escapes.
- 8: numbers too large for the date arithmetic or the database, and files nested too deeply to
  parse, are usage or domain errors naming the option, never "internal error".
- 9: a mistyped ``--db`` creates nothing, except for ``init`` and ``demo``.
- 10: ``report -o X --force`` writes into devices and FIFOs, refuses links and sockets, and
  replaces only regular files.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import sys
import threading
import unicodedata
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

# ---- item 5: control characters ------------------------------------------------------------

ESC, BEL, CR, BS, CSI8, RLO = "\x1b", "\x07", "\r", "\b", "\x9b", "\u202e"
#: what a hostile writer stores: clear the screen, set the window title, ring the bell,
#: overwrite the line, reverse the text
AUTHOR = f"mallory{ESC}[2J{ESC}[H"
MESSAGE = f"fix{ESC}]0;pwned{BEL} typo{CR}hidden{BS}{BS}"
NOTE = f"ship it{ESC}[8m invisible {RLO}txt.exe{CSI8}31m"
DESCRIPTION = f"desc{ESC}[31mred"
CONTENT = f"Answer {{q}}{ESC}[2J and\tkeep tabs\nand lines {RLO}"
VARIANT = f"arm{ESC}[5mB"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def terminal_controls(text: str) -> list[str]:
    """Characters a terminal acts on (independent of the CLI's own helper): Unicode category Cc
    but tab and newline, the bidi formatting characters, and the line/paragraph separators."""
    return [
        c
        for c in text
        if (unicodedata.category(c) == "Cc" and c not in "\n\t") or c in BIDI or c in "\u2028\u2029"
    ]


@pytest.fixture
def hostile(ws):
    """A template, a deployment and a running experiment whose stored text holds control
    sequences. The values are written straight into the rows, as an older version or another
    writer may have stored them, so the test does not depend on what the services accept now."""
    t = ws.templates.create("qa", "Answer {q}", author="plain", message="plain")
    head = ws.templates.update("qa", "Answer {q} briefly", author="plain", message="plain")
    ws.deployments.deploy("qa", "1.0.0", "development", author="plain", note="plain")
    exp = ws.experiments.create(
        {
            "name": "exp",
            "template": "qa",
            "environment": "development",
            "variants": [
                {"name": "a", "ref": "1.0.0", "weight": 50},
                {"name": "b", "ref": "1.1.0", "weight": 50},
            ],
            "metrics": ["quality_score"],
        },
        author="plain",
    )
    ws.experiments.start(exp.id, author="plain")
    with ws.db.transaction() as con:
        con.execute(
            "UPDATE commits SET author = ?, message = ? WHERE template_id = ?",
            [AUTHOR, MESSAGE, t.id],
        )
        con.execute("UPDATE commits SET content = ? WHERE id = ?", [CONTENT, head.commit])
        con.execute("UPDATE templates SET description = ?, category = ?", [DESCRIPTION, AUTHOR])
        con.execute("UPDATE deployments SET author = ?, note = ?", [AUTHOR, NOTE])
        con.execute("UPDATE experiment_variants SET name = ? WHERE position = 1", [VARIANT])
    return exp


def _user_in_second_arm(ws, exp) -> str:
    """A user whose bucket falls in the second half (the second arm), by the documented rule."""
    import hashlib

    for i in range(1000):
        digest = hashlib.md5(f"{exp.salt}:u{i}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= 0.5:
            return f"u{i}"
    raise AssertionError("no user in the second arm")


@pytest.mark.parametrize(
    "command",
    [
        ["deployments", "qa"],
        ["log", "qa"],
        ["log", "qa", "--all"],
        ["template", "show", "qa"],
        ["template", "show", "qa", "--version", "1.0.0"],
        ["template", "list"],
        ["diff", "qa", "1.0.0", "1.1.0"],
        ["experiment", "show", "exp"],
        ["route", "exp", "USER"],
    ],
)
def test_human_output_shows_control_characters_as_escapes(cli, ws, hostile, command):
    user = _user_in_second_arm(ws, hostile)
    r = cli(*[user if c == "USER" else c for c in command])
    assert r.code == 0, r.err
    assert terminal_controls(r.out + r.err) == []
    # still there, visibly: ESC as \x1b
    assert "\\x1b[" in r.out


def test_each_stored_field_is_escaped_where_it_is_shown(cli, ws, hostile):
    log = cli("log", "qa").out
    assert "mallory\\x1b[2J" in log and "fix\\x1b]0;pwned\\x07 typo\\x0dhidden\\x08" in log
    deps = cli("deployments", "qa").out
    assert "\\u202etxt.exe\\x9b31m" in deps and "\\x1b[8m" in deps
    show = cli("template", "show", "qa").out
    assert "desc\\x1b[31mred" in show
    assert "and\tkeep tabs\nand lines \\u202e" in show  # tabs and line breaks are kept
    user = _user_in_second_arm(ws, hostile)
    assert cli("route", "exp", user).out.startswith("arm\\x1b[5mB  bucket ")


def test_table_columns_line_up_after_escaping(cli, hostile):
    lines = cli("log", "qa").out.splitlines()
    header, rule = lines[0], lines[1]
    author_col = header.index("AUTHOR")
    assert rule[author_col - 2 : author_col] == "  "  # a column boundary in the rule line too
    for row in lines[2:]:
        assert row[author_col:].startswith("mallory\\x1b[2J\\x1b[H")


def test_json_output_keeps_the_stored_text(cli, hostile):
    log = cli("log", "qa", json=True).json()
    assert {c["author"] for c in log} == {AUTHOR} and log[0]["message"] == MESSAGE
    deps = cli("deployments", "qa", json=True).json()
    assert deps[0]["note"] == NOTE


def test_errors_on_stderr_are_escaped(cli, hostile):
    r = cli("template", "show", f"zz{ESC}[2J{BEL}")
    assert r.code == 1 and terminal_controls(r.err) == []
    assert r.err == "error: unknown template 'zz\\x1b[2J\\x07'\n"
    r = cli(f"templ{ESC}[2Jate")  # argparse quotes the unknown command
    assert r.code == 2 and terminal_controls(r.err) == [] and "\\x1b[2J" in r.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _main_with_stdout(stdout: io.StringIO, *argv: str) -> int:
    from promptver.cli import main

    with redirect_stdout(stdout), redirect_stderr(io.StringIO()):
        return main(list(argv))


def test_render_is_exact_in_a_pipe_and_escaped_on_a_terminal(db_path, hostile):
    pipe = io.StringIO()
    assert _main_with_stdout(pipe, "--db", str(db_path), "render", "qa", "--var", "q=x") == 0
    assert pipe.getvalue() == CONTENT.replace("{q}", "x") + "\n"  # byte for byte
    tty = _Terminal()
    assert _main_with_stdout(tty, "--db", str(db_path), "render", "qa", "--var", "q=x") == 0
    assert terminal_controls(tty.getvalue()) == []
    assert tty.getvalue() == "Answer x\\x1b[2J and\tkeep tabs\nand lines \\u202e\n"


def test_visible_escapes_every_terminal_control_and_keeps_text():
    from promptver.cli.context import visible

    every = "".join(chr(c) for c in range(0x00, 0xA0)) + "".join(BIDI) + "\u2028\u2029"
    shown = visible(every)
    assert terminal_controls(shown) == []
    assert "\n" in shown and "\t" in shown
    assert visible("\x00\x1b\x7f\x85\u202e") == "\\x00\\x1b\\x7f\\x85\\u202e"
    kept = "naïve 日本語 مرحبا 👩\u200d👩\u200d👧 e\u0301 ~"  # scripts, ZWJ emoji, combining marks
    assert visible(kept) == kept


# ---- item 8: overflows and deep files ------------------------------------------------------

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["metrics", "purge", "--older-than-days", HUGE], "--older-than-days"),
        (["metrics", "purge", "--older-than-days", "36501"], "--older-than-days"),
        (["metrics", "figures", "--window", HUGE + "h"], "--window"),
        (["alerts", "add", "latency_avg", ">", "1", "--window", HUGE + "d"], "--window"),
        (["alerts", "add", "latency_avg", ">", "1", "--window", "9999999999d"], "--window"),
        (
            ["alerts", "add", "latency_avg", ">", "1", "--window", "1h", "--min-events", HUGE],
            "--min-events",
        ),
        (["alerts", "edit", "1", "--window", "9" * 5000 + "m"], "--window"),
        (["alerts", "edit", "1", "--min-events", HUGE], "--min-events"),
        (["alerts", "check", "--since", HUGE + "d"], "--since"),
        (["alerts", "check", "--since", "9999999d"], "--since"),
        (["trends", "qa", "--period", HUGE + "d"], "--period"),
        (["trends", "qa", "--period", "999999999d"], "--period"),
        (["trends", "qa", "--change-window", "999999999999d"], "--change-window"),
        (["report", "exp", "--format", "json", "--seed", "-1"], "--seed"),
        (["experiment", "results", "exp", "--seed", "-1"], "--seed"),
        (["experiment", "results", "exp", "--resamples", HUGE], "--resamples"),
        (["experiment", "results", "exp", "--target-lift", "inf"], "--target-lift"),
        (["experiment", "results", "exp", "--target-lift", "nan"], "--target-lift"),
        (["demo", "--seed", "-1"], "--seed"),
    ],
)
def test_out_of_range_numbers_are_usage_errors_naming_the_option(cli, args, option):
    r = cli(*args)
    assert r.code == 2, r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1
    assert option in r.err and "internal error" not in r.err


def test_the_longest_durations_still_work(cli, ws):
    ws.templates.create("qa", "Answer {q}")
    assert cli("metrics", "purge", "--older-than-days", "36500", json=True).code == 0
    assert cli("metrics", "figures", "--window", "876000h", json=True).code == 0
    assert cli("alerts", "check", "--since", "365d", json=True).code == 0
    r = cli("trends", "qa", "--period", "36500d", json=True)  # too many buckets: a domain error
    assert r.code == 1 and "too many" in r.err


def test_duration_parsers_refuse_overflow_naming_the_field():
    from promptver.errors import ValidationError
    from promptver.metrics.service import parse_window
    from promptver.trends import parse_duration

    for text in (HUGE + "d", "36501d", "5215w", "9" * 5000 + "h"):
        with pytest.raises(ValidationError) as exc:
            parse_duration(text, "period")
        assert exc.value.problems[0].field == "period"
        assert exc.value.problems[0].code == "range"
    for text in (HUGE + "d", "36501d", "876025h", "9" * 5000 + "h"):
        with pytest.raises(ValidationError) as exc:
            parse_window(text)
        assert "too long" in exc.value.message and exc.value.problems[0].code == "range"
    assert parse_duration("36500d", "period").days == 36500
    with pytest.raises(ValidationError, match="not a duration"):
        parse_duration("0" * 5000 + "d")


@pytest.fixture
def deep_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "deep.yaml": "a: " + "[" * 3000 + "]" * 3000 + "\n",
        "deep.json": '{"a":' * 3000 + "1" + "}" * 3000,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("kind", ["deep.yaml", "deep.json"])
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["template", "create", "t", "--content", "x", "--metadata-file", "F"], "--metadata-file"),
        (["template", "validate", "--content", "x", "--metadata-file", "F"], "--metadata-file"),
        (["template", "update", "qa", "--content", "y", "--metadata-file", "F"], "--metadata-file"),
        (["experiment", "create", "--file", "F"], "--file"),
        (["--config", "F", "template", "list"], "--config"),
        (["merge", "qa", "side", "--resolve-metadata-file", "F"], "--resolve-metadata-file"),
    ],
)
def test_deeply_nested_files_are_errors_naming_the_option(cli, ws, deep_files, kind, args, option):
    ws.templates.create("qa", "Answer {q}")
    path = str(deep_files[kind])
    r = cli(*[path if a == "F" else a for a in args])
    assert r.code == 1, r.err
    # one line naming the option and the file; the core's bounded reader says how deep it went
    assert r.err.startswith(f"error: {option} {path}") and r.err.count("\n") == 1, r.err
    assert "nest" in r.err
    assert [t.name for t in ws.templates.list()] == ["qa"]  # nothing written


def test_a_deep_vars_file_is_an_error_naming_the_option(cli, ws, deep_files):
    ws.templates.create("qa", "Answer {q}")
    r = cli("render", "qa", "--vars-file", str(deep_files["deep.json"]))
    assert r.code == 1 and r.err.startswith(f"error: --vars-file {deep_files['deep.json']}")


# ---- item 9: a mistyped --db ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["template", "list"],
        ["template", "create", "t", "--content", "x"],
        ["log", "qa"],
        ["deployments", "qa"],
        ["experiment", "list"],
        ["metrics", "summary"],
        ["alerts", "check"],
        ["fsck"],
        ["backup", "BACKUP"],
        ["serve", "--port", "0"],
    ],
)
@pytest.mark.parametrize("where", ["missing/folders/pv.duckdb", "pv-typo.duckdb"])
def test_a_missing_database_is_an_error_and_nothing_is_created(cli, tmp_path, command, where):
    before = sorted(tmp_path.rglob("*"))
    db = tmp_path / where
    args = [str(tmp_path / "bk.duckdb") if a == "BACKUP" else a for a in command]
    r = cli(*args, db=db, auto_init=False)
    assert r.code == 1, r.err
    assert r.err == (
        f"error: no database at {db} (run 'promptver init' to create it, or check --db and "
        "$PROMPTVER_DB)\n"
    )
    assert sorted(tmp_path.rglob("*")) == before  # no file, no folder


def test_init_and_demo_create_the_database_and_its_folders(cli, tmp_path):
    db = tmp_path / "new" / "dir" / "pv.duckdb"
    r = cli("init", db=db, auto_init=False, json=True)
    assert r.code == 0 and db.is_file() and r.json()["path"] == str(db)
    other = tmp_path / "other" / "pv.duckdb"
    r = cli("demo", "--seed", "3", db=other, auto_init=False, json=True)
    assert r.code == 0 and other.is_file() and len(r.json()["templates"]) >= 3


def test_workspace_open_creates_by_default_and_refuses_with_create_false(tmp_path):
    from promptver import Workspace
    from promptver.errors import NotFound

    missing = tmp_path / "a" / "pv.duckdb"
    with pytest.raises(NotFound, match="no database at"):
        Workspace.open(missing, create=False)
    assert not (tmp_path / "a").exists()
    Workspace.open(missing).close()  # the Python API and the dashboard keep creating
    assert missing.is_file()
    Workspace.open(missing, create=False).close()  # an existing file opens


def test_the_real_console_script_creates_nothing_on_a_typo(run_cli, tmp_path):
    db = tmp_path / "typo" / "pv.duckdb"
    r = run_cli("template", "list", db=db, auto_init=False)
    assert r.code == 1 and r.err.startswith("error: no database at ") and "Traceback" not in r.err
    assert not db.parent.exists()


# ---- item 10: report -o onto things that are not regular files ----------------------------


@pytest.fixture
def exp_db(ws, db_path):
    """A started experiment without events (enough for every report format)."""
    ws.templates.create("qa", "Answer {q}")
    ws.templates.update("qa", "Answer {q} briefly")
    ws.deployments.deploy("qa", "1.0.0", "production")
    e = ws.experiments.create(
        {
            "name": "exp",
            "template": "qa",
            "variants": [
                {"name": "a", "ref": "1.0.0", "weight": 50},
                {"name": "b", "ref": "1.1.0", "weight": 50},
            ],
            "metrics": ["quality_score"],
        }
    )
    ws.experiments.start(e.id)
    return e


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as f:
            into.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("force", [True, False])
def test_report_writes_into_a_fifo_and_keeps_it(cli, exp_db, tmp_path, force):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    r = cli("report", "exp", "--format", "json", "-o", str(fifo), *(["--force"] if force else []))
    reader.join(timeout=60)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO
    assert got and got[0].startswith(b"{") and b'"schema_version"' in got[0]
    assert r.out.startswith(f"wrote {fifo} (json, {len(got[0]):,} bytes)")
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_to_dev_null_writes_into_it(cli, exp_db, monkeypatch):
    real_replace = os.replace

    def guarded(src, dst, *a, **k):  # a regression must fail here, not replace /dev/null
        if str(dst).startswith("/dev/"):
            raise PermissionError(1, "test guard: refusing to replace a device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", guarded)
    before = os.lstat("/dev/null")
    r = cli("report", "exp", "--format", "md", "-o", "/dev/null", "--force")
    assert r.code == 0, r.err
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert r.out.startswith("wrote /dev/null (md, ")


@pytest.mark.parametrize("dangling", [False, True])
def test_report_refuses_a_symbolic_link(cli, exp_db, tmp_path, dangling):
    target = tmp_path / "real.json"
    if not dangling:
        target.write_text("keep", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    r = cli("report", "exp", "-o", str(link), "--force")
    assert r.code == 1
    assert r.err == (
        f"error: --output {link} is a symbolic link: give the path of the file itself "
        "(a report never replaces a link or writes through one to a file)\n"
    )
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "keep" if not dangling else not target.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_writes_through_a_link_to_a_fifo(cli, exp_db, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.csv"  # as /dev/stdout links to /proc/self/fd/1
    link.symlink_to(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    r = cli("report", "exp", "-o", str(link), "--force")
    reader.join(timeout=60)
    assert r.code == 0, r.err
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and b"variant" in got[0]


@pytest.mark.skipif(sys.platform == "win32", reason="unix sockets")
def test_report_refuses_a_socket(cli, exp_db, tmp_path):
    path = tmp_path / "s.json"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        r = cli("report", "exp", "-o", str(path), "--force")
        assert r.code == 1 and "is not a regular file" in r.err
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        s.close()


def test_report_force_still_replaces_a_regular_file(cli, exp_db, tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old", encoding="utf-8")
    assert cli("report", "exp", "-o", str(out)).code == 1  # not without --force
    assert out.read_text() == "old"
    r = cli("report", "exp", "-o", str(out), "--force")
    assert r.code == 0, r.err
    assert out.read_text().startswith("{") and stat.S_ISREG(os.lstat(out).st_mode)
