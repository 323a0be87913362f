"""Evaluation sets: wenda's seed set (JSONL) and SQuAD-format public sets
(CMRC 2018, DRCD), read from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import CorpusError
from ingest.models import Article

REPO = Path(__file__).resolve().parent.parent
SEED_SET = REPO / "eval" / "seed.jsonl"
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"

DATASET_FILES = {
    "cmrc2018-trial": ["cmrc2018/cmrc2018_trial.json"],
    "cmrc2018-dev": ["cmrc2018/cmrc2018_dev.json"],
    "drcd-dev": ["drcd/DRCD_dev.json"],
}
# The harder pool: CMRC dev questions against CMRC dev + trial + DRCD contexts.
POOL = {"questions": "cmrc2018/cmrc2018_dev.json",
        "contexts": ["cmrc2018/cmrc2018_dev.json", "cmrc2018/cmrc2018_trial.json", "drcd/DRCD_dev.json"]}
# DRCD is Traditional Chinese; "-t2s" converts it to Simplified with OpenCC.
DATASET_FILES["drcd-dev-t2s"] = DATASET_FILES["drcd-dev"]
# Tuning stand-ins built from the trial split only, for what the report sets
# test and the trial split alone does not: "-s2t" is the trial in Traditional
# script (DRCD is a cross-script test); "-split" cuts every trial context into
# sibling paragraphs under one title (DRCD's articles have ~2.6 paragraphs each,
# CMRC's one), so a question must find its paragraph among its siblings.
DATASET_FILES["cmrc2018-trial-s2t"] = DATASET_FILES["cmrc2018-trial"]
DATASET_FILES["cmrc2018-trial-split"] = DATASET_FILES["cmrc2018-trial"]
# "-cross": the trial's articles (and so its answers) in Taiwan script, its
# questions left in Simplified: a user asking in one script about articles in
# the other.
DATASET_FILES["cmrc2018-trial-cross"] = DATASET_FILES["cmrc2018-trial"]
DATASETS = ("seed", *DATASET_FILES, "pool")


def _convert_script(data: dict, config: str = "t2s", *, questions: bool = True) -> dict:
    """Convert every title, context, answer and (if ``questions``) question
    with OpenCC (``t2s``: Traditional to Simplified; ``s2tw``: Simplified to
    Taiwan Traditional, DRCD's script). Whole phrases are converted here, as a
    publisher would, unlike wenda's own per-character fold."""
    import opencc

    conv = opencc.OpenCC(config).convert
    for art in data["data"]:
        art["title"] = conv(art.get("title", ""))
        for para in art["paragraphs"]:
            para["context"] = conv(para["context"])
            for qa in para["qas"]:
                if questions:
                    qa["question"] = conv(qa["question"])
                for a in qa.get("answers", []):
                    a["text"] = conv(str(a.get("text", "")))
    return data


SPLIT_TARGET_CHARS = 180


def _split_siblings(data: dict, target: int = SPLIT_TARGET_CHARS) -> dict:
    """Cut each context into paragraphs of about ``target`` characters at
    sentence ends (ids ``<id>-s<n>``, same title); each question goes to the
    paragraph holding its first answer (at its marked offset when that is
    right, else where the text first occurs), and is dropped when that answer
    crosses a cut."""
    from ingest.splitter import sentence_spans

    for art in data["data"]:
        new_paras = []
        for para in art["paragraphs"]:
            ctx = para["context"]
            n = max(1, round(len(ctx) / target))
            cuts: list[int] = []
            for _, end in sentence_spans(ctx)[:-1]:
                if len(cuts) < n - 1 and end >= len(ctx) * (len(cuts) + 1) / n:
                    cuts.append(end)
            bounds = list(zip([0, *cuts], [*cuts, len(ctx)]))
            parts = [{"id": f"{para['id']}-s{i + 1}", "context": ctx[a:b], "qas": []}
                     for i, (a, b) in enumerate(bounds)]
            for qa in para["qas"]:
                first = (qa.get("answers") or [{}])[0]
                raw = str(first.get("text", ""))
                text = raw.strip()
                mark = first.get("answer_start", -1)
                mark = mark + len(raw) - len(raw.lstrip()) if isinstance(mark, int) else -1
                start = mark if text and mark >= 0 and ctx[mark:mark + len(text)] == text else ctx.find(text)
                for part, (a, b) in zip(parts, bounds):
                    if text and a <= start and start + len(text) <= b:
                        part["qas"].append({**qa, "answers": [{"text": text, "answer_start": start - a}]})
                        break
            new_paras += parts
        art["paragraphs"] = new_paras
    return data


@dataclass(frozen=True)
class EvalQuestion:
    """One question: gold ids are paragraph keys ``article:paragraph`` or whole
    article ids; ``answers`` are accepted strings."""

    qid: str
    question: str
    answerable: bool
    gold: tuple[str, ...]
    answers: tuple[str, ...]
    kind: str = ""
    split: str = ""
    lang: str = "zh"


@dataclass
class EvalSet:
    """Questions, and the articles to index (None: use the default index)."""

    name: str
    questions: list[EvalQuestion]
    articles: list[Article] | None = None
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)


