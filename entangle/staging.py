"""A run folder is written as a transaction: into a staging folder beside its target, moved into place when complete.

`entangle run` and `entangle probe` write through `staged(target, overwrite=...)`:

* the command writes into ``<parent>/.<name>.staging-<pid>``; if it fails (an error, Ctrl-C) the staging folder is
  removed and the target is exactly as it was;
* an existing non-empty target is refused unless `overwrite` (checked before any work, and again at the swap);
  with `overwrite` the old folder is replaced only after the new one is complete: it is renamed to
  ``.<name>.old-<pid>``, the staging folder is renamed to the target, then the old one is deleted;
* debris of a process that was killed (SIGKILL, power loss) is cleaned up by the next run for the same target:
  stale staging folders are deleted, and an old folder whose swap was cut short is put back.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from entangle.files import InputError


class FolderInUseError(InputError):
    """The target folder already holds results, and the command was not told to replace them."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _debris(target: Path, tag: str) -> Iterator[tuple[Path, int]]:
    """(path, pid) of `.<name>.<tag>-<pid>` folders beside `target`."""
    prefix = f".{target.name}.{tag}-"
    if target.parent.is_dir():
        for p in target.parent.iterdir():
            if p.name.startswith(prefix) and p.name[len(prefix):].isdigit():
                yield p, int(p.name[len(prefix):])


def recover(target: Path) -> None:
    """Put back an old folder whose swap a killed process cut short; delete staging folders of dead processes."""
    for old, pid in _debris(target, "old"):
        if not _alive(pid):
            if not target.exists():
                os.rename(old, target)
            else:
                shutil.rmtree(old)
    for staging, pid in _debris(target, "staging"):
        if not _alive(pid):
            shutil.rmtree(staging)


def _holds_results(target: Path) -> bool:
    return target.is_dir() and any(target.iterdir())


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse a target that is a file, or a non-empty folder unless `overwrite`."""
    if target.exists() and not target.is_dir():
        raise InputError(target, None, None, "exists and is a file; --out must be a folder")
    if _holds_results(target) and not overwrite:
        what = "a complete run" if (target / "metrics.json").is_file() else "files"
        raise FolderInUseError(target, None, None, f"already holds {what}; pass --overwrite to replace it once the "
                                                   f"new run has finished, or choose another --out")


@contextmanager
def staged(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh staging folder beside `target`; on success move it into place, on failure delete it."""
    recover(target)
    check_target(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap(staging, target, overwrite=overwrite)


def _swap(staging: Path, target: Path, *, overwrite: bool) -> None:
    """Move the complete `staging` folder to `target`, replacing an old one only with `overwrite`."""
    if _holds_results(target) and not overwrite:
        raise FolderInUseError(target, None, None, f"was filled by something else during this run; the new results "
                                                   f"are kept in {staging}")
    if not _holds_results(target):
        if target.is_dir():
            target.rmdir()
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old)
