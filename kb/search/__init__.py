"""The read pipeline: request -> plan -> retrieve -> fuse -> present (results and the answer card)."""
