"""The knowledge base on disk (FAISS index, records, manifest), its configuration, the embedder
interface and the text normalisation that both sides of a match share."""
