"""Settings: validation names the variable; the README documents every one."""

from __future__ import annotations

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


def test_two_settings_objects_are_independent(tmp_path):
    a = load_settings(index_dir=str(tmp_path / "a"))
    b = load_settings(index_dir=str(tmp_path / "b"))
    assert a.index_dir != b.index_dir
