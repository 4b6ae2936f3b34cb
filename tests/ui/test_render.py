"""Tests of the pygame renderer, run headless (tests/conftest.py sets the dummy drivers)."""

from __future__ import annotations

import numpy as np
import pygame
import pytest

from racing_rl.drivers.pure_pursuit import PurePursuitDriver
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.errors import ConfigError
from racing_rl.sim.snapshot import RaceSnapshot
from racing_rl.sim.world import World
from racing_rl.ui.colours import CAR_COLOURS, SPEED_RAMP, speed_colours
from racing_rl.ui.render import Renderer, window_size

THROTTLE = np.array([0.4, 0.0, 0.0])


def _drive(env: RaceParallelEnv, steps: int) -> None:
    """Step the live cars with a little throttle and no steering."""
    for _ in range(steps):
        if not env.agents:
            break
        env.step({agent: THROTTLE for agent in env.agents})


def _colour_near(frame: np.ndarray, centre_px: np.ndarray, colour: tuple[int, ...]) -> bool:
    """Whether ``colour`` occurs within 4 px of ``centre_px`` (x, y) in an (H, W, 3) frame."""
    x, y = np.round(centre_px).astype(int)
    patch = frame[max(y - 4, 0) : y + 5, max(x - 4, 0) : x + 5]
    return bool((patch == np.array(colour, dtype=np.uint8)).all(axis=-1).any())


def _record_texts(renderer: Renderer, monkeypatch) -> list[str]:
    """The texts ``renderer`` renders from now on (its HUD's lines), in order."""
    font, texts = renderer._get_font(), []

    class Recording:
        def __getattr__(self, name):
            return getattr(font, name)

        def render(self, text, *args):
            texts.append(text)
            return font.render(text, *args)

    monkeypatch.setattr(renderer, "_get_font", Recording)
    return texts


def test_rgb_array_frame_shows_track_and_cars() -> None:
    env = RaceParallelEnv(n_cars=3, render_mode="rgb_array")
    env.reset(seed=0)
    _drive(env, 5)
    frame = env.render()
    env.close()

    assert isinstance(frame, np.ndarray)
    assert frame.shape == (800, 800, 3)
    assert frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10

    world = env.world
    assert world is not None
    renderer = Renderer(mode="rgb_array", size_px=(640, 480))
    frame = renderer.draw(world)
    assert frame is not None and frame.shape == (480, 640, 3)
    centres_px = renderer.world_to_px(world.cars.position)
    for i in range(world.n_cars):
        assert 0 <= centres_px[i, 0] < 640 and 0 <= centres_px[i, 1] < 480
        if world.active[i]:
            assert _colour_near(frame, centres_px[i], CAR_COLOURS[i])

    # An inactive car is greyed: its colour is gone from where it stands.
    world.active[0] = False
    frame = renderer.draw(world)
    assert frame is not None
    assert not _colour_near(frame, centres_px[0], CAR_COLOURS[0])
    renderer.close()


def test_world_to_px_flips_y_and_fits_the_track() -> None:
    env = RaceParallelEnv(n_cars=1)
    env.reset(seed=3)
    renderer = Renderer(mode="rgb_array", size_px=(300, 200), margin_px=10)
    assert env.world is not None
    renderer.draw(env.world)
    walls_px = renderer.world_to_px(np.concatenate([env.track.left_wall, env.track.right_wall]))
    assert walls_px.min() >= 10 - 1e-6
    assert walls_px[:, 0].max() <= 290 + 1e-6 and walls_px[:, 1].max() <= 190 + 1e-6
    up = renderer.world_to_px(np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    assert up[1, 1] < up[0, 1]  # y up in the world is up (smaller row) on screen
    assert up[2, 0] > up[0, 0]
    renderer.close()


def test_human_mode_runs_headless_and_returns_none() -> None:
    env = RaceParallelEnv(n_cars=2, render_mode="human")
    env.reset(seed=1)
    assert pygame.display.get_init()  # reset() draws the start (it waited for a step)
    _drive(env, 3)  # step() renders in human mode
    assert env.render() is None
    assert pygame.display.get_init()
    env.close()
    assert not pygame.display.get_init()


def test_human_mode_without_a_display_warns_unless_a_driver_was_chosen(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = RaceParallelEnv(n_cars=1)
    env.reset(seed=1)
    assert env.world is not None
    chosen = Renderer(mode="human", fps=0, size_px=(200, 150))
    chosen.draw(env.world)  # SDL_VIDEODRIVER=dummy, set by tests/conftest.py
    chosen.close()
    assert "no window is shown" not in caplog.text
    pygame.display.init()  # kept open: the next renderer finds the dummy driver running
    monkeypatch.delenv("SDL_VIDEODRIVER")
    renderer = Renderer(mode="human", fps=0, size_px=(200, 150), headless_hint="Do X instead.")
    try:
        renderer.draw(env.world)
    finally:
        renderer.close()
        pygame.display.quit()
    # The command's own advice (replay's and play's were eval's render=human text).
    said = "This machine has no display (pygame's video driver is 'dummy'), so no window"
    assert said in caplog.text and "is shown. Do X instead." in caplog.text


def test_trails_are_bounded_and_reset_on_a_new_episode() -> None:
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=2)
    world = env.world
    assert isinstance(world, World)
    renderer = Renderer(mode="rgb_array", size_px=(200, 200), trail_length=4)
    renderer.draw(world)
    renderer.draw(world)  # the same frame again records nothing
    assert [len(trail) for trail in renderer.trails] == [1, 1]
    for steps in range(1, 7):
        _drive(env, 1)
        renderer.draw(world)
        assert [len(trail) for trail in renderer.trails] == [min(steps + 1, 4)] * 2
    np.testing.assert_array_equal(renderer.trails[0][-1], world.cars.position[0])

    env.reset()  # same track and world, clock back to 0
    assert env.world is world
    renderer.draw(world)
    assert [len(trail) for trail in renderer.trails] == [1, 1]

    env.reset()  # again at time 0, but the cars stand elsewhere
    renderer.draw(world)
    assert [len(trail) for trail in renderer.trails] == [1, 1]
    np.testing.assert_array_equal(renderer.trails[1][0], world.cars.position[1])

    _drive(env, 2)
    renderer.draw(world)
    track = env.track
    env.reset(options={"track_seed": 7})  # a new track, the clock back to 0
    assert env.track is not track
    renderer.draw(env.world)
    assert [len(trail) for trail in renderer.trails] == [1, 1]
    renderer.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "video"}, {"size_px": (0, 100)}, {"margin_px": 60, "size_px": (100, 100)}],
)
def test_invalid_arguments_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Renderer(**kwargs)


