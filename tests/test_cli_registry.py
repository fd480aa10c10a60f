"""The CLI registers only the module of the command it runs, and the map that picks it is exact."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from promptver.cli.main import COMMAND_MODULES, COMMANDS, _Parser, build_parser, command_of


def test_the_command_map_names_every_command_of_every_module() -> None:
    registered: dict[str, str] = {}
    for name in COMMAND_MODULES:
        parser = _Parser(prog="promptver")
        sub = parser.add_subparsers(dest="command")
        importlib.import_module(name).register(sub)
        for command in sub.choices:
            registered[command] = name.rsplit(".", 1)[1]
    assert registered == COMMANDS


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["template", "list"], "template"),
        (["--db", "x.duckdb", "template", "list"], "template"),
        (["--db=x.duckdb", "--json", "deploy", "a"], "deploy"),
        (["--d", "deploy", "template", "list"], "template"),  # an abbreviated --db
        (["--config", "c.yaml", "--json", "route", "a"], "route"),
        (["--json"], None),
        (["--help"], None),
        ([], None),
        (["--", "render"], "render"),
    ],
)
def test_command_of_skips_global_options_and_their_values(argv: list[str], command: str) -> None:
    assert command_of(argv) == command


def test_a_known_command_registers_its_module_alone_with_the_same_options() -> None:
    full = build_parser()
    one = build_parser(["--db", "x", "template", "list"])
    sub_full = next(a for a in full._actions if a.dest == "command")
    sub_one = next(a for a in one._actions if a.dest == "command")
    assert set(sub_one.choices) == {"log", "render", "template"}
    assert set(sub_full.choices) == set(COMMANDS)
    args = one.parse_args(["--db", "x", "--json", "template", "list"])
    assert args.handler is full.parse_args(["template", "list"]).handler


def test_an_unknown_command_still_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    from promptver.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--db", "x", "templat"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'templat'" in err and "webhook" in err and "template" in err


def test_template_list_imports_one_command_module(tmp_path) -> None:
    code = (
        "import sys\n"
        "from promptver.cli.main import main\n"
        f"rc = main(['--db', {str(tmp_path / 'w.duckdb')!r}, 'template', 'list'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('promptver.cli.commands.')))\n"
    )
    subprocess.run(
        [sys.executable, "-m", "promptver", "--db", str(tmp_path / "w.duckdb"), "init"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip().splitlines()[-1] == "['promptver.cli.commands.templates']"


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import promptver.store.db as dbmod

    opened: list[str] = []
    real = dbmod.duckdb.connect

    def connect(path: str, *a: object, **k: object):
        opened.append(path)
        return real(path, *a, **k)

    monkeypatch.setattr(dbmod.duckdb, "connect", connect)
    return opened


def test_a_brief_command_opens_the_file_once_and_lets_it_go(tmp_path, monkeypatch) -> None:
    from promptver.cli.main import main
    from promptver.store.db import _OPEN

    db = str(tmp_path / "w.duckdb")
    assert main(["--db", db, "init"]) == 0
    assert main(["--db", db, "template", "create", "qa", "--content", "Hi {name}"]) == 0
    opened = _count_opens(monkeypatch)
    # schema check, the template's rows, its versions: one open of the file
    assert main(["--db", db, "template", "list"]) == 0
    assert main(["--db", db, "deploy", "qa", "1.0.0", "--env", "staging"]) == 0
    assert len(opened) == 2
    assert not any(_OPEN.values())  # nothing left open: other processes get the file
    import duckdb

    duckdb.connect(db).close()


def test_a_long_command_opens_the_file_per_step(tmp_path, monkeypatch) -> None:
    from promptver.cli.main import BRIEF_COMMANDS, main

    assert not {"metrics", "experiment", "report", "serve", "webhook", "eval"} & BRIEF_COMMANDS
    db = str(tmp_path / "w.duckdb")
    assert main(["--db", db, "init"]) == 0
    opened = _count_opens(monkeypatch)
    assert main(["--db", db, "metrics", "imports"]) == 0
    assert len(opened) >= 2  # the schema check, then the read: the file is free between
