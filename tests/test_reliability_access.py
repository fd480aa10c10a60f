"""Access: where the server listens, the login mode, who is recorded as the author, the upload
limit, and a busy file on the dashboard.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptver import Settings, Workspace

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".streamlit" / "config.toml"


# ---- server configuration -------------------------------------------------------------------


def test_the_server_binds_to_loopback_and_agrees_with_the_upload_limit():
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert server["maxUploadSize"] == Settings().uploads.max_upload_mb
    assert config["browser"]["gatherUsageStats"] is False
    # nothing weakens Streamlit's own protections
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True
    assert "cookieSecret" not in server  # a secret never lives in the repository


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.append(address)
    return found


def _other_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent for UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_the_dashboard_listens_on_loopback_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PROMPTVER_DB": str(tmp_path / "access.duckdb"), "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "server.log").open("w")
    # no --server.address: the project's .streamlit/config.toml decides, as for a user
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        addresses = _listening(port)
        assert addresses, "nothing listens on the port"
        # 0100007F is 127.0.0.1 (little-endian hex); any other address is another interface
        assert set(addresses) == {"0100007F"}, addresses
        other = _other_address()
        if other is not None:
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((other, port))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


# ---- login mode -----------------------------------------------------------------------------

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "test-only-secret",
    "client_id": "promptver-test",
    "client_secret": "test-only",
    "server_metadata_url": "https://login.example.invalid/.well-known/openid-configuration",
}
USER = {"is_logged_in": True, "email": "ana@example.com", "name": "Ana Analyst", "sub": "42"}


def app(db_path: Path, monkeypatch: pytest.MonkeyPatch, *, auth: bool, user: dict | None):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if auth:
        at.secrets["auth"] = AUTH
    if user is not None:
        at.user = user
    return at


def test_without_an_auth_section_the_dashboard_needs_no_login(db_path, monkeypatch):
    at = app(db_path, monkeypatch, auth=False, user=None).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Home"]
    assert all(b.key != "auth_login" for b in at.button)


def test_with_an_auth_section_a_logged_out_user_sees_only_the_login(db_path, monkeypatch):
    at = app(db_path, monkeypatch, auth=True, user={"is_logged_in": False}).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert "Templates" not in [t.value for t in at.title]
    assert not db_path.exists()  # nothing was read or created for an anonymous visitor


def test_named_providers_each_get_a_login_button(db_path, monkeypatch):
    monkeypatch.setenv("PROMPTVER_DB", str(db_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": AUTH["redirect_uri"],
        "cookie_secret": "x",
        "google": {"client_id": "a", "client_secret": "b", "server_metadata_url": "c"},
        "okta": {"client_id": "a", "client_secret": "b", "server_metadata_url": "c"},
    }
    at.user = {"is_logged_in": False}
    at.run()
    assert sorted(b.label for b in at.button) == ["Log in with google", "Log in with okta"]


def test_a_logged_in_user_is_the_author_of_commits_deployments_and_imports(db_path, monkeypatch):
    at = app(db_path, monkeypatch, auth=True, user=USER).run()
    assert not at.exception
    assert any("Signed in as ana@example" in c.value.replace("\\", "") for c in at.sidebar.caption)
    assert any(b.key == "auth_logout" for b in at.sidebar.button)

    # a commit from the Templates screen
    at.switch_page("pages/templates.py").run()
    at.text_input(key="tpl_new_name").input("auth-check").run()
    at.text_area(key="tpl_new_content").input("Hello {name}").run()
    at.button(key="tpl_create").click().run()
    assert not at.exception
    ws = Workspace.open(db_path)
    t = ws.templates.get("auth-check")
    assert ws.versions.get_commit(t.commit).author == "ana@example.com"

    # a deployment from the Deployments screen
    at.switch_page("pages/deployments.py").run()
    at.selectbox(key="dep_template").select("auth-check").run()
    at.button(key="dep_deploy").click().run()
    assert not at.exception
    assert ws.deployments.history("auth-check")[0].author == "ana@example.com"

    # an import from the Metrics screen
    at.switch_page("pages/metrics.py").run()
    events = b"timestamp,template,user_id,latency_ms\n2026-01-01T00:00:00Z,auth-check,u1,100\n"
    at.file_uploader(key="met_upload").set_value(("events.csv", events, "text/csv")).run()
    at.button(key="met_import").click().run()
    assert not at.exception
    assert ws.metrics.imports(1)[0].created_by == "ana@example.com"
    ws.close()


def test_the_author_falls_back_to_name_then_subject(db_path, monkeypatch):
    at = app(db_path, monkeypatch, auth=True, user={"is_logged_in": True, "sub": "user-7"}).run()
    assert any("Signed in as user-7" in c.value.replace("\\", "") for c in at.sidebar.caption)


#: service methods that write; a page calling one must say who does it with ``author=author()``
WRITES = {
    "create",
    "update",
    "deploy",
    "promote",
    "rollback",
    "merge",
    "create_branch",
    "archive",
    "start",
    "stop",
    "delete",
    "import_csv",
    "create_rule",
    "update_rule",
    "delete_rule",
    "acknowledge",
    "check_now",
}
#: writes whose service records no author at all (nothing to pass)
NO_AUTHOR = {"update_info", "restore", "delete_branch"}
#: (page, call) pairs of the same kind: deleting an alert rule removes it with no record of who
NO_AUTHOR_CALLS = {("alerts.py", "svc.delete")}


def test_every_write_on_every_screen_passes_the_logged_in_author():
    """Static check over pages/ (new screens included): each call of a writing service method
    passes ``author=author()``, the logged-in user when there is one."""
    missing: list[str] = []
    checked = 0
    for path in sorted((ROOT / "pages").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in WRITES or not _on_workspace(node.func.value):
                continue
            if (path.name, ast.unparse(node.func)) in NO_AUTHOR_CALLS:
                continue
            kw = {k.arg: k.value for k in node.keywords}
            value = kw.get("author")
            ok = (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "author"
            )
            checked += 1
            if not ok:
                missing.append(f"{path.name}:{node.lineno} {ast.unparse(node.func)}")
    assert missing == []
    assert checked >= 15  # the screens of issues 2–7 alone make this many writes


def _on_workspace(node: ast.AST) -> bool:
    """``ws.x.method`` / ``svc.method`` / ``deps.method``: a call on a promptver service."""
    text = ast.unparse(node)
    return text.startswith(("ws.", "svc", "deps")) or text == "ws"


# ---- a busy file on the dashboard -------------------------------------------------------------

HOLDER = (
    "import sys, time, duckdb\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "print('holding', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def test_a_busy_file_shows_an_error_box_with_a_retry_not_a_traceback(db_path, monkeypatch):
    Workspace.open(db_path).templates.create("t", "Hello {x}")
    Workspace.open(db_path).mark("seeded", "test")
    monkeypatch.setenv("PROMPTVER_BUSY_TIMEOUT", "0.3")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        at = app(db_path, monkeypatch, auth=False, user=None).run()
        assert not at.exception
        assert any("database busy" in e.value for e in at.error)
        assert any(b.key == "storage_retry" for b in at.button)
    finally:
        holder.kill()
        holder.wait()
    at.button(key="storage_retry").click().run()  # the file is free again: the page is back
    assert not at.exception and [t.value for t in at.title] == ["Home"]
