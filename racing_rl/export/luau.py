"""A ``PolicySpec`` as a Luau ModuleScript: the driver runs inside a Roblox game.

The module is self-contained: ``--!strict`` and ``--!native``; every number (the
normalisation statistics as float64, as SB3 keeps them; weights, biases and action bounds
as float32) is in one little-endian binary string,
written with ``\\xNN`` escapes for the bytes that are not printable ASCII, and decoded
once at ``require`` with the ``buffer`` library into plain tables (numeric literals of
this size fail Luau's type checker). The hot loop is a dense layer over those tables,
unrolled by four. One instance drives many cars: each car id has its own frame stack
(and LSTM state). The API is in the file's header::

    local Policy = require(script.Parent.Driver)
    local policy = Policy.new()
    policy:reset(carId)                               -- on spawn and respawn
    local throttle, steering, nitro = policy:act(carId, observation)

``act`` refuses (raises an error for) an observation of another length or with a value
that is not a finite number, before it touches the car's state; ``act`` and ``reset``
refuse a call with a dot (``policy.act(...)``) and a nil or NaN car id, naming them.

Luau numbers are doubles, so the module computes in float64 what SB3 computes in
float32: actions agree to ~1e-7 (``tests/export/test_runtime.py``). The observation is
rounded to float32 first, as every observation training saw was (a game's float64 rays
differ from those by up to 3e-8, which a near-constant input's std of 2e-4 made 1.5e-4).

Why one module of ~400 lines: most of it is the Luau source it writes (header, decoder,
layers, the per-car API), kept beside the Python that fills it in so the two change
together.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from racing_rl.export.spec import Activation, Dense, LSTMLayer, PolicySpec
from racing_rl.sim.sensors import ROBLOX_CAR_RAYS

#: Characters per line of the weight string (``\\z`` continues it on the next line).
LINE_WIDTH = 96
#: The first words of every module's header: what tells an earlier export
#: (``racing_rl.export.check_replaceable``) from a file racing-rl did not write.
HEADER_MARK = "A racing-rl driver, exported for Roblox"


def luau_source(spec: PolicySpec) -> str:
    """The ModuleScript's source for ``spec``.

    Args:
        spec: the driver (``racing_rl.export.spec.policy_spec``).

    Returns:
        Luau source text, ending in a newline; ASCII but for a run's or checkpoint's name
        in the header comment.
    """
    blob = _Blob()
    decode: list[str] = []
    if spec.normalization is not None:
        # float64, as SB3 keeps them: a near-constant input (a ray nearly always at full
        # length: std 2e-4) normalised with float32 statistics was off by up to 1e-4.
        decode.append(f"local MEAN = take({spec.input_size}, true)")
        decode.append(f"local STD = take({spec.input_size}, true)")
        blob.add(spec.normalization.mean, spec.normalization.std, dtype="<f8")
    decode.append(f"local LOW = take({spec.action_size})")
    decode.append(f"local HIGH = take({spec.action_size})")
    blob.add(spec.action_low, spec.action_high)
    for k, layer in enumerate(spec.lstm):
        # One dense layer on [x; h]: rows of [W_ih | W_hh], bias b_ih + b_hh.
        h, n_in = layer.hidden_size, int(layer.weight_ih.shape[1])
        decode.append(f"local LSTM{k}_W = takeRows({4 * h}, {n_in + h})")
        decode.append(f"local LSTM{k}_B = take({4 * h})")
        decode.append(f"for i, v in take({4 * h}) do\n\tLSTM{k}_B[i] += v\nend")
        blob.add(np.hstack([layer.weight_ih, layer.weight_hh]), layer.bias_ih, layer.bias_hh)
    # The dense layers' weights in tables, W[k] and B[k], not a local each: a chunk holds
    # at most 200 locals (and a function 200 upvalues), which deep networks exceeded.
    decode.append("local W: { { { number } } }, B: { { number } } = {}, {}")
    for k, layer in enumerate(_dense_layers(spec), start=1):
        decode.append(f"W[{k}] = takeRows({layer.n_out}, {layer.n_in})")
        decode.append(f"B[{k}] = take({layer.n_out})")
        blob.add(layer.weight, layer.bias)
    header = _header(spec)
    return _TEMPLATE.format(
        header=header,
        level=_comment_level(header),
        info=_info_table(spec),
        weights=blob.literal(),
        n_floats=blob.n_floats,
        decode="\n".join(decode),
        obs_size=spec.observation_size,
        input_size=spec.input_size,
        n_lstm=len(spec.lstm),
        hidden=spec.lstm_hidden_size,
        lstm_helpers=_LSTM_HELPERS if spec.lstm else "",
        scratch=_scratch(spec),
        forward=_indent(_forward(spec), 1),
        outputs=_outputs(spec),
    )


class _Blob:
    """Arrays appended as little-endian bytes (float32, or float64 with ``dtype="<f8"``),
    in the order ``take`` reads them."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.n_floats = 0

    def add(self, *arrays: np.ndarray, dtype: str = "<f4") -> None:
        for array in arrays:
            data = np.ascontiguousarray(array, dtype=dtype)
            self._parts.append(data.tobytes())
            self.n_floats += data.size

    def literal(self) -> str:
        """A Luau string literal of the bytes, broken into lines with ``\\z``."""
        lines, line = [], []
        width = 0
        for token in _escaped(b"".join(self._parts)):
            if width + len(token) > LINE_WIDTH:
                lines.append("".join(line))
                line, width = [], 0
            line.append(token)
            width += len(token)
        lines.append("".join(line))
        return '"' + "\\z\n".join(lines) + '"'


