"""The index dir backend (format 2): SQLite store updated in place, tantivy
for keywords, FAISS base + flat delta + tombstones for vectors."""
