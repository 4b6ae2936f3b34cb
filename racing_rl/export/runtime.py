"""Exported files run outside SB3: the Luau module in a Luau VM, the ONNX in onnxruntime.

``LuauPolicy`` loads a ``.luau`` ModuleScript into a real Luau VM (the ``pluau`` package)
and calls its ``Policy.new``/``reset``/``act``, so what is measured is the module a game
runs. ``OnnxPolicy`` runs a ``.onnx`` model in onnxruntime, stacking frames (with SB3's
frame stack, as training does: ``racing_rl.drivers.DriverFrameStack``) and keeping the
LSTM state as its inputs ask. Both drive cars 0 … B-1 from raw observation frames, shape
(B, obs_size), and are what ``racing-rl eval driver=luau|onnx`` and
``scripts/bench_export.py`` use, through ``ExportedDriver``.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
import types
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from racing_rl.drivers import DriverFrameStack
from racing_rl.errors import ExportError
from racing_rl.sim.world import World

FloatArray = NDArray[np.float64]

#: Batch glue run in the VM: cars 0 … count-1 act on float32 frames packed in a buffer;
#: the actions come back as float64, three per car.
_BATCH_ACT = """\
local policy, count, size, data = ...
local out = buffer.create(count * 24)
local observation = table.create(size, 0)
for car = 0, count - 1 do
	for i = 1, size do
		observation[i] = buffer.readf32(data, (car * size + i - 1) * 4)
	end
	local throttle, steering, nitro = policy:act(car, observation)
	buffer.writef64(out, car * 24, throttle)
	buffer.writef64(out, car * 24 + 8, steering)
	buffer.writef64(out, car * 24 + 16, nitro)
end
return buffer.tostring(out)
"""


def pluau() -> types.ModuleType:
    """The ``pluau`` Luau VM bindings' native module.

    pluau 0.1's ``__init__`` imports a module written with Python 3.12's ``type`` alias
    statement, a SyntaxError on 3.10 and 3.11. Its native module ``pluau._pluau`` works on
    every version, so it is imported under a bare ``pluau`` package that skips that
    ``__init__`` (where the real package imports, it is used as it is).

    Raises:
        ExportError: if pluau is not installed.
    """
    try:
        return importlib.import_module("pluau._pluau")
    except SyntaxError:
        pass
    except ImportError as err:
        raise ExportError(
            "Running a Luau module needs the pluau package: pip install 'racing-rl[export]'."
        ) from err
    spec = importlib.util.find_spec("pluau")
    assert spec is not None and spec.submodule_search_locations is not None
    package = types.ModuleType("pluau")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["pluau"] = package
    return importlib.import_module("pluau._pluau")


class ExportedPolicy(Protocol):
    """An exported driver for cars 0 … B-1, each with its own frames (and LSTM state)."""

    def reset(self, car: int) -> None:
        """Start car ``car``'s new episode."""

    def act(self, observations: NDArray[np.float32]) -> FloatArray:
        """Actions of cars 0 … B-1 for their newest raw frames, shape (B, obs_size);
        returns shape (B, 3)."""
        ...


class LuauPolicy:
    """A ``.luau`` module exported by racing-rl, running in a Luau VM.

    Args:
        source: the module's source text.
        name: the chunk name in Luau error messages.

    Raises:
        ExportError: if the source does not compile or does not return a racing-rl Policy.
    """

    def __init__(self, source: str, name: str = "policy") -> None:
        self._vm = _LuauVM(pluau().Lua())
        weakref.finalize(self, _close_quietly, self._vm)
        try:
            module = self._vm.lua.load_chunk(source, name=f"={name}")()[0]
            self._vm.policy = module.get("new")()[0]
        except Exception as err:
            failure = f"{name} is not a loadable racing-rl Luau policy: {err}"
        else:
            failure = None
        if failure is not None:  # dropped here, quietly: the error's frames would hold it
            _close_quietly(self._vm)
            raise ExportError(failure)
        self._vm.reset = self._vm.policy.get("reset")
        self._vm.batch = self._vm.lua.load_chunk(_BATCH_ACT, name="=batch_act")
        self.info: dict[str, Any] = _python(module.get("info"))
        del module

    @classmethod
    def from_file(cls, path: Path) -> LuauPolicy:
        """Load a ``.luau`` file."""
        return cls(Path(path).read_text(encoding="utf-8"), name=Path(path).name)

    def reset(self, car: int) -> None:
        self._vm.reset(self._vm.policy, car)

    def act(self, observations: NDArray[np.float32]) -> FloatArray:
        """Actions of cars 0 … B-1, shape (B, 3), float64, for frames of shape (B, obs_size).

        Raises:
            ExportError: if the module raises (it names an observation of the wrong size
                or a value that is not a finite number).
        """
        observations = np.ascontiguousarray(observations, dtype="<f4")
        count, size = observations.shape
        data = self._vm.lua.create_buffer(observations.tobytes())
        try:
            packed = self._vm.batch(self._vm.policy, count, size, data)[0]
        except RuntimeError as err:  # a Luau error, e.g. an observation of the wrong size
            message = str(err).split("\nstack traceback:", 1)[0]  # the Lua stack: in __cause__
            raise ExportError(f"The Luau policy failed: {message}") from err
        return np.frombuffer(packed.as_bytes(), dtype="<f8").reshape(count, 3).copy()


