"""Guides: one parse (front matter, headings, anchors, sections), rendering, chunking, glossary."""
