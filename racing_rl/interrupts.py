"""Signals that reach a command's own process: SIGINT (Ctrl-C) and SIGTERM while a run
trains, while the command starts, and while a sweep (``-m``) runs its jobs.

While a run trains, ``TrainingSignals`` handles them: the first saves an ``interrupted``
checkpoint, a second waits for it. Outside training:

- While the command's task function runs, SIGTERM raises ``KeyboardInterrupt("SIGTERM")``
  as Ctrl-C raises KeyboardInterrupt, so that every command stops on it as on Ctrl-C
  (saving what it saves, with one line) and exits with 143; Python's default would end
  the process at once, silent, a training run's ``run.json`` still saying ``running``.
- Before the command's task function runs (while Python imports it or Hydra composes its
  config), Ctrl-C (SIGTERM) exits at once with status 130 (143) and one line: a
  KeyboardInterrupt raised inside Hydra's config handling leaves it half-updated and ends
  in an unrelated error.
- Once a sweep has started (``racing_rl.config.SweepSignals``, a Hydra callback), SIGINT
  and SIGTERM that come between its jobs, or while its jobs run in other processes
  (``hydra/launcher=parallel``: joblib's loky workers), stop the sweep. The signal is
  passed on to the worker processes, where each job that trains saves an interrupted
  checkpoint, and this process exits at once, with 128 + the signal's number, so that
  no job starts after it. It exits rather than waits: joblib, in this process, answers
  the first job that ends in an error by killing the other workers (SIGKILL), which would
  cut their saves short. A worker whose sweep process has gone ends with its job
  (``job_ended``), rather than idle in the worker pool for minutes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, NoReturn

from racing_rl.errors import causes, print_error

log = logging.getLogger(__name__)

#: The command this process runs (``racing-rl <command>``), its pid (a forked child
#: inherits the value, not the pid), the code of its Hydra task function, and the sweep
#: directory once a sweep has started.
_command: dict[str, Any] = {}
#: In a sweep's worker process, during a job: the signal handlers it replaced, and
#: whether a signal came (``job_started``).
_job: dict[str, Any] = {}


def in_command_process() -> bool:
    """Whether this process is the one that runs ``racing-rl <command>`` (False in a
    sweep's worker process: joblib's, submitit's, Ray's)."""
    return _command.get("pid") == os.getpid()


@contextmanager
def handled(command: str) -> Iterator[Callable[[Any], None]]:
    """Handle SIGINT and SIGTERM for the command ``command``, as the module's docstring
    says; the previous handlers come back at the end. Yields ``started(app)``, to be called
    with the command's Hydra app once it is imported (or, for ``report``, which has none,
    its ``main``): a SIGINT while its task function (the function ``hydra.main`` wraps;
    report's ``main``) is on the stack raises KeyboardInterrupt as usual (a SIGTERM,
    ``KeyboardInterrupt("SIGTERM")``), which the commands handle (train saves a
    checkpoint). Outside the main thread (where Python allows no handlers) it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda app: None
        return
    _command.clear()
    _command.update(name=command, pid=os.getpid(), task_code=[])

    def started(app: Any) -> None:
        task = getattr(app, "__wrapped__", app)  # hydra.main keeps the task function here
        _command["task_code"].append(task.__code__)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _handle)
    try:
        yield started
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _command.clear()


def sweep_started(sweep_dir: Path, launcher: str, then: str = "") -> None:
    """Note that this command's sweep has started in ``sweep_dir``, its jobs run by the
    Hydra launcher ``launcher`` (its ``_target_``): from now on SIGINT and SIGTERM outside
    a job's training stop the sweep (``_handle``), whose message ends with ``then`` (how
    to continue the sweep)."""
    if not in_command_process():
        return
    _command["sweep_dir"] = sweep_dir
    _command["then"] = then
    _command["in_process"] = launcher.endswith(".BasicLauncher")


