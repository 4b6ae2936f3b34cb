"""RaceWindow: a live race drawn step by step, stopped by esc, q or closing the window."""

import pygame
import pytest

from racing_rl.envs.race import RaceParallelEnv
from racing_rl.errors import ConfigError
from racing_rl.ui.window import RaceWindow


@pytest.mark.parametrize(
    "event",
    [
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q),
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE),
        pygame.event.Event(pygame.QUIT),
    ],
    ids=["q", "escape", "window closed"],
)
def test_the_hook_draws_until_the_window_is_closed(event):
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=0)
    window = RaceWindow(fps=0, size_px=(160, 120), camera="chase", headless_hint="")
    draw = window.on_step(env, ("first", "second"), "a caption")
    try:
        assert draw() and draw()
        assert window.frames == 2 and not window.closed
        assert pygame.display.get_caption()[0] == "a caption"
        assert pygame.display.get_surface().get_size() == (160, 120)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_a))  # not a quit key
        assert draw()
        pygame.event.post(event)
        assert not draw() and window.closed and window.frames == 4
    finally:
        window.close()
    assert not pygame.display.get_init()


@pytest.mark.parametrize(("fps", "held_to"), [(None, 20), (0, 0), (15, 15)])
def test_the_window_plays_the_race_in_real_time_unless_told_a_rate(fps, held_to):
    """fps=15 was real time only at the default rules.dt: a run trained at dt=0.05 (20
    steps a second) played at 0.75x."""
    from racing_rl.envs.config import RaceConfig
    from racing_rl.sim.world import RaceRules

    env = RaceParallelEnv(RaceConfig(rules=RaceRules(dt=0.05)))
    env.reset(seed=0)
    window = RaceWindow(fps=fps, size_px=(160, 120), camera="track", headless_hint="")
    try:
        window.on_step(env, ("car",), "a caption")
        assert window._renderer.fps == held_to
    finally:
        window.close()


def test_an_unknown_camera_is_a_config_error():
    with pytest.raises(ConfigError, match="camera"):
        RaceWindow(fps=0, size_px=(160, 120), camera="drone", headless_hint="")


def test_a_live_snapshot_knows_the_races_laps():
    """A live window called a car that had finished "out", as a crashed one."""
    from racing_rl.sim.snapshot import RaceSnapshot

    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=0)
    world = env.world
    assert RaceSnapshot.from_world(world).finished is None  # laps unknown
    assert RaceSnapshot.from_world(world, laps=1).finished.tolist() == [False, False]
    world.laps[1] = 1  # as the step that completes its lap leaves it
    assert RaceSnapshot.from_world(world, laps=1).finished.tolist() == [False, True]
