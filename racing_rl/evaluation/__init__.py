"""Measuring drivers: episodes, races and their results, for training and ``racing-rl eval``.

One direction of flow: ``results`` (one episode's figures, the ``eval/`` metrics) is
used by ``episodes`` (a policy in an evaluation VecEnv: training's validation) and
``races`` (drivers on ParallelEnvs: ``racing-rl eval``, races, ``play``, the validation
video); ``tables`` formats them as text; ``command`` is what ``racing-rl eval`` does,
as a plain function (its Hydra app is ``racing_rl.evaluate``).
"""