class _LuauVM:
    """A Luau VM and every handle into it, so that they are dropped together."""

    def __init__(self, lua: Any) -> None:
        self.lua = lua
        self.policy: Any = None
        self.reset: Any = None
        self.batch: Any = None


def _close_quietly(vm: _LuauVM) -> None:
    """Drop a VM without pluau's "Lua VM is being closed" on stdout (its native code
    prints it when a VM is dropped), which would mix into a command's results."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        vm.__dict__.clear()
        gc.collect()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _python(value: Any) -> Any:
    """A Luau value as Python: strings as ``str``, tables as dicts (arrays as lists)."""
    vm = pluau()
    if isinstance(value, vm.String):
        return str(value)
    if isinstance(value, vm.Table):
        items = {_python(k): _python(v) for k, v in value}
        if list(items) == list(range(1, len(items) + 1)):
            return list(items.values())
        return items
    return value


class OnnxPolicy:
    """A ``.onnx`` model exported by racing-rl, in onnxruntime (CPU, one thread).

    Args:
        path: the model file; read once.

    Raises:
        ExportError: if onnxruntime is missing or the file is not a racing-rl model.
    """

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError as err:
            raise ExportError(
                "Running an ONNX model needs onnxruntime: pip install 'racing-rl[export]'."
            ) from err
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            props = self._session.get_modelmeta().custom_metadata_map
            frame_stack = int(props["frame_stack"])
            self._lstm_shape = (int(props["lstm_layers"]), int(props["lstm_hidden_size"]))
        except Exception as err:
            raise ExportError(f"{path} is not a loadable racing-rl ONNX policy: {err}") from err
        self._frames = DriverFrameStack(frame_stack)
        self._state: list[NDArray[np.float32]] | None = None
        self._cars: int | None = None  # cars of the first act: the frames' and state's rows
        #: Numbers per raw observation frame the model reads (its input over the frames).
        self.observation_size = int(self._session.get_inputs()[0].shape[-1]) // frame_stack

    def reset(self, car: int) -> None:
        """Start car ``car``'s next episode: its frames and LSTM state are zeros.

        Raises:
            ExportError: ``car`` is not one of the cars of the first ``act``.
        """
        if self._cars is not None and not 0 <= car < self._cars:
            raise ExportError(
                f"car {car} is not one of the {self._cars} cars this ONNX policy drives "
                "(the number of its first act); a policy for more cars is a new OnnxPolicy."
            )
        self._frames.reset([car])
        if self._state is not None:
            for state in self._state:
                state[:, car] = 0.0

    def act(self, observations: NDArray[np.float32]) -> FloatArray:
        """Actions of cars 0 … B-1, shape (B, 3), float64, for frames of shape (B, obs_size).

        Raises:
            ExportError: if the frames are not of ``observation_size`` numbers (onnxruntime
                would fail with its own INVALID_ARGUMENT), or B is not the number of cars
                of the first ``act`` (the frames and LSTM state it keeps per car).
        """
        if np.ndim(observations) != 2 or np.shape(observations)[1] != self.observation_size:
            raise ExportError(
                f"The ONNX policy reads observations of {self.observation_size} numbers per "
                f"car, shape (B, {self.observation_size}); got shape {np.shape(observations)}."
            )
        if self._cars is None:
            self._cars = len(observations)
        elif len(observations) != self._cars:
            raise ExportError(
                f"This ONNX policy drives {self._cars} cars (the number of its first act), "
                f"got {len(observations)}: a policy for another number of cars is a new "
                "OnnxPolicy."
            )
        feed = {"observation": self._frames.push(np.asarray(observations, np.float32))}
        if self._lstm_shape[0] == 0:
            (action,) = self._session.run(["action"], feed)
            return np.asarray(action, dtype=np.float64)
        if self._state is None:
            shape = (self._lstm_shape[0], len(observations), self._lstm_shape[1])
            self._state = [np.zeros(shape, np.float32), np.zeros(shape, np.float32)]
        feed["state_h"], feed["state_c"] = self._state
        action, state_h, state_c = self._session.run(["action", "state_h_out", "state_c_out"], feed)
        self._state = [state_h, state_c]
        return np.asarray(action, dtype=np.float64)


class ExportedDriver:
    """An exported file as a race driver (``racing_rl.drivers.Driver``): car ``b`` of
    the policy drives the car on track ``b``.

    Args:
        policy: a ``LuauPolicy`` or ``OnnxPolicy``.
        label: the driver's name.
        run: the run directory it was exported from.
        checkpoint: what it was exported from, for reports.
        observation_size: numbers per raw observation frame the policy reads (as
            ``PolicyDriver.observation_size``: a game's bridge is held to it).
    """

    def __init__(
        self,
        policy: ExportedPolicy,
        label: str,
        run: str,
        checkpoint: str,
        observation_size: int,
    ) -> None:
        self.policy = policy
        self.label = label
        self.run = run
        self.checkpoint = checkpoint
        self.observation_size = observation_size

    def reset(self, n_tracks: int) -> None:
        for car in range(n_tracks):
            self.policy.reset(car)

    def act(
        self, observations: NDArray[np.float32], worlds: Sequence[World], car: int
    ) -> FloatArray:
        return self.policy.act(observations)