def _escaped(data: bytes, space: bool = False) -> Iterator[str]:
    """Each byte as Luau string-literal text: printable ASCII as it is, the rest (and
    ``"``, ``\\``, and spaces unless ``space``, which ``\\z`` would skip at a line's
    start) as ``\\xNN``."""
    lowest = 0x20 if space else 0x21
    for byte in data:
        char = chr(byte)
        if lowest <= byte < 0x7F and char not in '"\\':
            yield char
        else:
            yield f"\\x{byte:02x}"


def _header(spec: PolicySpec) -> str:
    info = spec.info
    n_rays = info.get("ray_count")
    rays = "ray values" if info.get("ray_layout") == "game" else "rays"  # 13: maybe 5 pairs
    layout = "\n".join(f"    {row}" for row in observation_layout(spec))
    network = " -> ".join(_describe(layer) for layer in (*spec.lstm, *spec.layers))
    norm = (
        f"clip((x - mean) / std, -{spec.normalization.clip:g}, {spec.normalization.clip:g})"
        if spec.normalization is not None
        else "none"
    )
    post = (
        "clipped to the action bounds"
        if spec.postprocess == "clip"
        else "rescaled from [-1, 1] to the action bounds"
    )
    return f"""\
{HEADER_MARK}: {spec.algorithm}, {info.get("timesteps", 0):,} timesteps.

  checkpoint   {info.get("checkpoint", "?")}
  weights      sha256 {spec.weights_sha256}
  exported by  racing-rl {info.get("racing_rl_version", "?")}

API (one instance drives any number of cars; carId is any value, e.g. the car's Model):

  local Policy = require(path.to.this.module)
  local policy = Policy.new()
  policy:reset(carId)     -- when the car spawns, respawns or leaves: clears its frames{
        " and LSTM state" if spec.lstm else ""
    }
  local throttle, steering, nitro = policy:act(carId, observation)

act raises an error, and keeps the car's state, for an observation of another length or
with a value that is not a finite number in float32's range (NaN, an infinity, 1e39); act
and reset raise one when called with a dot (policy.act) or with a carId that is nil or NaN.
The observation is read as float32, as training read it.

observation: the car's newest frame, {spec.observation_size} numbers ({n_rays} {rays}):
{layout}
The module stacks the last {spec.frame_stack} frame(s) per car (zeros before the first, newest
last), normalises them ({norm}), runs the network
  {network}
and returns the action {post}:
throttle (negative brakes, then reverses), steering (negative left), nitro (on while
> 0.5), each in [-1, 1]. Policy.info holds the same facts as a table."""


def _comment_level(text: str) -> str:
    """The ``=`` signs of a long comment ``--[=[ ... ]=]`` that ``text`` cannot close
    (``""``, a plain ``--[[ ... ]]``, unless ``text`` holds ``]]``: a run named so)."""
    level = ""
    while f"]{level}]" in text:
        level += "="
    return level


def _direction(angle_deg: float) -> str:
    """``ahead``, ``behind`` or ``28 deg left`` for a ray angle (counter-clockwise: left)."""
    if angle_deg == 0:
        return "ahead"
    if abs(angle_deg) == 180:
        return "behind"
    return f"{abs(angle_deg):.0f} deg {'left' if angle_deg > 0 else 'right'}"


