"""Multi-turn conversations: K turns per candidate for `open` and `instruction` batches.

`ConversationTeacher` wraps the run's teacher, so the engine, cache, retries, resume
and shards see one call per slot as usual: the call answers the first user message,
then for each further turn gets the user's follow-up (written by the teacher playing
the user persona, or taken from a file) and asks for the next answer. The candidate's
text is the last assistant turn (what the verifiers check: IFEval constraints apply to
the last turn); the whole conversation goes to `metadata.messages` (system, then user
and assistant turns in order), which the review card shows as a transcript and the
chat export writes as `messages`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from curation.generation.params import GenerationParams
from curation.teachers import ChatRequest, Choice, Completion, Teacher, make_teacher

FOLLOWUP_TASK = (
    "Here is a conversation between you (the user) and an assistant. Write your next message to the "
    "assistant: a natural follow-up that builds on the last answer. Reply with the message only.\n\n{transcript}"
)


def _transcript(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages if m["role"] != "system")


class ConversationTeacher(Teacher):
    """A teacher that holds `turns`-turn conversations through `inner` (not registered:
    `teacher_for` builds it)."""

    def __init__(
        self, inner: Teacher, *, turns: int, user_persona: str, followups: list[str] | None = None
    ) -> None:
        self.inner = inner
        self.config = inner.config
        self.scrub = inner.scrub
        self._api_key = inner._api_key
        self.simulated = inner.simulated
        self.enforces_timeout = inner.enforces_timeout
        self.turns = turns
        self.user_persona = user_persona
        self.followups = list(followups or [])

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.inner.label

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    def endpoint(self) -> str:
        return self.inner.endpoint()

    def source_label(self) -> str:
        return self.inner.source_label()

    async def list_models(self) -> list[str]:
        return await self.inner.list_models()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def cache_identity(self, request: ChatRequest) -> dict[str, Any]:
        followups = (
            hashlib.sha256("\n".join(self.followups).encode()).hexdigest()[:16] if self.followups else None
        )
        return {
            **self.inner.cache_identity(request),
            "turns": self.turns,
            "user_persona": self.user_persona,
            "followups": followups,
        }

    async def complete(self, request: ChatRequest) -> Completion:
        first = await self.inner.complete(request)
        totals = [first.prompt_tokens, first.completion_tokens]
        choices = []
        for position, choice in enumerate(first.choices):
            candidate = request.candidates[position] if position < len(request.candidates) else position
            messages = [*request.messages, {"role": "assistant", "content": choice.text}]
            last = choice
            for turn in range(2, self.turns + 1):
                followup = await self._followup(request, messages, candidate, turn, totals)
                messages.append({"role": "user", "content": followup})
                reply = await self.inner.complete(
                    ChatRequest(
                        messages=list(messages),
                        n=1,
                        temperature=request.temperature,
                        top_p=request.top_p,
                        max_tokens=request.max_tokens,
                        seed=request.seed,
                        candidates=[candidate],
                        context={**request.context, "problem": followup} if request.context else {},
                    )
                )
                totals[0] += reply.prompt_tokens
                totals[1] += reply.completion_tokens
                last = reply.choices[0]
                messages.append({"role": "assistant", "content": last.text})
            meta = {**last.meta, "messages": messages, "turns": self.turns}
            choices.append(Choice(text=last.text, finish_reason=last.finish_reason, meta=meta))
        return Completion(
            choices=choices, prompt_tokens=totals[0], completion_tokens=totals[1], model=first.model
        )

    async def _followup(
        self,
        request: ChatRequest,
        messages: list[dict[str, str]],
        candidate: int,
        turn: int,
        totals: list[int],
    ) -> str:
        """The user's message of `turn` (2-based): from the file, or written by the teacher as the user."""
        if self.followups:
            first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
            start = int(hashlib.sha256(first_user.encode()).hexdigest()[:8], 16)
            return self.followups[(start + turn - 2) % len(self.followups)]
        written = await self.inner.complete(
            ChatRequest(
                messages=[
                    {"role": "system", "content": f"You are {self.user_persona}."},
                    {"role": "user", "content": FOLLOWUP_TASK.format(transcript=_transcript(messages))},
                ],
                n=1,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                candidates=[candidate],
                context={
                    "task": "followup",
                    "family": "open",
                    "problem": messages[-1]["content"],
                    "turn": turn,
                }
                if request.context
                else {},
            )
        )
        totals[0] += written.prompt_tokens
        totals[1] += written.completion_tokens
        return written.choices[0].text.strip()


def teacher_for(params: GenerationParams, api_key: str | None = None) -> Teacher:
    """The run's teacher: the configured one, holding conversations when `params.turns` > 1."""
    teacher = make_teacher(params.teacher, api_key=api_key)
    if params.turns <= 1:
        return teacher
    return ConversationTeacher(
        teacher, turns=params.turns, user_persona=params.user_persona, followups=params.followups
    )
