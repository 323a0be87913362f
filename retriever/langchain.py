"""LangChain adapters (langchain-core only: ``Embeddings``, ``BaseRetriever``,
``Document``). langchain-community's FAISS store pickles its docstore, so we
expose our index through LangChain's interfaces instead of the other way round."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ingest.embedder import Embedder


class WendaEmbeddings(Embeddings):
    """A wenda embedder as a LangChain ``Embeddings`` (documents get the
    passage role, queries the query role)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_passages(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_queries([text])[0].tolist()


class WendaRetriever(BaseRetriever):
    """A wenda retriever as a LangChain ``BaseRetriever``.

    Each ``Document`` carries the passage text and, in ``metadata``, the
    citation fields: passage_id, article_id, title, section, paragraph, part,
    start, end, score, source.

    Args:
        retriever: any wenda retriever (``search_passages(query, k)``).
        k: how many documents to return.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        docs = []
        for hit, p in self.retriever.search_passages(query, self.k):
            meta = p.to_dict()
            meta.pop("text")
            meta.update(score=hit.score, source=hit.source)
            docs.append(Document(page_content=p.text, metadata=meta, id=p.passage_id))
        return docs
