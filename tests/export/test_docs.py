"""docs/roblox.md's game-side driver loop is valid Luau (the Luau VM compiles it; its
Roblox globals are not there to run it)."""

from __future__ import annotations

import re
from pathlib import Path

from racing_rl.export.runtime import pluau

DOC = Path(__file__).parents[2] / "docs" / "roblox.md"


def test_the_npc_driver_script_compiles():
    section = DOC.read_text().split("## Drive NPC cars with an exported policy", 1)[1]
    # The line the game needs added, and the NPC script.
    line, script = re.findall(r"```lua\n(.*?)```", section, flags=re.DOTALL)
    assert 'SetAttribute("TrackReady", true)' in line and "TrackReady" in script
    assert "pcall(policy.act, policy, id, observation)" in script and "policy:reset(id)" in script
    # A car of another size stops the script once, not every NPC's act every tick; the
    # tick resets its clock as the game's does (the rate the policy was trained at).
    assert "#first ~= Policy.info.observationSize" in script and "elapsed = 0" in script
    for chunk in (line, script):
        pluau().Lua().load_chunk(chunk, name="=NpcDrivers")  # compiles; not run
