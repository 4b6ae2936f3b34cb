"""Keyboard driving: key names to actions, and scripted key states."""

import numpy as np

from racing_rl.ui.keyboard import ScriptedKeys, keys_to_action


def test_keys_map_to_actions():
    np.testing.assert_array_equal(keys_to_action([]), [0, 0, -1])
    np.testing.assert_array_equal(keys_to_action(["up", "left", "space"]), [1, -1, 1])
    np.testing.assert_array_equal(keys_to_action(["down", "right", "left shift"]), [-1, 1, 1])
    keys = ScriptedKeys(["up+left", "-"])
    assert keys() == {"up", "left"} and not keys.done
    assert keys() == set() and keys.done
