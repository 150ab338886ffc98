"""The typer application, the options every command shares, and the one place errors become messages.

Every command, including those other modules register on `app` (sub-apps too), runs inside `EntangleGroup.invoke`:

* an `InputError` (bad file, line, field or option; `DirectionError`, `TextsError`, `RunFolderError`, ... are
  InputErrors), a `StimulusError`, a `ModelLoadError`, or an OS error on a path (permission, read-only, disk
  full, a folder under a file) becomes one line ``error: <message>`` on stderr and exit code 2;
* anything else is a bug: one line saying so, "run with --debug for the traceback", exit code 1;
* ``entangle --debug <command>`` lets every exception through with its traceback;
* warnings raised by entangle's own code (a direction fitted on other weights, ...) are shown as one yellow line
  each; library warnings stay silent.

Messages are printed as plain text, never as rich markup, so ``items[v2].jsonl`` keeps its brackets.
"""

from __future__ import annotations

import errno
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from entangle.files import InputError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EEXIST,
                         errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTEMPTY})
"""OS errors that say something about a path the user gave (not about entangle): reported, not called bugs."""


def say(message: str) -> None:
    """Print one line of output as plain text (no markup: brackets in paths stay)."""
    console.print(Text(message), soft_wrap=True)


def _line(label: str, style: str, message: str) -> None:
    err_console.print(Text.assemble((label, style), message), soft_wrap=True)


def warn_line(message: str) -> None:
    """One yellow warning line on stderr."""
    _line("warning: ", "bold yellow", message)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    warn_line(" ".join(str(message).split()))


@contextmanager
def shown_warnings() -> Iterator[None]:
    """Library warnings silenced; entangle's own UserWarnings shown as one yellow line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("always", category=UserWarning, module=r"entangle(\.|$)")
        warnings.showwarning = _show_warning
        yield


def quiet_hf() -> None:
    """No weight-loading progress bars or info logs from transformers (warnings are handled by `shown_warnings`)."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that ended a command."""
    from entangle.models import ModelLoadError  # noqa: PLC0415
    from entangle.stimuli import StimulusError  # noqa: PLC0415

    if isinstance(exc, InputError | StimulusError | ModelLoadError):
        return 2, " ".join(str(exc).split("\n"))
    if isinstance(exc, OSError) and exc.errno in PATH_ERRNOS:
        where = exc.filename if exc.filename is not None else ""
        return 2, f"{where}: {exc.strerror}" if where else str(exc.strerror or exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return 1, (f"internal error ({type(exc).__name__}{': ' + first if first else ''}); this is a bug in entangle, "
               f"please report it; run with --debug for the traceback")


class EntangleGroup(TyperGroup):
    """The top-level command group: runs every sub-command with the one error path and the warning display."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            with shown_warnings():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits, usage errors: typer reports them
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            code, message = describe(exc)
            _line("error: ", "bold red", message)
            raise typer.Exit(code) from None


app = typer.Typer(cls=EntangleGroup,
                  help="entangle: does a language model keep moral, grammatical and economic good apart?",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="show the full traceback of any error")] = False) -> None:
    """entangle: does a language model keep moral, grammatical and economic good apart?"""


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="registry name, local HF directory or HF hub id")]
StimuliOpt = Annotated[Path | None, typer.Option(help="stimulus JSONL/CSV (default: the shipped factorial set)")]
FramesOpt = Annotated[int | None, typer.Option(help="use only the first N frames (quick runs)")]
CacheOpt = Annotated[Path, typer.Option(help="activation cache folder")]
DeviceOpt = Annotated[str, typer.Option(help="torch device: cpu, cuda, cuda:N or mps")]
DtypeOpt = Annotated[str, typer.Option(help="float32 (default), bfloat16 or float16")]
OverwriteOpt = Annotated[bool, typer.Option(help="replace an existing --out folder (only once the new run is complete)")]
ForceOpt = Annotated[bool, typer.Option(help="replace an existing output file")]


def _fail(exc: Exception) -> None:
    """Report `exc` as one error line and exit 2 (for commands that catch their own errors)."""
    _line("error: ", "bold red", str(exc))
    raise typer.Exit(2)
