"""Word segmentation for BM25: jieba in search mode.

jieba, because a whitespace/regex splitter sees a run of Chinese characters
as one token, so BM25 would only ever match whole sentences. Search mode
(``cut_for_search``) also emits the shorter words inside long ones
(大学生乡村医生 -> 大学, 大学生, 乡村, 医生, 乡村医生), which helps recall
when a question words a thing differently.

Text is folded to Simplified script first (ingest/script.py): jieba's
dictionary is Simplified, and a question in one script then finds passages in
the other.
"""

from __future__ import annotations

import logging
import threading
import unicodedata

from .script import FOLD_ID, fold_script

# Recorded in each index's manifest; an index made with another one is
# re-tokenized by its next write (see ingest/build.py).
TOKENIZER_ID = f"jieba-search+{FOLD_ID}-v3"

# Function words and question words; they carry no topic. (Hand-picked; the
# question words matter because every question has one and no passage does.)
STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 也 都 就 而 并 等 为 对 把 被 从 向 以 于 之 其 这 那 有 个 将 还 又
    吗 呢 吧 啊 么 什么 甚么 多少 哪些 哪个 哪 谁 几 怎么 怎样 如何 为什么 何时 何地 是否 是不是
    the a an of to in on at for by and or is are was were be been what which who whom how when where
    why did does do many much""".split()
)

_lock = threading.Lock()
_tokenizer = None


def _jieba():
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.initialize()
            _tokenizer = tok
    return _tokenizer


def _is_word(token: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


def tokenize(text: str) -> list[str]:
    """Segment text into lower-cased BM25 terms in Simplified script, without
    punctuation or stopwords."""
    return [
        t for t in (w.strip().lower() for w in _jieba().cut_for_search(fold_script(text)))
        if t and _is_word(t) and t not in STOPWORDS
    ]
