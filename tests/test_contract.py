"""The build/query contract: the manifest both ways, each refusal's message,
and terms that any keyword engine can store as they are."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from ingest.contract import BM25, Manifest, check_compatible, clean_terms, terms_for
from ingest.errors import IndexMismatchError
from ingest.models import Passage
from ingest.splitter import SplitterSettings


def test_manifest_round_trips_through_json():
    m = Manifest.new(embed_model="hash-64", dim=64, splitter=SplitterSettings(max_chars=300))
    again = Manifest.from_json(m.to_json())
    assert again == m and again.bm25 == {"k1": BM25.k1, "b": BM25.b} and again.splitter["max_chars"] == 300
    assert Manifest.from_json({**m.__dict__, "something_newer": 1}) == m  # unknown keys are left out


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model_id": "other", "dim": 64}, "Index was built with model hash-64 but settings say other; re-run 'wenda "
                                       "ingest --rebuild' or set WENDA_EMBED_MODEL=hash-64."),
    ({"model_id": "hash-64", "dim": 32}, "Index vectors have dimension 64 but the model gives 32; re-run 'wenda "
                                         "ingest --rebuild'."),
    ({"model_id": "hash-64", "dim": 64, "splitter": SplitterSettings(max_chars=500)},
     "Index was split with {'max_chars': 400, 'overlap_sentences': 1, 'heading_max_chars': 30} but settings say "
     "{'max_chars': 500, 'overlap_sentences': 1, 'heading_max_chars': 30}; re-run 'wenda ingest --rebuild' or "
     "restore the settings."),
    ({"model_id": "hash-64", "dim": 64, "tokenizer": "new-tok"},
     "Index words were cut by tokenizer old-tok, this wenda uses new-tok; run 'wenda ingest' once to re-cut them "
     "(nothing is re-embedded)."),
])
def test_each_mismatch_says_what_to_do(kwargs, message):
    m = Manifest.new(embed_model="hash-64", dim=64, splitter=SplitterSettings()).with_tokenizer("old-tok")
    with pytest.raises(IndexMismatchError) as exc:
        check_compatible(m, **kwargs)
    assert str(exc.value) == message


@settings(max_examples=60, deadline=None)
@given(hs.text(alphabet=hs.sampled_from(list("大桥主跨 米\u3000\tab12 ，。x\u00a0")), max_size=40))
def test_terms_never_hold_whitespace(text):
    passage = Passage("a:1", "a", "标题", None, 1, 1, 0, len(text), text)
    assert all(t and not any(ch.isspace() for ch in t) for t in terms_for(passage))
    assert clean_terms(["a b", " c\u3000d ", "", "x" * 500]) == ["a_b", "c_d", "x" * 100]