#: The rays' order, by ``info["ray_layout"]`` (``racing_rl.sim.sensors.LAYOUTS``, or
#: ``game`` for a run trained in the game).
RAY_ORDER = {
    "fan": "ray distance / sensor range, left to right (0..1)",
    "roblox_car": (
        "ray distance / that ray's length (0..1): "
        + ", ".join(_direction(angle) for angle, _ in ROBLOX_CAR_RAYS)
        + f"; the first {len(ROBLOX_CAR_RAYS)} ignore cars, the last {len(ROBLOX_CAR_RAYS)} "
        "repeat them and see cars (the game's Car)"
    ),
    "game": (
        "the game car's ray values, in the order it sends them: a distance / that ray's "
        "length (0..1) per ray"
    ),
}
#: 13 numbers from the game: 10 rays, or what its 5-ray cars (Golf cart, Quad,
#: ROBLOX_GAME.md) send instead.
GAME_RAY_PAIRS = (
    RAY_ORDER["game"] + ", or (a Golf cart or Quad) [distance, surface-normal dot (-1..1)] pairs"
)


def observation_layout(spec: PolicySpec) -> list[str]:
    """One line per observation index (1-based, as Luau counts), e.g. ``1-10  ray distance``."""
    n_rays = spec.n_rays
    layout = spec.info.get("ray_layout", "fan")
    order = GAME_RAY_PAIRS if layout == "game" and n_rays == 10 else RAY_ORDER[layout]
    rows = [f"1-{n_rays}  {order}"]
    rest = ["nitro fuel (0..1)", "signed speed / max speed (-1..1)", "is_reverse (0 or 1)"]
    rows += [f"{n_rays + 1 + i}  {text}" for i, text in enumerate(rest)]
    return rows[: 1 + spec.observation_size - n_rays]


def _describe(layer: Dense | Activation | LSTMLayer) -> str:
    if isinstance(layer, Dense):
        return f"Linear({layer.n_in}, {layer.n_out})"
    if isinstance(layer, Activation):
        return layer.name
    return f"LSTM({layer.weight_ih.shape[1]}, {layer.hidden_size})"


def _info_table(spec: PolicySpec) -> str:
    info = spec.info
    fields = {
        "algorithm": spec.algorithm,
        "checkpoint": info.get("checkpoint", ""),
        "timesteps": int(info.get("timesteps", 0)),
        "racingRlVersion": info.get("racing_rl_version", ""),
        "weightsSha256": spec.weights_sha256,
        "gameModelId": info.get("game_model_id", ""),
        "observationSize": spec.observation_size,
        "rayCount": spec.n_rays,
        "frameStack": spec.frame_stack,
        "inputSize": spec.input_size,
        "actionSize": spec.action_size,
        "lstmHiddenSize": spec.lstm_hidden_size,
    }
    lines = [f"\t{key} = {_luau_value(value)}," for key, value in fields.items()]
    layout = ", ".join(_luau_value(row) for row in observation_layout(spec))
    lines.append(f"\tobservationLayout = table.freeze({{ {layout} }}),")
    return "\n".join(lines)


def _luau_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + "".join(_escaped(value.encode(), space=True)) + '"'
    return repr(value)


def _scratch(spec: PolicySpec) -> str:
    """Module-level scratch tables, one per layer output (``act`` is not re-entrant)."""
    lines = [f"local X = table.create({spec.input_size}, 0)"]
    if spec.lstm:
        lines.append(f"local GATES = table.create({4 * spec.lstm_hidden_size}, 0)")
        for k, layer in enumerate(spec.lstm):
            n = int(layer.weight_ih.shape[1]) + layer.hidden_size
            lines.append(f"local XH{k} = table.create({n}, 0)")
    lines.append("local Y: { { number } } = {}")
    dense = enumerate(_dense_layers(spec), start=1)
    lines += [f"Y[{k}] = table.create({layer.n_out}, 0)" for k, layer in dense]
    return "\n".join(lines)


def _dense_layers(spec: PolicySpec) -> list[Dense]:
    """``spec``'s dense layers after the LSTM, in order: W[k], B[k] and Y[k] in Luau."""
    return [layer for layer in spec.layers if isinstance(layer, Dense)]


