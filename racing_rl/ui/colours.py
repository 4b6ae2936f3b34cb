"""The renderer's palette: car, track and HUD colours, and trails coloured by speed.

Colours are (red, green, blue) tuples of 0 … 255.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Colour = tuple[int, int, int]

#: Body colour of car i is ``CAR_COLOURS[i % len(CAR_COLOURS)]``.
CAR_COLOURS: tuple[Colour, ...] = (
    (230, 57, 70),  # red
    (58, 134, 255),  # blue
    (255, 190, 11),  # yellow
    (199, 84, 230),  # violet
    (255, 120, 0),  # orange
    (0, 200, 200),  # cyan
    (255, 105, 180),  # pink
    (160, 230, 60),  # lime
)
GRASS: Colour = (38, 92, 52)
ASPHALT: Colour = (72, 72, 78)
WALL: Colour = (235, 235, 235)
OBSTACLE: Colour = (150, 95, 55)
OBSTACLE_EDGE: Colour = (60, 35, 20)
CHEQUER: tuple[Colour, Colour] = ((250, 250, 250), (20, 20, 20))
HUD_TEXT: Colour = (245, 245, 245)
HUD_INACTIVE: Colour = (150, 150, 150)
#: Alpha of the HUD's dark backing box [0 … 255].
HUD_BOX_ALPHA = 150
#: Trail colours from standing still to ``max_speed``, evenly spaced in speed.
SPEED_RAMP: tuple[Colour, ...] = ((40, 90, 255), (0, 210, 140), (255, 225, 0), (255, 40, 40))


_RAMP = np.array(SPEED_RAMP, dtype=np.float64)
_RAMP_STOPS = np.linspace(0.0, 1.0, len(SPEED_RAMP))


def speed_colours(speeds: FloatArray, max_speed: float) -> NDArray[np.int64]:
    """Trail colours of ``speeds`` [m/s], shape (k,) -> (k, 3) RGB: ``SPEED_RAMP``
    interpolated linearly over 0 … ``max_speed`` (|speed|, clipped)."""
    fraction = np.clip(np.abs(speeds) / max(max_speed, 1e-9), 0.0, 1.0)
    channels = [np.interp(fraction, _RAMP_STOPS, _RAMP[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.int64)


def greyed(colour: Colour) -> Colour:
    """The colour mixed 75 % towards its own luminance grey (for inactive cars)."""
    grey = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return mixed(colour, (grey, grey, grey), 0.75)


def mixed(colour: Colour, other: tuple[float, float, float], weight: float) -> Colour:
    """``colour`` moved ``weight`` (0 … 1) of the way towards ``other``."""
    r, g, b = (round(c + weight * (o - c)) for c, o in zip(colour, other, strict=True))
    return r, g, b


def car_colour(index: int, active: bool) -> Colour:
    """Car ``index``'s body colour (``CAR_COLOURS``), greyed once the car is out."""
    colour = CAR_COLOURS[index % len(CAR_COLOURS)]
    return colour if active else greyed(colour)
