"""The `aiops` command line: version, help, migrations, tokens and clean failures."""

from __future__ import annotations

from typer.testing import CliRunner

from controlplane import __version__
from controlplane.cli import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"aiops {__version__}"
    help_text = runner.invoke(app, ["--help"]).output
    for command in ("serve", "console", "demo", "db", "token"):
        assert command in help_text


def test_db_upgrade_and_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("AIOPS_DATABASE__URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    created = runner.invoke(app, ["token", "create", "alice", "--role", "operator"])
    assert created.exit_code == 0
    assert created.output.startswith("aiops_")
    assert "alice" in runner.invoke(app, ["token", "list"]).output
    duplicate = runner.invoke(app, ["token", "create", "alice"])
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.output
    assert runner.invoke(app, ["token", "revoke", "alice"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["token", "list"]).output
    missing = runner.invoke(app, ["token", "revoke", "bob"])
    assert missing.exit_code == 2
    assert "no token named 'bob'" in missing.output


def test_bad_settings_fail_with_key_and_value(monkeypatch):
    monkeypatch.setenv("AIOPS_API__PORT", "not-a-port")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "api.port (AIOPS_API__PORT) = 'not-a-port'" in result.output


def test_bad_config_file_and_bad_role(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("nonsense: 1\n")
    result = runner.invoke(app, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 2
    assert "nonsense" in result.output
    bad_role = runner.invoke(app, ["token", "create", "x", "--role", "root"])
    assert bad_role.exit_code == 2
    assert "root" in bad_role.output


def test_unreachable_store_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("AIOPS_DATABASE__URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "cannot migrate" in result.output


def test_store_commands_in_a_demo_checkout_use_the_demo_store(tmp_path, monkeypatch):
    """`aiops token list` run beside a running demo reads the demo's store (and says so),
    leaves no stray empty aiops.db, and prints no migration chatter."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOPS_DATABASE__URL", raising=False)
    demo_store = tmp_path / ".aiops-demo" / "aiops.db"
    demo_store.parent.mkdir()
    monkeypatch.setenv("AIOPS_DATABASE__URL", f"sqlite:///{demo_store}")
    assert runner.invoke(app, ["token", "create", "demo-admin", "--role", "admin"]).exit_code == 0
    monkeypatch.delenv("AIOPS_DATABASE__URL")
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert "demo-admin" in listed.stdout
    assert "using the demo's store .aiops-demo/aiops.db" in listed.stderr
    assert "alembic" not in listed.output.lower()
    assert not (tmp_path / "aiops.db").exists()


def test_a_read_of_a_store_that_does_not_exist_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOPS_DATABASE__URL", raising=False)
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 2
    assert "no store at aiops.db (database.url = 'sqlite:///aiops.db')" in listed.stderr
    assert "aiops db upgrade" in listed.stderr
    assert not (tmp_path / "aiops.db").exists()
    created = runner.invoke(app, ["token", "create", "alice"])
    assert created.exit_code == 0
    assert "created a new store at aiops.db" in created.stderr
    assert (tmp_path / "aiops.db").exists()
