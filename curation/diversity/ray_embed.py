"""Embeddings on a Ray cluster: an actor pool, one model per actor; the driver commits.

The job's worker process (the *driver*) finds the texts whose vectors are not cached
yet, exactly as the local path does (`service.embed_selection`), and hands them to
`RayEmbedPool.pieces`, which sends them to the actors in pieces and yields each piece's
vectors as it arrives; the driver then commits them to the same cache, keyed by (model,
content hash). Actors never open the store.

Actors: one per GPU (`num_gpus=1`, the plain encode on the GPU) when the cluster has
GPUs, else one per CPU (`num_cpus=1`, the fast CPU path of `Embedder` with one worker
thread, calibrated on first use like the local path). Work goes only to actors that have
loaded their model, at most `IN_FLIGHT_PER_ACTOR` pieces each, so an actor that cannot
be placed holds nothing up.

A killed node loses nothing and writes nothing twice: a piece is committed only when its
vectors reach the driver, and a piece whose actor died is sent to another actor (the
dead actor's result never arrives). Actors are not restarted by Ray (a restarted actor
may wait forever for a CPU another actor holds); when every actor is gone the pool
starts new ones on what the cluster still has, and fails with the reason when it has
nothing. A rerun then embeds only what is missing.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curation.diversity import embed
from curation.diversity.embed import Embedder
from curation.executors import ExecutorUnavailable, cluster_summary

#: Texts per piece: big enough that an actor's length buckets fill, small enough that a
#: dead actor's lost work is little and every actor gets pieces.
PIECE_TEXTS = 256
#: Pieces queued on one actor: one running, one waiting, so it never idles on a transfer.
IN_FLIGHT_PER_ACTOR = 2
#: How long the pool waits for a first actor to load its model.
ACTOR_START_SECONDS = 300.0
#: Times the pool starts a new set of actors after every actor died.
RESTARTS = 2


class EmbedActor:
    """One loaded model on a Ray worker; never touches the store.

    `cache_dir` is the driver's calibration cache when this node can write there (the
    same machine), else the actor's own: the calibration is per machine either way."""

    def __init__(self, model: str | None, threads: int, device: str, cache_dir: str) -> None:
        directory = Path(cache_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            usable = os.access(directory, os.W_OK)
        except OSError:
            usable = False
        self.embedder = Embedder(
            model, threads=threads, device=device, cache_dir=directory if usable else None
        )
        self.embedder.load()

    def ready(self) -> bool:
        return True

    def encode(self, texts: list[str]) -> tuple[np.ndarray, str | None]:
        """(vectors (n, dim) float32, the backend that made them)."""
        vectors = self.embedder.encode(texts)
        return vectors, self.embedder.backend


@dataclass
class _Actor:
    handle: Any
    ready: bool = False
    busy: int = 0


@dataclass
class PoolStats:
    """What the pool did: actors started and lost, pieces sent again after a death."""

    actors: int = 0
    gpu: bool = False
    lost_actors: int = 0
    resent_pieces: int = 0
    texts_sent: int = 0
    backends: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "backends": sorted(self.backends)}


