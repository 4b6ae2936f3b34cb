"""The sweep objective: lap completion first, then lap time, as one float."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racing_rl.objective import objective


def test_the_objective_ranks_lap_completion_first_then_lap_time():
    def metrics(rate, lap_time):
        return {"lap_completion_rate": rate, "mean_lap_time_s": lap_time, "episodes": 20}

    limit = 100.0
    slow_but_complete = objective(metrics(1.0, 99.9), "laps", limit)
    fast_but_one_crash = objective(metrics(0.95, 10.0), "laps", limit)
    assert slow_but_complete > fast_but_one_crash
    assert objective(metrics(0.5, 20.0), "laps", limit) > objective(
        metrics(0.5, 21.0), "laps", limit
    )
    assert objective(metrics(0.05, 99.0), "laps", limit) > objective(
        metrics(0.0, math.nan), "laps", limit
    )
    # No lap: NaN in memory, null once metrics.json is read back (a resumed run's best/).
    assert objective(metrics(0.0, None), "laps", limit) == objective(
        metrics(0.0, math.nan), "laps", limit
    )
    # Without a lap, the driver that gets further ranks higher (a constant kept the first
    # validation's model as best/ until one lapped), and below any that laps.
    further, shorter = ({**metrics(0.0, None), "mean_progress": p} for p in (0.9, 0.1))
    assert objective(further, "laps", limit) > objective(shorter, "laps", limit)
    assert objective(metrics(0.05, 99.9), "laps", limit) > objective(further, "laps", limit)
    assert objective({"mean_return": 12.5}, "return", limit) == 12.5
    with pytest.raises(ValueError, match="laps, return"):
        objective(metrics(1.0, 1.0), "speed", limit)


@settings(deadline=None)  # a loaded CI machine may stall one example past 200 ms
@given(
    episodes=st.integers(min_value=1, max_value=10_000),
    data=st.data(),
    times=st.tuples(st.floats(0.0, 1e4), st.floats(0.0, 1e4)),
)
def test_one_more_completed_lap_beats_any_lap_time(episodes, data, times):
    limit = 100.0
    laps = data.draw(st.integers(min_value=0, max_value=episodes - 1))

    def score(completed: int, lap_time: float) -> float:
        rate = completed / episodes
        mean = lap_time if completed else math.nan
        return objective(
            {"lap_completion_rate": rate, "mean_lap_time_s": mean, "episodes": episodes},
            "laps",
            limit,
        )

    slowest_with_one_more, fastest = score(laps + 1, max(times)), score(laps, min(times))
    assert slowest_with_one_more > fastest
