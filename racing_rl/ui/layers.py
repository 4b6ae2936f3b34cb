"""The layers of a frame, each drawn onto a pygame surface: track, trails, rays, cars, labels.

Every function takes ``to_px``, the frame's world-to-pixel mapping (``Renderer.world_to_px``:
points (..., 2) [m], x right and y up, to (..., 2) [px], x right and y down); the
``Renderer`` owns the camera, the cached track layer and the HUD.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pygame
from numpy.typing import NDArray

from racing_rl.sim.snapshot import RaceSnapshot
from racing_rl.sim.track import Track
from racing_rl.ui.colours import (
    ASPHALT,
    CHEQUER,
    GRASS,
    HUD_BOX_ALPHA,
    OBSTACLE,
    OBSTACLE_EDGE,
    WALL,
    car_colour,
    greyed,
    mixed,
    speed_colours,
)

FloatArray = NDArray[np.float64]
#: World points (..., 2) [m] to pixel coordinates (..., 2) [px].
ToPixels = Callable[[FloatArray], FloatArray]

#: Squares across the start line.
START_LINE_SQUARES = 8


def signed_area(points: FloatArray) -> float:
    """Signed area of a closed polygon, shape (n, 2) [m²]; positive when counter-clockwise.

    The shoelace formula.
    """
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def draw_track(
    track: Track, size_px: tuple[int, int], to_px: ToPixels, scale: float
) -> pygame.Surface:
    """The static layer: grass, asphalt between the walls, walls, start line, obstacles.

    Args:
        track: the track.
        size_px: the layer's size, (width, height) [px].
        to_px: world to layer pixels.
        scale: the layer's scale [px/m] (line widths, obstacle radii).

    Returns:
        A new surface of ``size_px``.
    """
    layer = pygame.Surface(size_px)
    layer.fill(GRASS)
    left, right = to_px(track.left_wall), to_px(track.right_wall)
    # The region between two nested closed walls: fill the outer one, then cut the
    # inner one out again. The outer wall encloses the larger area.
    outer, inner = (
        (left, right)
        if abs(signed_area(track.left_wall)) > abs(signed_area(track.right_wall))
        else (right, left)
    )
    pygame.draw.polygon(layer, ASPHALT, outer.tolist())
    pygame.draw.polygon(layer, GRASS, inner.tolist())
    line_px = max(1, round(0.3 * scale))
    for wall in (left, right):
        pygame.draw.lines(layer, WALL, True, wall.tolist(), line_px)
    draw_start_line(layer, track, to_px)
    for x, y, radius in track.obstacles:
        centre = to_px(np.array([x, y])).tolist()
        radius_px = max(2.0, radius * scale)
        pygame.draw.circle(layer, OBSTACLE, centre, radius_px)
        pygame.draw.circle(layer, OBSTACLE_EDGE, centre, radius_px, max(1, line_px // 2))
    return layer


def draw_start_line(layer: pygame.Surface, track: Track, to_px: ToPixels) -> None:
    """A two-row chequered band across the track at centreline point 0."""
    normal = track.normals[0]
    tangent = np.array([normal[1], -normal[0]])  # the normal is the tangent turned left
    square = track.width / START_LINE_SQUARES
    right_edge = track.centreline[0] - normal * track.width / 2
    for row, along in enumerate((-square, 0.0)):
        for col in range(START_LINE_SQUARES):
            corner = right_edge + normal * col * square + tangent * along
            quad = np.array(
                [
                    corner,
                    corner + normal * square,
                    corner + normal * square + tangent * square,
                    corner + tangent * square,
                ]
            )
            colour = CHEQUER[(row + col) % 2]
            pygame.draw.polygon(layer, colour, to_px(quad).tolist())


def draw_trails(
    canvas: pygame.Surface,
    snapshot: RaceSnapshot,
    trails: tuple[FloatArray, ...],
    to_px: ToPixels,
) -> None:
    """Each car's trail, segment by segment in the colour of its speed (greyed if out).

    Args:
        trails: per car, its positions and speeds, shape (k, 3): x, y [m], speed [m/s].
    """
    for i, trail in enumerate(trails):
        if len(trail) < 2:
            continue
        active = bool(snapshot.active[i])
        points = to_px(trail[:, :2]).tolist()
        colours = speed_colours(trail[1:, 2], snapshot.max_speed).tolist()
        for k, colour in enumerate(colours, start=1):
            shown = tuple(colour) if active else greyed(tuple(colour))
            pygame.draw.line(canvas, shown, points[k - 1], points[k], 2)


def ray_hits(distances: FloatArray, ranges: FloatArray) -> NDArray[np.bool_]:
    """Which rays hit something: shorter than their own length (a ray that hits nothing
    reports its length; a replay's float32 distances are that to ~1e-7, hence the margin).

    Args:
        distances: ray distances, shape (..., R) [m].
        ranges: each ray's length, shape (R,) [m].

    Returns:
        Shape (..., R).
    """
    return np.asarray(distances < ranges * (1 - 1e-6))


def draw_rays(canvas: pygame.Surface, snapshot: RaceSnapshot, to_px: ToPixels) -> None:
    """The active cars' rays, with a dot where a ray hit something within range."""
    active = np.flatnonzero(snapshot.active)
    if active.size == 0:
        return
    distances = snapshot.rays[active]  # (A, R) [m]
    theta = snapshot.heading[active, None] + snapshot.ray_angles[None, :]
    origins = snapshot.position[active]
    ends = origins[:, None, :] + distances[..., None] * np.stack(
        [np.cos(theta), np.sin(theta)], axis=-1
    )
    origins_px = to_px(origins).tolist()
    ends_px = to_px(ends).tolist()
    hits = ray_hits(distances, snapshot.ray_ranges).tolist()
    for k, i in enumerate(active):
        colour = mixed(car_colour(int(i), True), (255, 255, 255), 0.45)
        for end, hit in zip(ends_px[k], hits[k], strict=True):
            pygame.draw.line(canvas, colour, origins_px[k], end, 1)
            if hit:
                pygame.draw.circle(canvas, colour, end, 2)


def draw_cars(canvas: pygame.Surface, snapshot: RaceSnapshot, to_px: ToPixels) -> None:
    """Rotated rectangles of car length × width, with a light band at the front."""
    half_length, half_width = snapshot.car_length / 2, snapshot.car_width / 2
    # Body corners and the front band in the car frame (x forward, y left) [m].
    body = np.array(
        [
            [half_length, half_width],
            [-half_length, half_width],
            [-half_length, -half_width],
            [half_length, -half_width],
        ]
    )
    front = body.copy()
    front[1:3, 0] = half_length * 0.4
    shapes = np.stack([body, front])  # (2, 4, 2)
    cos, sin = np.cos(snapshot.heading), np.sin(snapshot.heading)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N,2,2)
    corners = np.einsum("nij,skj->nski", rotation, shapes)  # (N, 2, 4, 2)
    corners = corners + snapshot.position[:, None, None, :]
    corners_px = to_px(corners).tolist()
    # Inactive cars first, so racing cars are drawn on top of them.
    order = sorted(range(snapshot.n_cars), key=lambda i: bool(snapshot.active[i]))
    for i in order:
        colour = car_colour(i, bool(snapshot.active[i]))
        body_px, front_px = corners_px[i]
        pygame.draw.polygon(canvas, colour, body_px)
        pygame.draw.polygon(canvas, mixed(colour, (255, 255, 255), 0.6), front_px)
        pygame.draw.polygon(canvas, mixed(colour, (0, 0, 0), 0.6), body_px, 1)


def draw_labels(
    canvas: pygame.Surface,
    snapshot: RaceSnapshot,
    to_px: ToPixels,
    scale: float,
    font: pygame.font.Font,
) -> None:
    """Each car's label (when the snapshot names the cars) just above it.

    Args:
        scale: the frame's scale [px/m].
        font: the label font.
    """
    if not snapshot.labels:
        return
    above = np.array([0.0, -(snapshot.car_length * scale / 2 + font.get_linesize())])
    centres = to_px(snapshot.position) + above
    for i in range(snapshot.n_cars):
        colour = car_colour(i, bool(snapshot.active[i]))
        text = font.render(snapshot.label(i), True, mixed(colour, (255, 255, 255), 0.5))
        box = pygame.Surface((text.get_width() + 4, text.get_height()), pygame.SRCALPHA)
        box.fill((0, 0, 0, HUD_BOX_ALPHA))
        box.blit(text, (2, 0))
        x, y = centres[i]
        canvas.blit(box, (round(x - box.get_width() / 2), round(y)))
