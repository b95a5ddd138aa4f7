"""Hostile repositories crafted byte by byte from docs/format.md, met through the real CLI."""
