"""Imported only by the multiprocessing fork server of a verification process pool
(see `ChainPipeline`): the fork server dies with the process that started it, and
so, through `die_with_parent` in each pool process, do its children."""

from curation.verification.pipeline import die_with_parent

die_with_parent()
