"""racing-rl's Hydra launchers (Hydra loads plugins from the hydra_plugins namespace):
``parallel_launcher.ParallelLauncher``, which ``conf/hydra/launcher/parallel.yaml``
selects, and ``slurm_launcher.SlurmLauncher``, which ``conf/hydra/launcher/slurm.yaml``
selects. They import hydra-joblib-launcher or hydra-submitit-launcher only when a sweep
uses them, so a base install starts quietly."""
