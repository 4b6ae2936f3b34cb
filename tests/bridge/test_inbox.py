"""The bridge's inbox (``racing_rl.bridge.inbox.Inbox``): what a step takes when a
real-time game ticked more than once before the step's action reached it."""

import numpy as np
import pytest

from racing_rl.bridge.inbox import Inbox
from racing_rl.bridge.protocol import AgentStep


def entry(x: float, reward: float = 1.0, terminated: bool = False, **info) -> AgentStep:
    return AgentStep(np.full(4, x, np.float32), reward, terminated, False, info=info)


def test_one_tick_is_taken_as_it_came():
    inbox = Inbox()
    after = inbox.mark()
    inbox.put({"a": entry(0.1, lap_time=20.5)})
    found, missing = inbox.take(["a"], after, timeout=1.0)
    assert not missing
    assert found["a"].ticks == 1 and found["a"].step.info == {"lap_time": 20.5}


def test_ticks_the_action_missed_are_folded_into_one_step():
    inbox = Inbox()
    after = inbox.mark()
    inbox.put({"a": entry(0.1, reward=2.0, laps=1, lap_time=20.5), "b": entry(0.5)})
    inbox.put({"a": entry(0.2, reward=3.0, laps=1)})
    inbox.put({"a": entry(0.3, reward=4.0, laps=1)})
    found, missing = inbox.take(["a", "b"], after, timeout=1.0)
    a = found["a"]
    assert not missing and not a.interrupted
    assert a.ticks == 3 and found["b"].ticks == 1
    np.testing.assert_array_equal(a.step.observation, np.full(4, 0.3, np.float32))  # newest
    assert a.step.reward == pytest.approx(9.0)  # every tick's reward
    assert a.step.info == {"laps": 1, "lap_time": 20.5}  # the lap's time is kept
    # All taken: the next action's step waits for the next tick.
    assert inbox.take(["a"], inbox.mark(), timeout=0.05) == ({}, ["a"])


def test_folding_stops_at_an_episode_end():
    inbox = Inbox()
    after = inbox.mark()
    inbox.put({"a": entry(0.1, reward=1.0)})
    inbox.put({"a": entry(0.9, reward=-20.0, terminated=True)})  # respawned: new observation
    inbox.put({"a": entry(0.2, reward=5.0)})  # the new episode's first tick
    found, _ = inbox.take(["a"], after, timeout=1.0)
    ended = found["a"]
    assert ended.ticks == 2 and ended.step.terminated
    assert ended.step.reward == pytest.approx(-19.0)
    again, _ = inbox.take(["a"], after, timeout=1.0)
    assert again["a"].step.reward == 5.0 and not again["a"].interrupted
