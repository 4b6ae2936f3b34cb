"""The ``Inbox``: game entries per agent between the bridge's server thread and training.

The server thread puts every valid entry of a frame in (``put``); the training thread
takes an agent's entries out (``take``), blocking until they come. When a real-time game
ticked more than once since the caller last read a car (it drove on with its last
action), the entries are folded into one (``Received``): the newest observation, the
rewards summed, lap info kept, up to the first episode end. An agent's entries beyond
the inbox's capacity (training read the car too late) are folded the same way into the
next one kept, so that their rewards still reach the episode's return.
A condition variable guards it (the seed's DataBridge queues).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from racing_rl.bridge.protocol import AgentStep

STOP_POLL_S = 0.2
"""The longest a ``take`` waits without checking its ``stop`` condition [s]."""


@dataclass(frozen=True)
class Received:
    """An agent's entry taken from the inbox.

    Attributes:
        step: the entry; when several arrived since the caller last read the agent (a
            real-time game ticked again before the action reached it), they are folded
            into one: the newest observation, the rewards summed, the infos merged (a
            ``lap_time`` of an earlier tick is kept), up to the first episode end.
        interrupted: an episode end of this agent was skipped (it came in a stale
            message, or the inbox overflowed): the episode the caller is tracking is over.
        ticks: the game's entries folded into ``step`` (1: the action was in time for
            the game's next tick, and no tick went unread before it).
        seq: the message ``step``'s newest entry came in (``Inbox.mark`` numbering).
        overflowed: of ``ticks``, those folded in when the inbox was full (over its
            ``capacity``): their rewards are in ``step``, their observations are gone.
    """

    step: AgentStep
    interrupted: bool
    ticks: int = 1
    seq: int = 0
    overflowed: int = 0


class Inbox:
    """Observation entries per agent, in arrival order, between the server and training.

    Every message gets a sequence number. A caller notes ``mark()`` (or ``newest()``)
    before it sends an action, and ``take`` waits per agent for an entry that arrived
    after it (and, if the game echoes steps, answers that step): nothing from before the
    mark is that action's result (the bridge's environment moves the mark one message
    back for a tick that came while the action was chosen). Given what the caller last
    read of each agent (``read``), the entries since then that are no answer (the car
    drove on with its last action) are folded in with it: a tick the action missed is
    counted, never lost, and an episode end among them is the step's end.

    Args:
        capacity: entries kept per agent. When a new one comes to a full queue, the
            oldest is folded into the next (its reward, info and tick count are kept,
            ``Received.overflowed`` counts it); an episode end is not folded into the
            next episode's entry but remembered as ``Received.interrupted``.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._arrived = -math.inf  # time.monotonic() of message _seq
        # Per agent: (message seq, entry, the game's ticks folded into it)
        self._entries: defaultdict[str, deque[tuple[int, AgentStep, int]]] = defaultdict(deque)
        self._lost_end: set[str] = set()
        self.capacity = capacity

    def put(self, steps: Mapping[str, AgentStep]) -> None:
        """Add one message's entries (server thread)."""
        with self._cond:
            self._seq += 1
            self._arrived = time.monotonic()
            for agent, step in steps.items():
                queue = self._entries[agent]
                if len(queue) == self.capacity:
                    _, dropped, ticks = queue.popleft()
                    if dropped.terminated or dropped.truncated:
                        self._lost_end.add(agent)
                    elif queue:  # capacity > 1: the next entry carries the dropped one
                        seq, kept, kept_ticks = queue[0]
                        queue[0] = (seq, _fold([dropped, kept]), ticks + kept_ticks)
                queue.append((self._seq, step, 1))
            self._cond.notify_all()

    def mark(self) -> int:
        """The sequence number of the newest message so far."""
        with self._cond:
            return self._seq

    def newest(self) -> tuple[int, float]:
        """The newest message's sequence number (``mark()``) and its age [s]: how long
        ago it arrived (infinite before the first). Frames without entries (the game's
        ``[]``) are no messages here, so they do not make it younger."""
        with self._cond:
            return self._seq, time.monotonic() - self._arrived

    def wake(self) -> None:
        """Wake every ``take`` so that it re-checks its ``stop`` (e.g. on a disconnect)."""
        with self._cond:
            self._cond.notify_all()

    def skip(self, agents: Collection[str]) -> int:
        """Drop the entries of ``agents`` so far as stale (none is any step's): an episode
        end among them is ``interrupted`` in the agent's next ``take``. Returns the
        ``mark()`` skipped up to (to ``take`` as the agents' ``read``)."""
        with self._cond:
            for agent in agents:
                self._skip_stale(agent, self._seq)
            return self._seq

    def clear(self, agents: Collection[str] | None = None) -> None:
        """Drop the entries of ``agents`` (all if None)."""
        with self._cond:
            for agent in list(self._entries) if agents is None else agents:
                self._entries.pop(agent, None)
                self._lost_end.discard(agent)

    def take(
        self,
        agents: Collection[str],
        after: int,
        timeout: float,
        min_step: int | None = None,
        stop: Callable[[], bool] = lambda: False,
        read: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, Received], list[str]]:
        """Wait for an entry of every agent that arrived after ``after`` (its answer).

        Args:
            agents: the agents to wait for.
            after: a ``mark()`` taken before the action was sent.
            timeout: longest wait [s].
            min_step: entries that echo a ``step`` below this are no answer.
            stop: checked on every wake-up, and at least every ``STOP_POLL_S``; True
                ends the wait early (it can turn True without an entry: a size error
                that ``SIZE_ERROR_AFTER`` seconds make, a closed bridge).
            read: per agent, the ``Received.seq`` the caller last read of it: entries
                up to it are stale (skipped; an episode end among them is
                ``interrupted``), later ones that are no answer are ticks the caller
                did not read, in the agent's current episode (folded in; an episode end
                among them is taken at once, with no answer). None: ``after`` for every
                agent (a new episode: what came before the command is stale).

        Returns:
            The entries found, and the agents still missing (empty unless the wait
            timed out or ``stop`` said so). Every entry of an agent after its ``read``
            is consumed, folded into one up to an episode end (``Received``).
        """
        deadline = time.monotonic() + timeout
        found: dict[str, Received] = {}
        with self._cond:
            while True:
                for agent in agents:
                    if agent not in found:
                        since = after if read is None else read.get(agent, after)
                        received = self._pop_after(agent, since, after, min_step)
                        if received is not None:
                            found[agent] = received
                missing = [agent for agent in agents if agent not in found]
                remaining = deadline - time.monotonic()
                if not missing or remaining <= 0 or stop():
                    return found, missing
                self._cond.wait(min(remaining, STOP_POLL_S))

    def _pop_after(
        self, agent: str, read: int, after: int, min_step: int | None
    ) -> Received | None:
        """The agent's entries after ``read`` folded up to an episode end, once they hold
        one or an answer (after ``after``, echoing no step below ``min_step``)."""
        queue = self._skip_stale(agent, read)
        interrupted = agent in self._lost_end
        taken: list[AgentStep] = []
        answered = False
        ticks = 0
        for seq, step, step_ticks in queue:
            taken.append(step)
            ticks += step_ticks
            answered = answered or (
                seq > after and (min_step is None or step.step is None or step.step >= min_step)
            )
            if step.terminated or step.truncated:
                break
        else:
            if not answered:
                return None  # no answer yet: the ticks it missed wait with the queue
        newest = queue[len(taken) - 1][0]
        for _ in taken:
            queue.popleft()
        self._lost_end.discard(agent)
        return Received(_fold(taken), interrupted, ticks, newest, ticks - len(taken))

    def _skip_stale(self, agent: str, read: int) -> deque[tuple[int, AgentStep, int]]:
        """Drop the agent's entries up to ``read`` (stale: from before the caller's last
        read), remembering an episode end among them; the agent's queue."""
        queue = self._entries[agent]
        while queue and queue[0][0] <= read:
            _, step, _ = queue.popleft()
            if step.terminated or step.truncated:
                self._lost_end.add(agent)
        return queue


def _fold(steps: list[AgentStep]) -> AgentStep:
    """One entry for several ticks of one agent: the newest, with the rewards summed and
    the infos merged (newer keys win)."""
    if len(steps) == 1:
        return steps[0]
    info: dict[str, Any] = {}
    for step in steps:
        info.update(step.info)
    return dataclasses.replace(
        steps[-1], reward=float(sum(step.reward for step in steps)), info=info
    )
