"""Shared pieces of the config tests."""

from __future__ import annotations

MINIMAL = """\
General:
  name: minimal
Architecture:
  gravnet:
    - {n: 8}
  message_passing: [{n: 16}]
  dense_pre_gravnet: []
  dense_post_message_passing: []
  dense_final: [{n: 16}]
Training:
  - epochs: 1
    batch_size: 5000
    learning_rate: 1e-3
"""


def line_of(text: str, snippet: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``snippet``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if snippet in line]
    return hits[occurrence - 1]
