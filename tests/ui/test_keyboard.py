"""Keyboard driving: key names to actions, and scripted key states."""

import numpy as np
import pytest

from racing_rl.errors import ConfigError
from racing_rl.ui.keyboard import ScriptedKeys, keys_to_action


def test_keys_map_to_actions():
    np.testing.assert_array_equal(keys_to_action([]), [0, 0, -1])
    np.testing.assert_array_equal(keys_to_action(["up", "left", "space"]), [1, -1, 1])
    np.testing.assert_array_equal(keys_to_action(["down", "right", "left shift"]), [-1, 1, 1])
    keys = ScriptedKeys(["up+left", "-"])
    assert keys() == {"up", "left"} and not keys.done
    assert keys() == set() and keys.done


def test_a_script_takes_shift_and_any_case_and_refuses_a_key_that_drives_nothing():
    # shift (which conf/play.yaml names) and "UP" held nothing; "foo" went unnoticed.
    keys = ScriptedKeys(["UP+shift", "w + D"])
    np.testing.assert_array_equal(keys_to_action(keys()), [1, 0, 1])
    np.testing.assert_array_equal(keys_to_action(keys()), [1, 1, -1])
    with pytest.raises(ConfigError, match=r"script entry 'up\+foo' has unknown keys \['foo'\]"):
        ScriptedKeys(["up", "up+foo"])
