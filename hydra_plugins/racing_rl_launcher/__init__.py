"""racing-rl's Hydra launcher (Hydra loads plugins from the hydra_plugins namespace):
``parallel_launcher.ParallelLauncher``, which ``conf/hydra/launcher/parallel.yaml``
selects. It imports hydra-joblib-launcher only when a sweep uses it, so a base install
starts quietly."""
