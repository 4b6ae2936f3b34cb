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


def test_an_episode_end_in_a_tick_the_caller_did_not_read_is_taken_as_it_was():
    """A step read the car at one tick; the game ticked on (training was slow) and the car
    crashed on its last action before the next ACTION came: the crash (-20) was skipped
    as stale and the episode reported interrupted, reward 0, the ticks not counted."""
    inbox = Inbox()
    inbox.put({"a": entry(0.1)})
    read = inbox.take(["a"], 0, timeout=1.0)[0]["a"].seq  # the step's answer
    inbox.put({"a": entry(0.2, reward=2.0)})  # unread: the car drove on
    inbox.put({"a": entry(0.9, reward=-20.0, terminated=True)})  # crashed, respawned
    inbox.put({"a": entry(0.3, reward=3.0)})  # the new episode's first tick
    after = inbox.mark()  # then the next ACTION is sent
    found, missing = inbox.take(["a"], after, timeout=1.0, read={"a": read})
    crashed = found["a"]
    assert not missing and not crashed.interrupted and crashed.step.terminated
    assert crashed.ticks == 2 and crashed.step.reward == pytest.approx(-18.0)
    np.testing.assert_array_equal(crashed.step.observation, np.full(4, 0.9, np.float32))
    # The new episode's tick is the next step's, with that step's answer.
    inbox.put({"a": entry(0.4, reward=4.0)})
    again, _ = inbox.take(["a"], after, timeout=1.0, read={"a": crashed.seq})
    assert again["a"].ticks == 2 and again["a"].step.reward == pytest.approx(7.0)
    assert not again["a"].interrupted and not again["a"].step.terminated


def test_ticks_the_caller_did_not_read_wait_for_the_answer_and_are_folded_into_it():
    inbox = Inbox()
    inbox.put({"a": entry(0.1)})
    read = inbox.take(["a"], 0, timeout=1.0)[0]["a"].seq
    inbox.put({"a": entry(0.2, reward=2.0, lap_time=20.5)})  # before the ACTION
    after = inbox.mark()
    # No answer yet: the unread tick is not the ACTION's result, and is not lost.
    assert inbox.take(["a"], after, timeout=0.05, read={"a": read}) == ({}, ["a"])
    inbox.put({"a": entry(0.3, reward=3.0)})
    found, _ = inbox.take(["a"], after, timeout=1.0, read={"a": read})
    assert found["a"].ticks == 2 and found["a"].step.reward == pytest.approx(5.0)
    assert found["a"].step.info == {"lap_time": 20.5}
    np.testing.assert_array_equal(found["a"].step.observation, np.full(4, 0.3, np.float32))


def test_an_episode_end_before_the_callers_last_read_is_an_interruption():
    inbox = Inbox()
    inbox.put({"a": entry(0.9, reward=-20.0, terminated=True)})  # before the read
    inbox.put({"a": entry(0.1), "b": entry(0.1)})
    read = inbox.mark()  # read there (another car's entry, say)
    inbox.put({"a": entry(0.2)})
    found, _ = inbox.take(["a"], read, timeout=1.0, read={"a": read})
    assert found["a"].interrupted and found["a"].ticks == 1 and found["a"].step.reward == 1.0
    # Without ``read`` (a new episode), nothing up to ``after`` is the car's.
    inbox.put({"a": entry(0.8, reward=-20.0, terminated=True)})
    after = inbox.mark()
    inbox.put({"a": entry(0.3)})
    found, _ = inbox.take(["a"], after, timeout=1.0)
    assert found["a"].interrupted and found["a"].step.reward == 1.0


def test_ticks_beyond_the_capacity_keep_their_rewards_in_the_next_entry_kept():
    """Training read a car after more ticks than the inbox keeps (a slow update with
    the game not frozen): the oldest entries were dropped with their rewards (6 ticks of
    reward 1 made a step of 4). Now they are folded into the next entry kept: the
    return is whole, only the observations are gone (``overflowed``)."""
    inbox = Inbox(capacity=4)
    after = inbox.mark()
    for k in range(6):
        inbox.put({"a": entry(0.1 * k, reward=1.0)})
    found, _ = inbox.take(["a"], after, timeout=1.0)
    a = found["a"]
    assert a.step.reward == pytest.approx(6.0) and a.ticks == 6 and a.overflowed == 2
    assert not a.interrupted
    np.testing.assert_array_equal(a.step.observation, np.full(4, 0.5, np.float32))


def test_an_episode_end_beyond_the_capacity_is_not_folded_into_the_next_episode():
    inbox = Inbox(capacity=2)
    after = inbox.mark()
    inbox.put({"a": entry(0.1, reward=1.0)})
    inbox.put({"a": entry(0.9, reward=-20.0, terminated=True)})  # respawned
    for x in (0.2, 0.3, 0.4):  # the new episode's ticks
        inbox.put({"a": entry(x, reward=2.0)})
    found, _ = inbox.take(["a"], after, timeout=1.0)
    a = found["a"]
    assert a.interrupted and not a.step.terminated  # the end was lost: interrupted
    assert a.step.reward == pytest.approx(6.0) and a.ticks == 3 and a.overflowed == 1


def test_skipped_entries_are_stale_and_an_episode_end_among_them_interrupts():
    inbox = Inbox(capacity=2)
    inbox.put({"a": entry(0.9, reward=-20.0, terminated=True)})
    inbox.put({"a": entry(0.1, reward=1.0)})
    read = inbox.skip(["a"])
    assert read == inbox.mark()
    for x in (0.2, 0.3, 0.4):  # overflowing: nothing skipped is folded into these
        inbox.put({"a": entry(x, reward=2.0)})
    found, _ = inbox.take(["a"], read, timeout=1.0, read={"a": read})
    a = found["a"]
    assert a.interrupted and a.step.reward == pytest.approx(6.0) and a.overflowed == 1
