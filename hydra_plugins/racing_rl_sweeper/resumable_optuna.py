"""Hydra sweeper glue: an Optuna sweeper whose study survives an interrupted sweep.

``conf/hydra/sweeper/{ppo,sac}_search.yaml`` select it. It is hydra-optuna-sweeper's
``OptunaSweeper`` with these changes that make "run the same command again" resume a
study kept in ``storage``:

* ``n_trials`` is the number of *completed* trials the study should have: a sweep runs
  as many trials as it lacks (all of them the first time, failed ones included), so a
  restarted sweep runs only the ones still missing, failed trials made up for;
* Hydra job numbers continue from the study's trial count, so trial ``k`` (Optuna's
  ``trial.number``) runs in job dir ``k_<overrides>`` and no earlier job dir is reused;
* a seeded sampler is re-seeded with ``seed + trials so far``, so that a resumed
  sweep does not propose the first trials' parameters again (and stays reproducible);
* the sweep dir exists before the study opens (an SQLite storage can live in it), and a
  search that continues no study there (``storage: null``, or a study that storage
  does not hold) is refused if the dir holds an earlier sweep's runs;
* trials an interrupted sweep left ``RUNNING`` are marked ``FAIL`` (their job dirs keep
  the ``interrupted`` checkpoint and the run.json that say so);
* the study records the sweep's command-line overrides (``racing_rl_overrides``; not
  those of ``racing_rl.config.RUNTIME_KEYS``, such as ``progress_bar``) and
  search space (``racing_rl_params``, ``hydra.sweeper.params``), and a sweep with other
  overrides (another algorithm, budget or seed) or another search space is refused
  rather than mixed into it: Optuna finds a study by its name alone.

Only one sweep process may use a study at a time (with several, a running trial of
another process would be marked failed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

from racing_rl.config import sweep_overrides
from racing_rl.errors import print_error

log = logging.getLogger(__name__)
# Importing optuna imports Alembic, which logs a line per Alembic plugin at INFO: through
# Hydra's handler, seven lines of "setup plugin alembic..." before every Optuna sweep.
# Set here because Hydra imports optuna (the sampler's _target_) before the sweeper exists.
logging.getLogger("alembic").setLevel(logging.WARNING)

OVERRIDES_ATTR = "racing_rl_overrides"
"""The study's user attribute with the overrides of the sweep that started it."""

PARAMS_ATTR = "racing_rl_params"
"""The study's user attribute with the search space (``hydra.sweeper.params``) it began
with (studies created before it was recorded have none, and are not checked)."""


def _refuse(why: str) -> NoReturn:
    """Refuse the sweep before its first trial, in one line on stderr as ``racing-rl
    train`` refuses a command line (``racing-rl train: <why>``), not in Hydra's log format.

    Raises:
        SystemExit: 1.
    """
    print_error("train", why)
    raise SystemExit(1)


def _refuse_earlier_runs(sweep_dir: str, why: str) -> None:
    """Refuse a new search in a sweep dir that holds an earlier sweep's runs: its job
    numbers start at 0 again, so a trial would train in an earlier trial's directory and
    return that run's ``best/`` objective. (``racing-rl train`` skips this check for a
    named study, which may continue there: ``racing_rl.train.CheckConfig``.)

    Raises:
        SystemExit: 1, after saying why and what to do (``_refuse``).
    """
    from racing_rl.checkpoints.layout import saved_work

    runs = sorted(job for job in Path(sweep_dir).glob("*/") if saved_work(job))
    if runs:
        _refuse(
            f"hydra.sweep.dir={sweep_dir} holds the runs of an earlier sweep ({len(runs)}, "
            f"e.g. {runs[0].name}), and this sweep does not continue them: {why}, so its "
            "trials would train in their directories and report their best/. Give it another "
            "hydra.sweep.dir, or the storage and study_name of the study those runs belong to."
        )


