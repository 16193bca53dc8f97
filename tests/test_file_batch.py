"""FileBatch: files replaced together at a commit, their pending files created by a ``tar`` process.

Real files in a temporary folder, a real ``tar`` (and, where a case says so, none on PATH:
the batch then writes the files itself). Nothing here waits for time: each case waits for
the batch (its commit, :meth:`~FileBatch.pending`, :meth:`~FileBatch.drop`), which waits
for ``tar`` to end.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from phishme_intel.file_batch import FileBatch, gnu_tar, remove_pending
from phishme_intel.files import mode_holding_the_lock


def in_thread(work):
    """Run ``work`` in a thread that is not the main thread; return what it returned, or raise what it raised."""
    with ThreadPoolExecutor(1) as other:
        return other.submit(work).result()


def names(folder):
    return sorted(os.listdir(folder))


@pytest.fixture(params=["tar", "no tar"])
def tar_or_not(request, monkeypatch, tmp_path):
    """Each case as it runs with GNU tar on PATH, and without (the batch writes the files itself)."""
    gnu_tar.cache_clear()
    if request.param == "no tar":
        monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    elif gnu_tar() is None:
        pytest.skip("no GNU tar on PATH")
    yield request.param
    gnu_tar.cache_clear()


@pytest.mark.usefixtures("tar_or_not")
def test_files_written_from_another_thread_appear_whole_at_the_commit(tmp_path):
    batch = FileBatch(held=50_000)  # fewer bytes than the files: several hand-overs to tar
    contents = {str(tmp_path / f"t{n}.json"): bytes([n % 256]) * (10_000 + n) for n in range(40)}

    def write():
        for target, data in contents.items():
            batch.write(target, [data[:5], data[5:]])
        return names(tmp_path)

    waiting = in_thread(write)
    assert all(name.startswith(".") and name.endswith(".json.pending") for name in waiting)
    in_thread(batch.commit)

    assert {str(tmp_path / name): (tmp_path / name).read_bytes() for name in names(tmp_path)} == contents


@pytest.mark.usefixtures("tar_or_not")
def test_a_later_write_of_the_same_target_wins_and_pending_waits_for_it(tmp_path):
    batch = FileBatch()
    target = str(tmp_path / "t.json")
    for n in range(20):
        batch.write(target, [b"version %d\n" % n])

    with open(batch.pending(target), "rb") as pending:
        assert pending.read() == b"version 19\n"
    batch.commit()
    assert names(tmp_path) == ["t.json"] and (tmp_path / "t.json").read_bytes() == b"version 19\n"


@pytest.mark.usefixtures("tar_or_not")
def test_a_replaced_file_keeps_its_permission_bits_and_a_new_one_gets_the_umasks(tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_bytes(b"old\n")
    kept.chmod(0o604)
    batch = FileBatch()
    batch.write(str(kept), [b"new\n"])
    batch.write(str(tmp_path / "new.json"), [b"new\n"])

    batch.commit()

    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_bytes() == b"new\n"
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~umask


@pytest.mark.usefixtures("tar_or_not")
def test_a_link_at_a_target_fails_its_write_and_the_commit_and_replaces_nothing(tmp_path):
    elsewhere = tmp_path / "precious.txt"
    elsewhere.write_bytes(b"precious\n")
    link = tmp_path / "b.json"
    link.symlink_to(elsewhere)
    (tmp_path / "a.json").write_bytes(b"old\n")
    batch = FileBatch()
    batch.write(str(tmp_path / "a.json"), [b"new\n"])
    with pytest.raises(OSError, match="is a symbolic link") as failure:
        batch.write(str(link), [b"new\n"])
    assert failure.value.filename == str(link)

    for call in (lambda: batch.write(str(tmp_path / "c.json"), [b"new\n"]), batch.commit):
        with pytest.raises(OSError, match="is a symbolic link"):
            call()
    assert (tmp_path / "a.json").read_bytes() == b"old\n" and elsewhere.read_bytes() == b"precious\n"
    assert link.is_symlink() and not (tmp_path / "c.json").exists()
    batch.discard()
    assert names(tmp_path) == ["a.json", "b.json", "precious.txt"]


@pytest.mark.usefixtures("tar_or_not")
def test_a_write_into_a_missing_folder_fails_naming_its_target_and_makes_no_folder(tmp_path):
    batch = FileBatch()
    batch.write(str(tmp_path / "a.json"), [b"new\n"])
    missing = str(tmp_path / "no-such-folder" / "b.json")

    with pytest.raises(FileNotFoundError) as failure:
        batch.write(missing, [b"new\n"])

    assert failure.value.filename == missing
    with pytest.raises(FileNotFoundError):
        batch.pending(str(tmp_path / "a.json"))
    batch.discard()
    assert names(tmp_path) == []
    batch.write(str(tmp_path / "c.json"), [b"new\n"])  # discard forgot the failure
    batch.commit()
    assert names(tmp_path) == ["c.json"]


def test_a_file_tar_fails_to_write_is_raised_by_the_next_call_that_waits_naming_its_target(tmp_path):
    if gnu_tar() is None:
        pytest.skip("no GNU tar on PATH")
    (tmp_path / ".b.json.pending").mkdir()  # something tar cannot replace with a file
    (tmp_path / ".b.json.pending" / "inside").write_bytes(b"x")
    batch = FileBatch()
    for name in ("a.json", "b.json", "c.json"):
        batch.write(str(tmp_path / name), [b"new\n"])

    with pytest.raises(OSError) as failure:
        batch.pending(str(tmp_path / "a.json"))

    assert failure.value.filename == str(tmp_path / "b.json") and failure.value.strerror
    with pytest.raises(OSError) as again:
        batch.commit()
    assert again.value.filename == str(tmp_path / "b.json")
    assert not {"a.json", "b.json", "c.json"} & set(names(tmp_path))


def test_tar_gets_long_names_and_none_of_the_environment(tmp_path, monkeypatch):
    if gnu_tar() is None:
        pytest.skip("no GNU tar on PATH")
    monkeypatch.setenv("TAR_OPTIONS", "--to-stdout")  # were it heeded, no file would be made
    deep = tmp_path / ("d" * 120) / ("e" * 150)
    deep.mkdir(parents=True)
    targets = [str(tmp_path / ("n" * 90 + ".json")), str(deep / "t.json"), str(deep / ("f" * 200 + ".json"))]
    batch = FileBatch()
    for n, target in enumerate(targets):
        batch.write(target, [b"content %d\n" % n])
    batch.commit()
    assert [Path(target).read_bytes() for target in targets] == [b"content %d\n" % n for n in range(3)]


@pytest.mark.usefixtures("tar_or_not")
def test_drop_and_discard_leave_no_pending_file_even_when_written_after_the_call(tmp_path):
    batch = FileBatch(held=1)  # each file handed to tar as it comes
    for n in range(30):
        batch.write(str(tmp_path / f"t{n}.json"), [b"x" * 4096])
    batch.drop(str(tmp_path / "t29.json"))
    assert len(batch) == 29 and str(tmp_path / "t29.json") not in batch
    assert ".t29.json.pending" not in names(tmp_path)
    for n in range(30):
        batch.write(str(tmp_path / f"u{n}.json"), [b"x" * 4096])

    batch.discard()
    batch.commit()

    assert names(tmp_path) == [] and len(batch) == 0


@pytest.mark.usefixtures("tar_or_not")
def test_a_folder_added_appears_at_the_commit_with_its_files_and_discard_leaves_nothing(tmp_path):
    batch = FileBatch()
    folder = tmp_path / "2024-05-01"
    batch.add_folder(str(folder))
    for n in range(3):
        batch.write(str(folder / f"t{n}.json"), [b"new %d\n" % n])
    batch.write(str(tmp_path / "beside.json"), [b"beside\n"])
    batch.drop(str(folder / "t1.json"))

    assert batch.pending(str(folder / "t0.json")) == str(tmp_path / ".2024-05-01.pending" / "t0.json")
    assert names(tmp_path) == [".2024-05-01.pending", ".beside.json.pending"]
    batch.commit()

    assert names(tmp_path) == ["2024-05-01", "beside.json"] and names(folder) == ["t0.json", "t2.json"]
    assert (folder / "t2.json").read_bytes() == b"new 2\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    batch.add_folder(str(tmp_path / "2024-05-02"))
    batch.write(str(tmp_path / "2024-05-02" / "t.json"), [b"new\n"])
    batch.discard()
    assert names(tmp_path) == ["2024-05-01", "beside.json"]


def test_pending_folders_a_dead_process_left_are_removed_with_their_files(tmp_path):
    stale = tmp_path / ".2024-05-01.pending"
    stale.mkdir()
    (stale / "t.json").write_bytes(b"half")
    (tmp_path / ".t.json.pending").write_bytes(b"half")
    (tmp_path / "t.json").write_bytes(b"kept\n")
    remove_pending(str(tmp_path))
    assert names(tmp_path) == ["t.json"]

    stale.mkdir()
    (stale / "t.json").write_bytes(b"half")
    batch = FileBatch()
    batch.add_folder(str(tmp_path / "2024-05-01"))  # over what a dead process left there
    batch.write(str(tmp_path / "2024-05-01" / "u.json"), [b"new\n"])
    batch.commit()
    assert names(tmp_path) == ["2024-05-01", "t.json"] and names(tmp_path / "2024-05-01") == ["u.json"]


@pytest.mark.usefixtures("tar_or_not")
def test_a_commit_that_cannot_rename_a_file_into_place_fails_naming_its_target(tmp_path):
    (tmp_path / "b.json").mkdir()  # a folder at the target: no file is renamed over it
    (tmp_path / "b.json" / "inside").write_bytes(b"x")
    batch = FileBatch()
    for name in ("a.json", "b.json"):
        batch.write(str(tmp_path / name), [b"new\n"])

    with pytest.raises(OSError) as failure:
        batch.commit()

    assert failure.value.filename == str(tmp_path / "b.json")
    assert failure.value.strerror == os.strerror(failure.value.errno)
    assert (tmp_path / "b.json" / "inside").read_bytes() == b"x"


def test_a_tar_that_is_not_gnu_tar_is_not_used(tmp_path, monkeypatch):
    programs = tmp_path / "programs"
    programs.mkdir()
    (programs / "tar").write_text("#!/bin/sh\necho 'bsdtar 3.6.2 - libarchive 3.6.2'\nexit 1\n")
    (programs / "tar").chmod(0o755)
    monkeypatch.setenv("PATH", str(programs))
    gnu_tar.cache_clear()
    try:
        assert gnu_tar() is None
        batch = FileBatch()
        batch.write(str(tmp_path / "t.json"), [b"new\n"])  # written by the batch itself
        batch.commit()
    finally:
        gnu_tar.cache_clear()
    assert (tmp_path / "t.json").read_bytes() == b"new\n"


def test_the_mode_read_holding_the_lock_is_what_lstat_says_and_none_for_nothing(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "file").chmod(0o640)
    (tmp_path / "link").symlink_to(tmp_path / "file")
    for name in ("file", "link", "."):
        assert mode_holding_the_lock(str(tmp_path / name)) == os.lstat(tmp_path / name).st_mode
    assert mode_holding_the_lock(str(tmp_path / "absent")) is None
    assert mode_holding_the_lock(str(tmp_path / "file" / "below a file")) is None


def test_a_link_planted_at_a_pending_files_name_is_never_written_through(tmp_path, tar_or_not):
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"precious\n")
    (tmp_path / ".t.json.pending").symlink_to(precious)
    batch = FileBatch()

    if tar_or_not == "tar":  # GNU tar removes the link and makes the file anew
        batch.write(str(tmp_path / "t.json"), [b"new\n"])
        batch.commit()
        assert (tmp_path / "t.json").read_bytes() == b"new\n"
    else:  # opened without following it: refused, naming the target
        with pytest.raises(OSError, match="is a symbolic link") as failure:
            batch.write(str(tmp_path / "t.json"), [b"new\n"])
        assert failure.value.filename == str(tmp_path / "t.json")
    assert precious.read_bytes() == b"precious\n"
