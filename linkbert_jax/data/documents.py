"""What every reader yields (``RawDoc``): a leaf, so that the readers of each format
and their dispatch in ``readers`` import it, not each other."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RawDoc:
    id: str
    title: str
    text: str  # plain text, or wikitext when ``wikitext`` is set
    links: list[str] | None  # raw link names (ids or titles); None until wikitext parsed
    source: str  # "file:line" for messages
    wikitext: bool = False
