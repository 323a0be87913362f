"""schemathesis over the app's own OpenAPI schema: generated requests, valid
and invalid, get no 5xx and no response that breaks the schema.

Bounded: 25 examples per operation and no shrinking. Writes go to a copy of
the seed index and need the API key, which the test sends.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import SEEDS
from service.app import create_app
from service.settings import load_settings

KEY = "schema-key-0123456789"


def _settings(index_dir: Path, corpus_dir: Path):
    # An LLM that is configured but never answers (nothing listens on port 9):
    # every ask goes the LLM way and must fall back, never 5xx; and answerer
    # 'llm' is a valid request here (without an LLM it is a 503 by design,
    # tests/test_api.py).
    return load_settings(index_dir=index_dir, corpus_dir=corpus_dir, api_key=KEY,
                         llm_base_url="http://127.0.0.1:9/v1", llm_model="unreachable", llm_max_retries=0,
                         llm_timeout=2)


# The schema does not depend on the index, so it is read at collection time
# from an app that never serves (no index there, no corpus to build one from);
# the requests go to the ``app`` fixture, over a real index. (schemathesis's
# lazy ``from_fixture`` loader fails under this pytest.)
_nowhere = Path(tempfile.gettempdir()) / "wenda-schema-only"
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_settings(_nowhere / "index", _nowhere / "corpus")))


@pytest.fixture(scope="module")
def app(seed_index, tmp_path_factory):
    idx = tmp_path_factory.mktemp("schema") / "index"
    shutil.copytree(seed_index, idx)
    return create_app(_settings(idx, SEEDS))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_5xx_and_responses_fit_the_schema(case, app):
    # Some bodies have rules a JSON schema cannot say, refused with 422 and a
    # detail: an article whose text is only its title, or an id sent twice in
    # one request; chat messages without a non-empty user message; a question
    # or query with no words in it (only symbols, punctuation or question
    # words: retriever/question.py).
    rules = ("/v1/articles", "/v1/chat/completions", "/v1/ask", "/v1/search")
    excluded = [positive_data_acceptance] if case.path in rules else []
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=excluded)