def _forward(spec: PolicySpec) -> str:
    """The body of ``act`` after the frame stack: normalisation, LSTM, layers."""
    lines = []
    if spec.normalization is not None:
        clip = spec.normalization.clip
        value = "(frames[i] - MEAN[i]) / STD[i]"
        if math.isfinite(clip):  # clip_obs=inf clips nothing (and Luau has no inf literal)
            value = f"math.clamp({value}, -{clip!r}, {clip!r})"
        lines += [f"for i = 1, {spec.input_size} do", f"\tX[i] = {value}", "end"]
    else:
        lines += [f"for i = 1, {spec.input_size} do", "\tX[i] = frames[i]", "end"]
    current, size = "X", spec.input_size
    for k, layer in enumerate(spec.lstm):
        h = layer.hidden_size
        lines += [
            f"table.move({current}, 1, {size}, 1, XH{k})",
            f"table.move(car.h[{k + 1}], 1, {h}, {size + 1}, XH{k})",
            f"dense(LSTM{k}_W, LSTM{k}_B, XH{k}, {size + h}, GATES)",
            f"lstmCell(GATES, car.h[{k + 1}], car.c[{k + 1}], {h})",
        ]
        current, size = f"car.h[{k + 1}]", h
    k = 0
    for layer in spec.layers:
        if isinstance(layer, Dense):
            k += 1
            lines.append(f"dense(W[{k}], B[{k}], {current}, {size}, Y[{k}])")
            current, size = f"Y[{k}]", layer.n_out
        else:
            lines += _activation(layer, current, size)
    lines.append(f"local out = {current}")
    return "\n".join(lines)


def _activation(layer: Activation, x: str, n: int) -> list[str]:
    expression = {
        "tanh": "math.tanh(v)",
        "relu": "if v > 0 then v else 0",
        "elu": "if v > 0 then v else {0!r} * (math.exp(v) - 1)",
        "leaky_relu": "if v >= 0 then v else v * {0!r}",
        "hardtanh": "math.clamp(v, {0!r}, {1!r})",
    }[layer.name].format(*layer.params)
    # In a block of its own: x, a local (one index, not one per element), ends with it.
    loop = [f"for i = 1, {n} do", "\tlocal v = x[i]", f"\tx[i] = {expression}", "end"]
    return ["do", f"\tlocal x = {x}", *("\t" + line for line in loop), "end"]


def _outputs(spec: PolicySpec) -> str:
    if spec.postprocess == "clip":
        values = [f"math.clamp(out[{i}], LOW[{i}], HIGH[{i}])" for i in (1, 2, 3)]
    else:
        values = [f"LOW[{i}] + 0.5 * (out[{i}] + 1) * (HIGH[{i}] - LOW[{i}])" for i in (1, 2, 3)]
    return ", ".join(values)


def _indent(text: str, levels: int) -> str:
    return "\n".join("\t" * levels + line for line in text.splitlines())


