"""The LangChain adapters, used through LangChain's own interfaces."""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore

from retriever.index import IndexReader
from retriever.langchain import WendaEmbeddings, WendaRetriever
from retriever.search import make_retriever


def test_retriever_invoke_returns_documents_with_citations(mini_index, e5):
    lc = WendaRetriever(retriever=make_retriever(IndexReader(mini_index, e5), "hybrid"), k=2)
    docs = lc.invoke("荆江长江大桥主跨多少米？")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.id == "a08:1" and "1160米" in top.page_content
    assert {k: top.metadata[k] for k in ("passage_id", "article_id", "paragraph", "source")} == {
        "passage_id": "a08:1", "article_id": "a08", "paragraph": 1, "source": "hybrid"}
    article = IndexReader(mini_index, e5).article("a08")[0]
    assert article.text[top.metadata["start"]:top.metadata["end"]] == top.page_content


def test_retriever_composes_in_a_chain(mini_index, e5):
    lc = WendaRetriever(retriever=make_retriever(IndexReader(mini_index, e5), "bm25"), k=1)
    chain = lc | RunnableLambda(lambda docs: [d.metadata["passage_id"] for d in docs])
    assert chain.invoke("策展人") == ["a09:2"]
    assert lc.batch(["策展人", "风电场场长"]) [1][0].metadata["article_id"] == "a10"


def test_embeddings_in_a_langchain_vector_store(e5):
    store = InMemoryVectorStore(embedding=WendaEmbeddings(e5))
    store.add_texts(["江州市新图书馆开馆，首批上架图书120万册。", "荆江长江大桥主跨1160米。", "风电场首期并网发电。"],
                    ids=["lib", "bridge", "wind"])
    found = store.similarity_search("How long is the main span of the bridge?", k=1)
    assert found[0].id == "bridge"
    vec = WendaEmbeddings(e5).embed_query("大桥")
    assert len(vec) == 384 and abs(sum(v * v for v in vec) - 1.0) < 1e-4
