"""The Roblox backend: a WebSocket bridge between racing-rl and a Roblox game.

``protocol`` (messages, validation), ``server`` (the websockets server thread),
``training_bridge`` (the seed's TrainingBridge API), ``env`` (RobloxParallelEnv) and
``emulator`` (a stand-in game built on the simulator). ``docs/protocol.md`` is the spec.
"""