def test_closing_the_window_stops_drawing() -> None:
    env = RaceParallelEnv(n_cars=1)
    env.reset(seed=4)
    assert env.world is not None
    renderer = Renderer(mode="human", fps=0, size_px=(200, 150))
    assert renderer.draw(env.world) is None
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert renderer.draw(env.world) is None
    assert not pygame.display.get_init()
    assert renderer.draw(env.world) is None  # stays closed; the race goes on
    assert not pygame.display.get_init()
    renderer.close()


def test_chase_camera_centres_the_followed_car_and_labels_show() -> None:
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=5)
    _drive(env, 10)
    world = env.world
    assert world is not None
    snapshot = RaceSnapshot.from_world(world, labels=("alpha", "beta"))
    renderer = Renderer(mode="rgb_array", size_px=(320, 240), camera="chase", follow=1)
    frame = renderer.draw(snapshot)
    assert frame is not None and frame.shape == (240, 320, 3)
    np.testing.assert_allclose(renderer.world_to_px(world.cars.position[1]), [160, 120])
    assert _colour_near(frame, np.array([160, 120]), CAR_COLOURS[1])
    renderer.camera = "track"  # switching back redraws the whole-track layer
    renderer.draw(snapshot)
    assert renderer.world_to_px(world.cars.position[1]).tolist() != [160, 120]
    renderer.close()


def speed_colour(speed: float, max_speed: float) -> tuple[int, ...]:
    return tuple(speed_colours(np.array([speed]), max_speed)[0].tolist())


