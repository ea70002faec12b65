"""Where `image build` takes the admin password from, and where it keeps it."""

from __future__ import annotations

import stat

import pytest

from infra.image.build import PASSWORD_FILE, BuildRefused, admin_password, pick_disk, store_password
from infra.state import StateDir


def test_from_a_0600_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text("a-long-password\n")
    path.chmod(0o600)
    assert admin_password(path, {}).reveal() == "a-long-password"


def test_a_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "pw"
    path.write_text("a-long-password")
    path.chmod(0o644)
    with pytest.raises(BuildRefused, match="readable by others; chmod 600"):
        admin_password(path, {})


def test_from_the_environment():
    assert admin_password(None, {"TRUENAS_ADMIN_PASSWORD": "from-env-pw"}).reveal() == \
        "from-env-pw"


def test_none_given_says_how():
    with pytest.raises(BuildRefused, match="--password-file PATH or export "
                                           "TRUENAS_ADMIN_PASSWORD"):
        admin_password(None, {})


def test_shorter_than_the_installer_takes():
    with pytest.raises(BuildRefused, match="at least 6") as refused:
        admin_password(None, {"TRUENAS_ADMIN_PASSWORD": "abc12"})
    assert "abc12" not in str(refused.value)


def test_kept_0600_in_the_0700_state_directory(tmp_path):
    state = StateDir(tmp_path / "state")
    path = store_password(state, admin_password(None, {"TRUENAS_ADMIN_PASSWORD": "pw-123456"}))
    assert path == state.path / PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700
    assert path.read_text() == "pw-123456"


SIZE = 16 * 1024**3


@pytest.mark.parametrize("disks, picked", [
    ([{"name": "vda", "size": SIZE, "label": "", "zfs_members": []}], "vda"),
    ([{"name": "sda", "size": 10 * 10**9, "label": "", "zfs_members": []},
      {"name": "vda", "size": SIZE, "label": "", "zfs_members": []}], "vda"),
])
def test_exactly_the_blank_disk_of_the_build_size(disks, picked):
    assert pick_disk(disks, SIZE) == picked


def test_a_disk_with_a_filesystem_is_not_blank():
    disks = [{"name": "vda", "size": SIZE, "label": "ext4-root", "zfs_members": []}]
    with pytest.raises(BuildRefused, match="no blank disk"):
        pick_disk(disks, SIZE)
