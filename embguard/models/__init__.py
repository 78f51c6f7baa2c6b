"""Embedding models: loading from disk (the one home of sentence-transformers) and the versioned registry."""