_TEMPLATE = """\
--!strict
--!native
--[{level}[
{header}
]{level}]

local Policy = {{}}
Policy.__index = Policy

Policy.info = table.freeze({{
{info}
}})

-- {n_floats} numbers, little-endian: normalisation statistics (float64, as SB3 keeps
-- them), then action bounds and weights (float32).
local WEIGHTS = {weights}

local blob = buffer.fromstring(WEIGHTS)
local cursor = 0

local function take(n: number, float64: boolean?): {{ number }}
	local values = table.create(n, 0)
	for i = 1, n do
		if float64 then
			values[i] = buffer.readf64(blob, cursor)
			cursor += 8
		else
			values[i] = buffer.readf32(blob, cursor)
			cursor += 4
		end
	end
	return values
end

local function takeRows(nOut: number, nIn: number): {{ {{ number }} }}
	local rows: {{ {{ number }} }} = {{}}
	for o = 1, nOut do
		rows[o] = take(nIn)
	end
	return rows
end

{decode}
assert(cursor == buffer.len(blob), "racing-rl policy: weight string has the wrong length")

local OBS_SIZE = {obs_size}
local FLOAT32 = buffer.create(4)
local FLOAT32_MAX = 3.4028234663852886e38
local INPUT_SIZE = {input_size}
local N_LSTM = {n_lstm}
local HIDDEN = {hidden}

-- y = W x + b, W one table per output row; the inner loop unrolled by four.
local function dense(
	w: {{ {{ number }} }},
	b: {{ number }},
	x: {{ number }},
	nIn: number,
	y: {{ number }}
)
	local tail = nIn - nIn % 4
	for o = 1, #w do
		local r = w[o]
		local s = b[o]
		for i = 1, tail, 4 do
			s += r[i] * x[i] + r[i + 1] * x[i + 1] + r[i + 2] * x[i + 2] + r[i + 3] * x[i + 3]
		end
		for i = tail + 1, nIn do
			s += r[i] * x[i]
		end
		y[o] = s
	end
end

{lstm_helpers}{scratch}

type Car = {{ frames: {{ number }}, h: {{ {{ number }} }}, c: {{ {{ number }} }} }}

local function newCar(): Car
	local h, c = {{}}, {{}}
	for k = 1, N_LSTM do
		h[k] = table.create(HIDDEN, 0)
		c[k] = table.create(HIDDEN, 0)
	end
	return {{ frames = table.create(INPUT_SIZE, 0), h = h, c = c }}
end

type PolicyData = {{ cars: {{ [any]: Car? }} }}
export type Policy = typeof(setmetatable({{}} :: PolicyData, Policy))

-- A driver for any number of cars.
function Policy.new(): Policy
	-- Strong keys: in Roblox an Instance's Lua value is collected when no script holds
	-- it, the Instance living on, so a weakly held Model id would lose its car's frames
	-- mid-race. A car's state goes with reset.
	return setmetatable({{ cars = {{}} :: {{ [any]: Car? }} }} :: PolicyData, Policy)
end

-- A call with a dot (policy.act(carId, observation)) passes the car id as self, and a
-- nil or NaN car id cannot key a table: both are refused, naming the mistake.
local function checkCall(self: any, carId: any, method: string, arguments: string)
	if getmetatable(self) ~= Policy then
		error(
			string.format(
				"Policy:%s: called with a dot, so its first argument (a %s) is taken for "
					.. "the policy: call it with a colon, policy:%s(%s)",
				method,
				typeof(self),
				method,
				arguments
			),
			3
		)
	end
	if carId == nil or carId ~= carId then
		error(
			string.format(
				"Policy:%s: carId is %s: pass the car's id, any value but nil and NaN "
					.. "(a string id, the car's Model)",
				method,
				tostring(carId)
			),
			3
		)
	end
end

-- Forget a car's frames and memory: call it when the car spawns or respawns, and when
-- it leaves the game (a car id that is an object is held until then).
function Policy.reset(self: Policy, carId: any)
	checkCall(self, carId, "reset", "carId")
	self.cars[carId] = nil
end

-- The car's action for its newest observation frame (OBS_SIZE numbers). A frame of
-- another length, or with a value that is not a finite number in float32's range (NaN,
-- an infinity, 1e39), raises an error and leaves the car's frames and LSTM state as they
-- were.
function Policy.act(self: Policy, carId: any, observation: {{ number }}): (number, number, number)
	checkCall(self, carId, "act", "carId, observation")
	if type(observation) ~= "table" then
		error(
			string.format(
				"Policy:act: the observation is a %s, not a table of %d numbers "
					.. "(rays, nitro, speed, is_reverse)",
				typeof(observation),
				OBS_SIZE
			),
			2
		)
	end
	if #observation ~= OBS_SIZE then
		error(
			string.format(
				"Policy:act: the observation has %d numbers, this policy reads %d "
					.. "(rays, nitro, speed, is_reverse): export a policy trained for these cars",
				#observation,
				OBS_SIZE
			),
			2
		)
	end
	for i = 1, OBS_SIZE do
		local v = observation[i]
		if type(v) ~= "number" or v ~= v or math.abs(v) > FLOAT32_MAX then
			error(
				string.format(
					"Policy:act: observation[%d] is %s, not a finite number in float32's "
						.. "range: skip this frame (the car's frames and state are kept) or "
						.. "respawn the car",
					i,
					if type(v) == "number"
						then tostring(v)
						else "a " .. typeof(v) .. " (" .. tostring(v) .. ")"
				),
				2
			)
		end
	end
	local car: Car = self.cars[carId] or newCar()
	self.cars[carId] = car
	local frames = car.frames
	table.move(frames, OBS_SIZE + 1, INPUT_SIZE, 1)
	-- Rounded to float32, as every observation training saw was (the simulator's and the
	-- bridge's, which reads the game's JSON into float32).
	for i = 1, OBS_SIZE do
		buffer.writef32(FLOAT32, 0, observation[i])
		frames[INPUT_SIZE - OBS_SIZE + i] = buffer.readf32(FLOAT32, 0)
	end
{forward}
	return {outputs}
end

return Policy
"""

_LSTM_HELPERS = """\
local function sigmoid(v: number): number
	return 1 / (1 + math.exp(-v))
end

-- PyTorch's LSTM cell: gates in the order input, forget, cell, output.
local function lstmCell(gates: { number }, h: { number }, c: { number }, n: number)
	for j = 1, n do
		local i = sigmoid(gates[j])
		local f = sigmoid(gates[n + j])
		local g = math.tanh(gates[2 * n + j])
		local o = sigmoid(gates[3 * n + j])
		local cj = f * c[j] + i * g
		c[j] = cj
		h[j] = o * math.tanh(cj)
	end
end

"""