class ResumableOptunaSweeper(OptunaSweeper):
    """``OptunaSweeper`` that continues a study found in its storage (see the module doc)."""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # Imported here, not at the top: Hydra imports every plugin module at each start
        # of every app, and optuna takes ~3 s to import.
        import optuna
        from optuna.trial import TrialState

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        impl = self.sweeper
        self._wanted = impl.n_trials
        # An SQLite storage in the sweep dir needs the dir before the first trial makes it.
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        if impl.storage is None or impl.study_name is None:
            _refuse_earlier_runs(config.hydra.sweep.dir, "it keeps no study (storage: null)")
            return
        overrides = sweep_overrides(config.hydra.overrides.task)
        params = {str(k): str(v) for k, v in (config.hydra.sweeper.params or {}).items()}
        direction = config.hydra.sweeper.direction
        directions = [
            str(d) for d in (list(direction) if OmegaConf.is_list(direction) else [direction])
        ]
        try:
            study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
        except KeyError:  # a new study: created here, to record what it searches
            _refuse_earlier_runs(
                config.hydra.sweep.dir, f"its storage holds no study {impl.study_name!r}"
            )
            study = optuna.create_study(
                study_name=impl.study_name,
                storage=impl.storage,
                directions=directions,
            )
            study.set_user_attr(OVERRIDES_ATTR, overrides)
            study.set_user_attr(PARAMS_ATTR, params)
            _drop_next_reopen_line(impl.study_name)
            return
        kept = [d.name.lower() for d in study.directions]
        if kept != [d.lower() for d in directions]:  # Optuna: a ValueError's traceback
            _refuse(
                f"Optuna study {impl.study_name!r} ({impl.storage}) was started to "
                f"{' and '.join(kept)} its objective; this sweep asks to "
                f"{' and '.join(d.lower() for d in directions)} it (hydra.sweeper.direction). "
                "Keep the study's direction to continue it, or give this search its own study "
                "with hydra.sweeper.study_name=<name>."
            )
        recorded = study.user_attrs.get(OVERRIDES_ATTR)
        if recorded is not None:
            recorded = sweep_overrides(recorded)  # recorded whole before RUNTIME_KEYS were
        if recorded is not None and recorded != overrides:
            lacks = " ".join(o for o in recorded if o not in overrides) or "nothing"
            adds = " ".join(o for o in overrides if o not in recorded) or "nothing"
            _refuse(
                f"Optuna study {impl.study_name!r} ({impl.storage}) was started by a sweep "
                f"with the overrides {' '.join(recorded) or '(none)'}; this one has "
                f"{' '.join(overrides) or '(none)'} (it lacks {lacks}; it adds {adds}). Their "
                "trials would mix two searches: run the same overrides to continue it, or give "
                "this search its own study with hydra.sweeper.study_name=<name>."
            )
        searched = study.user_attrs.get(PARAMS_ATTR)
        if searched is not None and searched != params:
            changed = sorted(
                k for k in searched.keys() | params.keys() if searched.get(k) != params.get(k)
            )
            then_now = "; ".join(
                f"{k}: {searched.get(k, '(absent)')} then, {params.get(k, '(absent)')} now"
                for k in changed
            )
            _refuse(
                f"Optuna study {impl.study_name!r} ({impl.storage}) was started with another "
                f"search space (hydra.sweeper.params): {then_now}. Their trials would mix two "
                "searches: restore its params to continue it, or give this search its own "
                "study with hydra.sweeper.study_name=<name>."
            )
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.warning("trial %d was interrupted: marking it failed", trial.number)
            study.tell(trial.number, state=TrialState.FAIL)
        completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        impl.job_idx = len(study.trials)
        sampler = config.hydra.sweeper.sampler
        if sampler.get("seed") is not None:
            # A sampler restarted with its seed would propose the first trials again.
            impl.sampler = instantiate(sampler, seed=sampler.seed + len(study.trials))
        impl.n_trials = max(impl.n_trials - completed, 0)
        log.info(
            "resuming study %r: %d trials so far (%d completed), %d to run",
            impl.study_name,
            len(study.trials),
            completed,
            impl.n_trials,
        )

    def sweep(self, arguments: list[str]) -> None:
        """Run the trials. A study with no completed trial at the end (every trial
        failed: ``max_failure_rate`` 1.0 lets the sweep go on) is said in one line, where
        Optuna's ``best_trial`` raised a bare ``ValueError``; a study kept in a storage
        with fewer completed trials than ``n_trials`` (some failed) ends the sweep with
        status 1 too, as a basic sweep with a failed job does, after its results are
        written: the same command makes them up.

        Raises:
            SystemExit: 1 if no trial of the study has completed, or a kept study has
                fewer completed trials than ``n_trials``.
        """
        impl = self.sweeper
        failed = "their errors are the 'Failed experiment' lines above, and each job's run.json"
        try:
            super().sweep(arguments)
        except ValueError as err:  # Optuna's words for a study without a completed trial
            if not any(words in str(err) for words in ("Record does not", "No trials are")):
                raise
            log.error(
                "no trial of Optuna study %r has completed: every one failed (%s)",
                impl.study_name,
                failed,
            )
            raise SystemExit(1) from None
        if impl.storage is None or impl.study_name is None:
            return  # an in-memory study, gone with the sweeper: its log said what failed
        import optuna
        from optuna.trial import TrialState

        study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
        completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if completed < self._wanted:
            log.error(
                "Optuna study %r has %d of its %d trials completed: the others failed (%s). "
                "Run the same command again to make them up.",
                impl.study_name,
                completed,
                self._wanted,
                failed,
            )
            raise SystemExit(1)


def _drop_next_reopen_line(study_name: str) -> None:
    """Drop Optuna's next ``Using an existing study with name '<study_name>'`` line.

    ``OptunaSweeper.sweep`` opens the study with ``create_study(load_if_exists=True)``;
    after ``setup`` created it, that line would follow Optuna's ``A new study created``
    and read as if an old study were continued.
    """
    logger = logging.getLogger("optuna.study.study")
    prefix = f"Using an existing study with name '{study_name}'"

    def drop(record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(prefix):
            logger.removeFilter(drop)
            return False
        return True

    logger.addFilter(drop)
