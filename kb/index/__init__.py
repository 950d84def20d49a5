"""The write pipeline's end: an index generation, its format, build, swap and retirement."""
