"""racing_rl.files: why a file cannot be written, said of the right path."""

from __future__ import annotations

from pathlib import Path

import pytest

from racing_rl.files import cannot_write


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_directory_that_makes_no_files_is_said_to_refuse_them():
    # It was "/proc: No such file or directory", of a directory that exists: the error
    # of the probe file made in it, said of the directory.
    assert cannot_write(Path("/proc/x.luau")) == (
        "/proc does not accept new files (creating one there failed: No such file or directory)"
    )


def test_a_directory_that_cannot_be_made_is_named_with_the_reason(tmp_path):
    (tmp_path / "file").write_text("")
    assert (
        cannot_write(tmp_path / "file" / "x.luau")
        == f"{tmp_path / 'file'} is a file, not a directory"
    )
    assert cannot_write(tmp_path / "new" / "x.luau") is None
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())