def load_seed(path: str | Path = SEED_SET) -> EvalSet:
    """The seed set: JSONL with question, gold_passages, answers, answerable,
    kind, split, lang (see eval/README.md).

    Raises:
        CorpusError: unreadable file or a line without the required fields.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CorpusError(f"Cannot read eval set {path}: {exc.strerror or exc}") from exc
    questions = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            questions.append(EvalQuestion(
                qid=str(obj.get("id", n)), question=obj["question"], answerable=bool(obj.get("answerable", True)),
                gold=tuple(obj.get("gold_passages", [])), answers=tuple(obj.get("answers", [])),
                kind=obj.get("kind", ""), split=obj.get("split", ""), lang=obj.get("lang", "zh"),
            ))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorpusError(f"{path}:{n}: not an eval question ({exc}); see eval/README.md for the format") from None
    return EvalSet(path.stem, questions, None, _file_hash(path))


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _read_squad(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(
            f"No data file at {path}. Put ../shared/data beside the checkout or set WENDA_DATA_DIR."
        ) from None


def squad_articles(data: dict) -> list[Article]:
    """Each context becomes an article (id = the paragraph id, title = the
    Wikipedia title)."""
    out = []
    for art in data["data"]:
        for para in art["paragraphs"]:
            out.append(Article(str(para["id"]), art.get("title", "").strip() or str(para["id"]), para["context"]))
    return out


def _gold_answers(context: str, answers: list[dict]) -> tuple[str, ...]:
    """Answer texts, first one first; offsets are not trusted (some CMRC ones
    were counted in UTF-16 units), only that the text occurs in the context."""
    out = []
    for a in answers:
        text = str(a.get("text", "")).strip()
        if text and text in context and text not in out:
            out.append(text)
    return tuple(out)


def squad_questions(data: dict) -> list[EvalQuestion]:
    out = []
    for art in data["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                answers = _gold_answers(para["context"], qa.get("answers", []))
                if answers and str(qa.get("question", "")).strip():
                    out.append(EvalQuestion(str(qa["id"]), qa["question"], True, (str(para["id"]),), answers))
    return out


def load_public(name: str, data_dir: str | Path = DEFAULT_DATA_DIR, *, limit: int | None = None,
                holdout: float = 0.0, seed: int = 13, sample: int | None = None) -> EvalSet:
    """A public benchmark as an EvalSet.

    Args:
        name: one of ``DATASETS`` (cmrc2018-trial and its -s2t/-split/-cross
            variants are for tuning; the dev sets and the pool for reporting).
        data_dir: the folder holding cmrc2018/ and drcd/.
        limit: ask only the first ``limit`` questions (contexts stay whole,
            except that a slice also drops contexts no asked question needs
            when ``name`` is not the pool, to keep CI fast).
        holdout: share of contexts removed from the index; their questions
            become unanswerable (the abstention test on data with no
            unanswerable questions).
        seed: the sample of held-out contexts (and of ``sample``).
        sample: ask a random sample of this many questions (fixed by
            ``seed``, in the set's order); the index keeps every context, so
            retrieval faces the same distractors as the full run and the
            cached index is shared with it.

    Raises:
        CorpusError: unknown name or missing data file.
    """
    data_dir = Path(data_dir)
    if name == "pool":
        qfile, cfiles = POOL["questions"], POOL["contexts"]
    elif name in DATASET_FILES:
        qfile, cfiles = DATASET_FILES[name][0], DATASET_FILES[name]
    else:
        raise CorpusError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    qdata = _read_squad(data_dir / qfile)
    total = sum(len(p["qas"]) for a in qdata["data"] for p in a["paragraphs"])
    if name.endswith("-t2s"):
        qdata = _convert_script(qdata, "t2s")
    elif name.endswith("-s2t"):
        qdata = _convert_script(qdata, "s2tw")
    elif name.endswith("-cross"):
        qdata = _convert_script(qdata, "s2tw", questions=False)
    elif name.endswith("-split"):
        qdata = _split_siblings(qdata)
    questions = squad_questions(qdata)
    usable = len(questions)
    articles: list[Article] = []
    hashes = []
    for f in cfiles:
        data = qdata if f == qfile else _read_squad(data_dir / f)
        articles += squad_articles(data)
        hashes.append(_file_hash(data_dir / f))
    if limit is not None:
        questions = questions[:limit]
        if name != "pool":
            needed = {g for q in questions for g in q.gold}
            if name.endswith("-split"):
                # Keep every sibling of a needed context: they are the test.
                contexts = {g.rsplit("-s", 1)[0] for g in needed}
                needed = {a.article_id for a in articles if a.article_id.rsplit("-s", 1)[0] in contexts}
            articles = [a for a in articles if a.article_id in needed]
    notes = []
    if total != usable:
        notes.append(f"{total - usable} questions skipped: empty question, no answer text "
                     "found in the context" + (", or an answer across a cut" if name.endswith("-split") else ""))
    if holdout > 0:
        rng = random.Random(seed)
        ids = sorted({q.gold[0] for q in questions})
        removed = set(rng.sample(ids, max(1, round(len(ids) * holdout))))
        articles = [a for a in articles if a.article_id not in removed]
        questions = [EvalQuestion(q.qid, q.question, False, (), (), "heldout", q.split, q.lang)
                     if q.gold[0] in removed else q for q in questions]
        notes.append(f"{len(removed)} contexts held out; their questions are unanswerable")
    # The fingerprint keys the cached index: it covers the articles as built
    # (after any conversion or split), not only the files they came from.
    content = hashlib.sha256()
    for a in articles:
        content.update(f"{a.article_id}\0{a.title}\0{a.text}\0".encode())
    fp = hashlib.sha256(json.dumps([name, hashes, limit, holdout, seed, content.hexdigest()]).encode()).hexdigest()[:16]
    if sample is not None and sample < len(questions):
        keep = sorted(random.Random(seed).sample(range(len(questions)), sample))
        notes.append(f"a random sample of {sample} of the {len(questions)} questions (seed {seed})")
        questions = [questions[i] for i in keep]
    suffix = f"-holdout{holdout:g}" if holdout else ""
    return EvalSet(f"{name}{suffix}", questions, articles, fp, notes)
