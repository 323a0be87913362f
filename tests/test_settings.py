"""Settings: validation names the variable; the README documents every one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table():
    text = README.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"| `WENDA_{name.upper()}` |" not in text]
    assert missing == []


def test_precedence_flag_over_env_over_default(monkeypatch, tmp_path):
    assert load_settings().top_k == 5
    monkeypatch.setenv("WENDA_TOP_K", "7")
    assert load_settings().top_k == 7
    assert load_settings(top_k=9).top_k == 9


@pytest.mark.parametrize(("var", "value", "message"), [
    ("WENDA_TOP_K", "0", "WENDA_TOP_K: Input should be greater than or equal to 1 (got '0')"),
    ("WENDA_MODE", "fuzzy", "WENDA_MODE: Input should be 'hybrid', 'dense' or 'bm25' (got 'fuzzy')"),
    ("WENDA_PORT", "http", "WENDA_PORT: Input should be a valid integer, unable to parse string as an integer "
                           "(got 'http')"),
    # An empty WENDA_API_KEY= locked every write with 401; a short one can be guessed.
    # The key itself is never echoed.
    ("WENDA_API_KEY", "", "WENDA_API_KEY: the key is empty; use at least 16 characters, e.g. from python -c "
                          "'import secrets; print(secrets.token_urlsafe(32))', or unset the variable"),
    ("WENDA_API_KEY", "hunter2-hunter2", "WENDA_API_KEY: the key has 15 characters; use at least 16 characters, "
                                         "e.g. from python -c 'import secrets; print(secrets.token_urlsafe(32))', "
                                         "or unset the variable"),
])
def test_bad_values_name_the_variable(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert str(exc.value) == message


def test_overrides_stay_with_their_settings_object(monkeypatch, tmp_path):
    """One object's flags never reach the next one: nothing is cached or
    written back to the environment (the CLI and each app build their own)."""
    monkeypatch.setenv("WENDA_TOP_K", "7")
    a = load_settings(index_dir=str(tmp_path / "a"), top_k=9, api_key="a-key-0123456789ab")
    b = load_settings()
    assert (a.index_dir, a.top_k, a.api_key.get_secret_value()) == (tmp_path / "a", 9, "a-key-0123456789ab")
    assert (b.index_dir, b.top_k, b.api_key) == (tmp_path / "wenda-index", 7, None)  # the env (conftest) and defaults
    assert (os.environ["WENDA_TOP_K"], "WENDA_API_KEY" in os.environ) == ("7", False)


def test_the_api_key_is_not_shown(tmp_path):
    settings = load_settings(api_key="s3cret-0123456789ab")
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())


def test_a_retired_setting_is_named_with_its_replacement(monkeypatch):
    from click.testing import CliRunner

    from service.cli import cli

    monkeypatch.setenv("WENDA_HNSW_MIN_PASSAGES", "1000")
    r = CliRunner().invoke(cli, ["show", "nothing"])
    assert r.stderr.splitlines()[0] == ("WENDA_HNSW_MIN_PASSAGES is no longer used: the index dir picks exact or IVF "
                                        "search by WENDA_DENSE_IVF_MIN and WENDA_DENSE_FLAT_BELOW.")
