"""Conversation flows on ``transitions``: one machine per flow, built once per process.

A flow module declares its steps and transitions as data. Each step has a ``prompt``
(what the bot says on entering it) and a ``read`` (what it makes of a reply, returning the
trigger to fire, or None to stay). The conversation of the current text is attached to the
machine only for the length of one trigger: the machine holds no per-person state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from transitions import EventData, Machine, MachineError

from bot import i18n
from bot.config import Settings
from bot.store.conversations import Conversation
from bot.store.models import Account, InboundSms

logger = logging.getLogger(__name__)

Prompt = Callable[["Turn"], None]
Read = Callable[["Turn", str], str | None]

REGISTRY: dict[str, Flow] = {}


@dataclass(frozen=True)
class Later:
    """A job to queue once the turn is committed (flows never talk to RQ themselves)."""

    job: str
    args: tuple[Any, ...]
    delay: float = 0.0
    job_id: str | None = None


@dataclass
class Turn:
    """One inbound text being handled: who sent it, where they are, what we answer."""

    settings: Settings
    session: Session
    account: Account
    conversation: Conversation
    inbound: InboundSms | None = None
    replies: list[str] = field(default_factory=list)
    jobs: list[Later] = field(default_factory=list)

    def later(self, job: str, *args: Any, delay: float = 0.0, job_id: str | None = None) -> None:
        """Queue ``job`` (a name in ``bot.jobs.LATER``) after this turn commits."""
        self.jobs.append(Later(job, args, delay, job_id))

    @property
    def state(self) -> str:
        """The step within the current flow (the attribute ``transitions`` drives)."""
        return self.conversation.state

    @state.setter
    def state(self, value: str) -> None:
        self.conversation.state = value

    @property
    def ctx(self) -> dict[str, Any]:
        """The flow's small context (kept in Redis with the position)."""
        return self.conversation.ctx

    @property
    def lang(self) -> str:
        """The person's language."""
        return self.account.language

    def t(self, key: str, **values: object) -> str:
        """Render a catalog entry in the person's language."""
        return i18n.text(self.lang, key, **values)

    def say(self, key: str, **values: object) -> None:
        """Queue a catalog text as a reply."""
        self.replies.append(self.t(key, **values))

    def goto(
        self,
        flow: str,
        state: str | None = None,
        *,
        prompt: bool = True,
        ctx: dict[str, Any] | None = None,
    ) -> None:
        """Leave the current flow for ``flow`` (at ``state`` or its start) and prompt there."""
        target = REGISTRY[flow]
        self.conversation = Conversation(flow=flow, state=state or target.initial, ctx=ctx or {})
        if prompt:
            target.prompt(self)

    def flow(self) -> Flow:
        """The flow the conversation is in."""
        return REGISTRY[self.conversation.flow]


@dataclass(frozen=True)
class Step:
    """A step: what the bot says on entering it, and how it reads a reply."""

    prompt: str | None
    read: str


class Flow:
    """A conversation flow: a ``transitions`` machine without models, plus step functions.

    Args:
        name: The flow's name, stored in the conversation.
        steps: Step name to ``Step`` (names of functions in ``functions``).
        transitions: Rows of (trigger, source or sources, destination).
        functions: Where the step functions live (the module's ``globals()``).
        initial: The step a conversation starts at.
    """

    def __init__(
        self,
        name: str,
        steps: Mapping[str, Step],
        transitions: Sequence[tuple[str, str | list[str], str]],
        functions: Mapping[str, Any],
        initial: str,
    ) -> None:
        self.name = name
        self.initial = initial
        self._prompts: dict[str, Prompt | None] = {}
        self._reads: dict[str, Read] = {}
        states = []
        for step_name, step in steps.items():
            prompt = functions[step.prompt] if step.prompt else None
            self._prompts[step_name] = prompt
            self._reads[step_name] = functions[step.read]
            states.append({"name": step_name, "on_enter": self._on_enter(prompt)})
        self.machine = Machine(
            model=None,
            states=states,
            transitions=[
                {"trigger": trigger, "source": source, "dest": dest}
                for trigger, source, dest in transitions
            ],
            initial=initial,
            send_event=True,
            auto_transitions=False,
        )
        REGISTRY[name] = self

    @staticmethod
    def _on_enter(prompt: Prompt | None) -> Callable[[EventData], None]:
        def enter(event: EventData) -> None:
            if prompt is not None:
                model = event.model
                assert isinstance(model, Turn)
                prompt(model)

        return enter

    def has_step(self, state: str) -> bool:
        """True when ``state`` is one of this flow's steps."""
        return state in self._reads

    def can(self, trigger: str, state: str) -> bool:
        """True when ``trigger`` leads somewhere from ``state``."""
        event = self.machine.events.get(trigger)
        return event is not None and state in event.transitions

    def prompt(self, turn: Turn) -> None:
        """Say the current step's prompt again (after a language change, say)."""
        prompt = self._prompts.get(turn.state)
        if prompt is not None:
            prompt(turn)

    def fire(self, turn: Turn, trigger: str) -> None:
        """Move the conversation along ``trigger``; the destination's prompt is said."""
        event = self.machine.events.get(trigger)
        try:
            if event is None:
                raise MachineError(f"unknown trigger {trigger!r}")
            event.trigger(turn)
        except MachineError:
            logger.error("flow %s: no %r from step %s", self.name, trigger, turn.state)
            self.prompt(turn)

    def read(self, turn: Turn, text: str) -> None:
        """Handle a reply at the current step."""
        flow_before = turn.conversation.flow
        trigger = self._reads[turn.state](turn, text)
        if trigger and turn.conversation.flow == flow_before:
            self.fire(turn, trigger)
