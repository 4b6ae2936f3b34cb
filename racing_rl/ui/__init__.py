"""Everything that draws or reads a keyboard: the project's only pygame user.

- ``render``: the top-down ``Renderer`` of a live ``World`` or a ``RaceSnapshot``, with
  its ``colours`` and ``layers`` (track, trails, rays, cars, labels).
- ``window``: ``RaceWindow``, a live race in a window (``racing-rl eval render=human``,
  ``racing-rl play``).
- ``keyboard``: a person's keys as actions (``KeyboardDriver``, ``racing-rl play``).
- ``viewer``: the interactive replay player (``racing-rl replay``).
- ``video``: replays drawn off-screen, as frames or as an MP4/GIF file.

The simulator (``racing_rl.sim``) and the replay file format (``racing_rl.replay``) stay
pure NumPy; nothing outside this package imports pygame.
"""