def _handle(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    task_code: list[CodeType] = _command.get("task_code", [])
    while frame is not None:
        if frame.f_code in task_code:
            raise KeyboardInterrupt(*([] if signum == signal.SIGINT else [name]))
        frame = frame.f_back
    command = f"racing-rl {_command.get('name', '')}"
    sweep_dir = _command.get("sweep_dir")
    if sweep_dir is None:
        print(f"{command}: interrupted while starting ({how(name)}).", file=sys.stderr)
    else:
        workers = multiprocessing.active_children()
        for worker in workers:
            with suppress(ProcessLookupError, TypeError):  # gone, or not started (no pid)
                os.kill(worker.pid, signum)
        if workers:
            print(
                f"{command}: {name}: the sweep stops. Its {len(workers)} worker processes "
                f"were sent {name}, and each running job stops as on {name}, once this "
                "process has exited (a training job saves an interrupted checkpoint and logs "
                "how to continue it); the jobs not started yet do not run. The sweep's "
                f"output is in {sweep_dir}.",
                file=sys.stderr,
            )
        elif _command.get("in_process"):
            print(
                f"{command}: {name} between the sweep's jobs: the sweep stops; the jobs not "
                f"started yet do not run. The sweep's output is in {sweep_dir}.",
                file=sys.stderr,
            )
        else:  # submitit's, Ray's: their jobs are not this process's to signal
            print(
                f"{command}: {name}: this process stops; its launcher's jobs run in processes "
                "it does not manage, where a signal (SIGINT, SIGTERM; Ctrl-C reaches local "
                "ones) saves an interrupted checkpoint: stop them there (scancel, ray stop). "
                f"The sweep's output is in {sweep_dir}.",
                file=sys.stderr,
            )
    if sweep_dir is not None and _command.get("then"):
        print(f"{command}: {_command['then']}", file=sys.stderr)
    sys.stderr.flush()
    os._exit(128 + signum)


def how(name: str) -> str:
    """How a signal of ``name`` (``SIGINT``, ``SIGTERM``) reads in a message."""
    return "Ctrl-C" if name == "SIGINT" else name


def interrupted(interrupt: BaseException, what: str) -> str:
    """How a command stopped by ``interrupt`` says so, with ``what`` it wrote or kept:
    ``interrupted (Ctrl-C) before its races ended: nothing written``."""
    return f"interrupted ({how(interrupt_signal(interrupt).name)}) {what}"


def stop(command: str, interrupt: KeyboardInterrupt, what: str) -> NoReturn:
    """End ``racing-rl <command>``, stopped by ``interrupt`` (Ctrl-C, or SIGTERM as this
    module raises it), with one line on stderr that says what it wrote or kept
    (``interrupted``): ``racing-rl export: interrupted (Ctrl-C) before its file was
    written: nothing written; ...``.

    Raises:
        SystemExit: 128 + the signal's number (130: SIGINT, 143: SIGTERM), in the
            command's own process (so the CLI adds no line of its own); in a sweep's
            worker process, ``interrupt`` again, which stops the sweep.
    """
    print_error(command, interrupted(interrupt, what))
    if not in_command_process():
        raise interrupt
    raise SystemExit(128 + interrupt_signal(interrupt)) from interrupt


def interrupt_signal(interrupt: BaseException) -> signal.Signals:
    """The signal behind a KeyboardInterrupt: SIGTERM (or another) where ``_handle`` or
    training named it as its first argument, in it or in one it was raised from (eval's
    ``RacesInterrupted`` carries the races that ended), else SIGINT."""
    names = (str(cause.args[0]) for cause in causes(interrupt) if cause.args)
    name = next((name for name in names if name in signal.Signals.__members__), "SIGINT")
    return signal.Signals[name]


def job_started() -> None:
    """In a sweep's worker process (joblib's), at the start of a job: SIGINT and SIGTERM
    raise KeyboardInterrupt (as Ctrl-C does; training replaces this with its own
    handlers while it trains), and are noted for ``job_ended``."""
    if (
        in_command_process()
        or multiprocessing.parent_process() is None
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    _job.clear()
    _job["previous"] = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in _job["previous"]:
        signal.signal(sig, _job_signal)


def _job_signal(signum: int, frame: FrameType | None) -> None:
    _job["signalled"] = True
    raise KeyboardInterrupt(signal.Signals(signum).name)


def job_ended(failed: bool) -> None:
    """At the end of a sweep's job in a worker process of the sweep's own process
    (joblib's): if that process has gone (it exits at once on a signal, see the module's
    docstring), end this one too; the job's result has no one to go to. After a job that
    failed (an interrupted one) or saw a signal, wait up to a second for it to go, since
    the signal may have reached both at once; if it stays (the signal came to this job
    alone), the sweep goes on."""
    for sig, handler in _job.pop("previous", {}).items():
        signal.signal(sig, handler)
    parent = multiprocessing.parent_process()
    if parent is None or in_command_process():
        return
    deadline = time.monotonic() + (1.0 if failed or _job.pop("signalled", False) else 0.0)
    while os.getppid() == parent.pid:
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)


def ending(code: object) -> None:
    """If the exit status ``code`` says the command was interrupted (130: SIGINT, 143:
    SIGTERM), ignore further signals: the command has saved what it had, and a second
    Ctrl-C while Python shuts down would otherwise end the process with a traceback or a
    signal instead of that status."""
    if code in (130, 143) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainingSignals:
    """SIGINT and SIGTERM while training (a context manager).

    The first signal raises ``KeyboardInterrupt`` (SIGTERM too), which ends ``learn``
    so that an ``interrupted`` checkpoint is saved. Inside ``held()`` (the saves that
    callbacks make during ``learn``) it is held and raised when the block ends: raised
    inside ``torch.save``, it would surface as a ``RuntimeError`` of the half-written
    zip file. Any later signal, and any signal once ``saving`` is set (the interrupted
    or final save), is logged and otherwise waits for the save: a double Ctrl-C leaves
    a complete checkpoint, not a ``.partial`` one and tracebacks. A signal during the
    final save (``pending``) or the final validation after it skips that validation.
    Outside the main thread (where Python allows no handlers) it does nothing.

    SIGUSR2, where submitit's handler is installed (a SLURM job, preempted or timed out:
    the handler requeues it and exits), stops training as SIGTERM does; once the
    interrupted checkpoint is saved, ``chain`` calls that handler, so that the requeued
    job resumes from the checkpoint. Another program's SIGUSR2 handler is left alone.
    """

    def __init__(self) -> None:
        self.saving = False
        self._holding = False
        self._held: str | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._chained: signal.Signals | None = None

    def __enter__(self) -> TrainingSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
            usr2 = getattr(signal, "SIGUSR2", None)  # none on Windows
            handler = signal.getsignal(usr2) if usr2 is not None else None
            if usr2 is not None and getattr(handler, "__module__", "").startswith("submitit"):
                self._previous[usr2] = signal.signal(usr2, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    @contextmanager
    def held(self) -> Iterator[None]:
        """A block (a save) that a signal does not cut: it is raised when the block ends.

        Raises:
            KeyboardInterrupt: after the block, if a signal came during it.
        """
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._held is not None and not self.saving:
            self.saving = True
            raise KeyboardInterrupt(self._held)

    @property
    def pending(self) -> str | None:
        """The first signal that came while a save was held or ``saving`` (its name)."""
        return self._held

    def chain(self) -> None:
        """Call the handler that was installed for a signal that stopped training (SIGUSR2:
        submitit's requeue, which exits), if there is one."""
        if self._chained is not None:
            log.warning("%s: handing over to its handler (a requeue)", self._chained.name)
            self._previous[self._chained](self._chained, None)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if signum not in (signal.SIGINT, signal.SIGTERM):
            self._chained = self._chained or signal.Signals(signum)
        if self.saving or (self._holding and self._held is not None):
            log.warning("%s: still writing the run's files; it stops in a moment", name)
            self._held = self._held or name
            return
        if self._holding:
            self._held = name
            log.warning("%s: stopping once the checkpoint being written is complete", name)
            return
        self.saving = True
        raise KeyboardInterrupt(name)
