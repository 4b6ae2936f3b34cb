"""racing-rl's Hydra plugins (Hydra loads plugins from the hydra_plugins namespace).

Hydra imports every module under ``hydra_plugins`` at each start of every app and warns
about any that fails to import. The resumable Optuna sweeper needs hydra-optuna-sweeper
(the ``sweeps`` extra); without it, this package shows Hydra no module, so that a base
install starts quietly (``racing-rl`` itself says which extra a sweeper needs).
"""

import importlib.util

if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
    __path__: list[str] = []
