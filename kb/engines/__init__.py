"""Leaves: one module per third-party engine (Whoosh, FAISS, the encoder, the vector cache, spelling)."""
