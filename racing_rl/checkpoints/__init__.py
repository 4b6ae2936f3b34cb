"""Checkpoints of a run: atomic saves, safe loading, and finding the one to resume from.

Every checkpoint a racing-rl command loads (``train resume=`` and ``init_from=``,
``eval``, races, ``play``, the export) is loaded by this package, in one direction:
``layout`` (file names, ``Checkpoint``, finding them) ← ``saving`` (atomic saves) and
``loading`` (one checkpoint's files, safely) ← ``runs`` (a run directory: its config,
the checkpoint to resume from, ``init_from``, a driver of a checkpoint).

A checkpoint is a directory under ``<run dir>/checkpoints/`` (``best/`` and the run dir
itself hold the same model files)::

    <kind>_<timesteps>_steps/      kind: the algorithm's name (periodic), ``interrupted``
                                   (Ctrl-C, SIGTERM or an error) or ``final`` (the end)
      model.zip                    the SB3 model (``BaseAlgorithm.save``)
      vecnormalize.npz             VecNormalize statistics, plain (racing_rl.normalize)
      vecnormalize.pkl             the same as SB3's pickle, for SB3's own tools; never read
                                   unless trust_pickles=true and the .npz is missing
      replay_buffer.npz            the replay buffer's arrays (off-policy, newest only)
      checkpoint.json              {"timesteps", "kind", "algorithm", "saved_at",
                                   "episodes": the latest episodes' return, length, time}

**Trust model** (docs/checkpoints.md): loading a run directory runs no code from it.
``model.zip``'s weights are read with ``torch.load(weights_only=True)`` (SB3 does so);
its ``data`` entries that SB3 would unpickle (``:serialized:``: spaces, schedules, the
policy class, buffers) are never unpickled: ``loading.load_model`` hands SB3 a trusted
value for each (``custom_objects``), from the run's config and the environment. Statistics and
replay buffers are NumPy archives read with ``allow_pickle=False``. Pickles of older
runs (``vecnormalize.pkl``, ``replay_buffer.pkl``) are read only with
``trust_pickles=true``, with a warning.

Saves are atomic: the files are written into ``.<name>.partial/`` and the directory is
renamed into place only once every file is complete and flushed, so a process killed
in the middle of a save leaves the previous checkpoints as they were and no
half-written one (leftover ``.partial`` directories are ignored and removed by the next
save). ``best/`` is replaced the same way, as one set (``saving.replace_directory``).
Only the newest checkpoint keeps its replay buffer, which can be hundreds of MB; ``keep``
bounds how many periodic checkpoints stay.
"""
