"""The demo workspace (`make run`, `python -m curation demo`): bundled real reference
sets, an example import and batches from the clearly labelled simulated teacher."""

from curation.demo.workspace import EXAMPLE_BATCH, ensure_demo_workspace

__all__ = ["EXAMPLE_BATCH", "ensure_demo_workspace"]
