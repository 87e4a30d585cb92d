"""Export writers; importing this package registers every format."""

from curation.writers import jsonl  # noqa: F401
from curation.writers.base import WRITERS, Writer

__all__ = ["WRITERS", "Writer"]