class RayEmbedPool:
    """The actors of one embed job on the connected cluster (started on first use)."""

    def __init__(self, model: str | None, *, piece_texts: int = PIECE_TEXTS) -> None:
        self.model = model
        self.piece_texts = piece_texts
        self.stats = PoolStats()
        self._actors: list[_Actor] = []
        self._restarts = 0
        self._last_loss = ""

    @property
    def backend(self) -> str | None:
        return ", ".join(sorted(self.stats.backends)) or None

    def __enter__(self) -> RayEmbedPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every actor of the pool (their models go with them)."""
        import ray  # heavy optional dependency: only a Ray run pays for importing it

        for actor in self._actors:
            ray.kill(actor.handle, no_restart=True)
        self._actors.clear()

    def _start_actors(self) -> None:
        import ray  # heavy optional dependency: only a Ray run pays for importing it

        summary = cluster_summary()
        gpu = summary["gpus"] > 0
        count = summary["gpus"] if gpu else summary["cpus"]
        if count < 1:
            raise ExecutorUnavailable("the Ray cluster has no CPU or GPU left to embed on")
        options: dict[str, Any] = {"num_gpus": 1} if gpu else {"num_cpus": 1}
        remote = ray.remote(EmbedActor).options(max_restarts=0, max_task_retries=0, **options)
        device = "cuda" if gpu else "cpu"
        self._actors = [
            _Actor(remote.remote(self.model, 1, device, str(embed.CACHE_DIR))) for _ in range(count)
        ]
        self.stats.actors += count
        self.stats.gpu = gpu

    def wait_ready(self, timeout: float = ACTOR_START_SECONDS) -> int:
        """Start the actors (if not yet) and wait until each has loaded its model or
        died; returns how many are ready."""
        import ray  # heavy optional dependency: only a Ray run pays for importing it
        from ray.exceptions import RayActorError  # heavy optional dependency, as above

        if not self._actors:
            self._start_actors()
        for actor in list(self._actors):
            try:
                actor.ready = bool(ray.get(actor.handle.ready.remote(), timeout=timeout))
            except RayActorError as exc:
                self._lose(actor, exc)
        return sum(actor.ready for actor in self._actors)

    def pieces(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Embed `texts` on the actors; yields (positions in `texts`, their vectors) per
        piece as each arrives, every position exactly once."""
        import ray  # heavy optional dependency: only a Ray run pays for importing it
        from ray.exceptions import RayActorError  # heavy optional dependency, as above

        if not len(texts):
            return
        # Pieces of similar length: each actor's own length buckets then pad nothing.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        queue = deque(order[i : i + self.piece_texts] for i in range(0, len(order), self.piece_texts))
        if not self._actors:
            self._start_actors()
        starting = {actor.handle.ready.remote(): actor for actor in self._actors if not actor.ready}
        running: dict[Any, tuple[_Actor, np.ndarray]] = {}
        waiting_since = time.monotonic()
        while queue or running:
            for actor in self._actors:
                while actor.ready and queue and actor.busy < IN_FLIGHT_PER_ACTOR:
                    positions = queue.popleft()
                    ref = actor.handle.encode.remote([texts[i] for i in positions])
                    running[ref] = (actor, positions)
                    actor.busy += 1
                    self.stats.texts_sent += len(positions)
            if not running and not starting:
                self._replace_lost_actors()
                starting = {actor.handle.ready.remote(): actor for actor in self._actors}
                waiting_since = time.monotonic()
            if not running and time.monotonic() - waiting_since > ACTOR_START_SECONDS:
                raise ExecutorUnavailable(
                    f"no embedding actor started on the Ray cluster within {ACTOR_START_SECONDS:.0f}s"
                )
            done, _ = ray.wait([*running, *starting], num_returns=1, timeout=5.0)
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref)
                    except RayActorError as exc:
                        self._lose(actor, exc)
                    else:
                        actor.ready = True
                    continue
                actor, positions = running.pop(ref)
                actor.busy -= 1
                try:
                    vectors, backend = ray.get(ref)
                except RayActorError as exc:
                    self._lose(actor, exc)
                    queue.appendleft(positions)
                    self.stats.resent_pieces += 1
                    continue
                if backend:
                    self.stats.backends.add(backend)
                yield positions, vectors

    def _lose(self, actor: _Actor, error: Exception) -> None:
        self._last_loss = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if actor in self._actors:
            self._actors.remove(actor)
            self.stats.lost_actors += 1

    def _replace_lost_actors(self) -> None:
        """Every actor died (their nodes went away): start new ones on what is left."""
        if self._restarts >= RESTARTS:
            raise ExecutorUnavailable(
                f"every embedding actor died {self._restarts + 1} times (last: {self._last_loss}); "
                "rerun the same command to embed what is missing"
            )
        self._restarts += 1
        self.close()
        self._start_actors()
