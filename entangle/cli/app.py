"""The typer application, the options every command shares, and the one place errors become messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="entangle: does a language model keep moral, grammatical and economic good apart?",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="registry name, local HF directory or HF hub id")]
StimuliOpt = Annotated[Path | None, typer.Option(help="stimulus JSONL/CSV (default: the shipped factorial set)")]
FramesOpt = Annotated[int | None, typer.Option(help="use only the first N frames (quick runs)")]
CacheOpt = Annotated[Path, typer.Option(help="activation cache folder")]
DeviceOpt = Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")]
DtypeOpt = Annotated[str, typer.Option(help="float32 (default) or bfloat16")]


def _fail(exc: Exception) -> None:
    console.print("[red]error:[/red] " + escape(str(exc)))
    raise typer.Exit(2)


