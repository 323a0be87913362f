"""Generative answers through an OpenAI-compatible LLM, every sentence checked
against the passage it cites; multi-turn chat; streaming.

The LLM is a real HTTP server on 127.0.0.1 (tests/fake_llm.py) that speaks the
OpenAI chat API, streaming and not, with replies scripted per test. Nothing
is downloaded and no real model runs."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, load_settings


# ---- settings ----------------------------------------------------------------------------------
def test_without_llm_settings_nothing_is_configured():
    s = load_settings()
    assert (s.llm_base_url, s.llm_model, s.llm_api_key) == (None, None, None)


@pytest.mark.parametrize(("env", "message"), [
    ({"WENDA_LLM_BASE_URL": "http://127.0.0.1:9/v1"},
     "WENDA_LLM_MODEL: must be set when WENDA_LLM_BASE_URL is set (http://127.0.0.1:9/v1) (got None)"),
    ({"WENDA_LLM_BASE_URL": "127.0.0.1:9/v1", "WENDA_LLM_MODEL": "m"},
     "WENDA_LLM_BASE_URL: must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1 (got '127.0.0.1:9/v1')"),
    ({"WENDA_LLM_TIMEOUT": "0"}, "WENDA_LLM_TIMEOUT: Input should be greater than 0 (got '0')"),
    # The key is never echoed, even when it is refused.
    ({"WENDA_LLM_BASE_URL": "http://127.0.0.1:9/v1", "WENDA_LLM_MODEL": "m", "WENDA_LLM_MAX_TOKENS": "1",
      "WENDA_LLM_API_KEY": "sk-secret-value"}, "WENDA_LLM_MAX_TOKENS: Input should be greater than or equal to 16 (got '1')"),
])
def test_bad_llm_settings_name_the_variable(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert str(exc.value) == message


def test_the_llm_key_is_never_shown():
    s = load_settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="m", llm_api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(s) and "sk-secret-value" not in str(s.model_dump())