def test_trails_are_coloured_by_speed() -> None:
    assert speed_colour(0.0, 40.0) == SPEED_RAMP[0]
    assert speed_colour(40.0, 40.0) == SPEED_RAMP[-1] == speed_colour(99.0, 40.0)
    env = RaceParallelEnv(n_cars=1)
    env.reset(seed=6)
    world = env.world
    assert world is not None
    renderer = Renderer(mode="rgb_array", size_px=(400, 400), trail_length=50)
    driver = PurePursuitDriver()
    for _ in range(40):
        env.step({env.agents[0]: driver.act(world)[0]})
        frame = renderer.draw(world)
    assert frame is not None
    trail = renderer.trails[0]
    middle_px = renderer.world_to_px(trail[len(trail) // 2])
    speed = np.hypot(*(trail[len(trail) // 2 + 1] - trail[len(trail) // 2])) / world.rules.dt
    assert _colour_near(frame, middle_px, speed_colour(speed, world.car.max_speed))
    renderer.close()


@pytest.mark.parametrize("size_px", [(300, 300), (180, 400)])
def test_a_hud_wider_than_the_frame_is_shrunk_to_fit_not_cut(size_px: tuple[int, int]) -> None:
    """At 300 px the HUD's line (name, speed, laps, times, progress) is wider than the
    frame: it is scaled down, so its text ends inside the frame, clear of both edges."""
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=5)
    _drive(env, 10)
    assert env.world is not None
    snapshot = RaceSnapshot.from_world(env.world, labels=("a_long_run_name", "scripted"))
    renderer = Renderer(mode="rgb_array", size_px=size_px, trail_length=0)
    frame = renderer.draw(snapshot)
    renderer.close()
    assert frame is not None
    bright = (frame > 180).all(axis=-1)  # text; the track's edge lines stay inside the margin
    assert not bright[:, :2].any() and not bright[:, -2:].any()
    assert bright.any()


def test_a_shrunk_hud_keeps_its_size_while_its_numbers_change(monkeypatch) -> None:
    """The HUD's font is proportional, so its text width changes with every digit: shrunk
    per frame, the box (and its text) grew and shrank from frame to frame in a video."""
    sizes = []
    smoothscale = pygame.transform.smoothscale

    def recording(surface, size):
        sizes.append((surface.get_width(), size[0]))
        return smoothscale(surface, size)

    monkeypatch.setattr(pygame.transform, "smoothscale", recording)
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=5)
    assert env.world is not None
    renderer = Renderer(mode="rgb_array", size_px=(300, 300), trail_length=0)
    widths = set()
    for _ in range(30):
        _drive(env, 1)
        snapshot = RaceSnapshot.from_world(env.world, labels=("a_long_run_name", "scripted"))
        renderer.draw(snapshot)
        font = renderer._get_font()
        text = f"race time {snapshot.time:7.2f} s {snapshot.speed[0] * 3.6:4.0f}"
        widths.add(font.size(text)[0])
    renderer.close()
    assert len(widths) > 1  # the text did change width
    assert len(sizes) == 30
    scales = [scaled / width for width, scaled in sizes]
    assert max(scales) - min(scales) <= 1 / min(width for width, _ in sizes)  # one, rounded


@pytest.mark.parametrize("size", [[100], [100, 100, 3], []])
def test_a_size_of_other_than_two_values_is_a_config_error(size):
    # play, replay and eval render=human indexed size[1]: an IndexError's traceback.
    assert window_size([640, 480]) == (640, 480)
    with pytest.raises(ConfigError, match=r"must be \[width, height\] in pixels"):
        window_size(size)


def test_the_hud_of_a_car_creeping_backwards_says_0_km_h(monkeypatch) -> None:
    # A speed of -0.01 m/s read "-0 km/h".
    env = RaceParallelEnv(n_cars=1)
    env.reset(seed=5)
    assert env.world is not None
    env.world.cars.speed[0] = -0.01
    renderer = Renderer(mode="rgb_array", size_px=(300, 300), trail_length=0)
    texts = _record_texts(renderer, monkeypatch)
    renderer.draw(RaceSnapshot.from_world(env.world, labels=("me",)))
    renderer.close()
    (line,) = [text for text in texts if "km/h" in text]
    assert "   0 km/h" in line and "-0" not in line


def test_the_chase_cameras_car_is_in_the_hud_when_more_cars_race_than_it_lists(
    monkeypatch,
) -> None:
    # Following car 7 of 8 (tab in the viewer), the HUD listed cars 0-5: not the car in view.
    env = RaceParallelEnv(n_cars=8)
    env.reset(seed=5)
    assert env.world is not None
    renderer = Renderer(mode="rgb_array", size_px=(300, 300), camera="chase", follow=7)
    texts = _record_texts(renderer, monkeypatch)
    renderer.draw(RaceSnapshot.from_world(env.world))
    renderer.close()
    cars = [text.split("  ")[0] for text in texts if "km/h" in text]
    assert cars == ["car 0", "car 1", "car 2", "car 3", "car 4", "car 7"]
    assert "+ 2 more cars" in texts


def test_a_setting_out_of_range_is_named_alone() -> None:
    # trail_length=-1 was "fps, trail_length and max_hud_cars must be >= 0 and
    # font_size_px >= 1, got 15.0, -1, 6 and 20": keys the user never gave.
    with pytest.raises(ConfigError, match=r"^trail_length must be >= 0, got -1\.$"):
        Renderer(mode="rgb_array", trail_length=-1)
    with pytest.raises(ConfigError, match=r"^font_size_px must be >= 1, got 0\.$"):
        Renderer(mode="rgb_array", font_size_px=0)


def test_labels_go_under_the_hud_and_cars_over_it(monkeypatch) -> None:
    # Labels drawn over the HUD made its rows unreadable (a 4-car race's grid start).
    from racing_rl.ui import layers

    order = []
    for name in ("draw_labels", "draw_cars"):
        monkeypatch.setattr(layers, name, lambda *args, name=name: order.append(name))
    monkeypatch.setattr(Renderer, "_draw_hud", lambda *args: order.append("hud"))
    env = RaceParallelEnv(n_cars=2)
    env.reset(seed=5)
    renderer = Renderer(mode="rgb_array", size_px=(200, 200))
    renderer.draw(RaceSnapshot.from_world(env.world, labels=("a", "b")))
    renderer.close()
    assert order == ["draw_labels", "hud", "draw_cars"]
