"""The `dainctl` command: a Typer app, and the one place where errors become exit codes."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
from typing import Annotated, Optional

import typer

from .. import __version__
from ..errors import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE, DainctlError, Terminated

try:  # Typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer on the click package
    from click.exceptions import ClickException

INTERNAL_ERROR_EXIT_CODE = 70  # an unexpected failure: a bug, reported with DAINCTL_DEBUG=1

app = typer.Typer(
    name="dainctl",
    help="Video frame interpolation: higher frame rates and slow motion, with exact timing and audio.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_text() -> str:
    import av
    import torch

    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "CUDA not available"
    ffmpeg = getattr(av, "ffmpeg_version_info", "?")
    return f"dainctl {__version__}\ntorch {torch.__version__} ({cuda})\nPyAV {av.__version__} (FFmpeg {ffmpeg})"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(_version_text())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", help="Show dainctl, torch, PyAV/FFmpeg versions and CUDA availability.", callback=_show_version, is_eager=True),
    ] = None,
) -> None:
    """dainctl: video frame interpolation from the command line."""


def _register() -> None:
    from . import benchmark, convert, finetune, run, sample

    app.command(help=run.interpolate.__doc__)(run.interpolate)
    app.command(help=run.slowmo.__doc__)(run.slowmo)
    app.command(help=convert.convert.__doc__)(convert.convert)
    app.command(help=finetune.finetune.__doc__)(finetune.finetune)
    app.add_typer(benchmark.app, name="benchmark")
    app.command(help=sample.sample.__doc__)(sample.sample)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code. Without `argv` it runs the process's
    own command line, and ends the process (`_end_process`) instead of returning."""
    debug = os.environ.get("DAINCTL_DEBUG", "") not in ("", "0")
    _quiet_ffmpeg(debug)
    with _sigterm_as_interrupt() as terminated:
        code = _run(argv, debug, terminated)
    if code == INTERRUPTED_EXIT_CODE and terminated:
        code = TERMINATED_EXIT_CODE
    if argv is None:
        _skip_collections_at_exit()
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """End the process with `code` after what the interpreter's shutdown does that anyone can rely on,
    in its order: wait for the threads that are not daemons (`threading._shutdown`, which also stops
    the thread pools), run the exit handlers (`atexit`: logging's, Ray's, weakref finalizers), flush
    stdout and stderr. What it skips is the teardown of every module and object left, torch's among
    them: 0.07-0.15 s of a 2.5-s run (docs/benchmarks.md, 2026-12-06). Where the interpreter has no
    `threading._shutdown`, it returns and the interpreter ends the process as usual."""
    import atexit

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # pragma: no cover - not CPython
        return
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, a broken pipe, or no stream at all
            pass
    os._exit(code)


def _skip_collections_at_exit() -> None:
    """The interpreter's shutdown runs the cyclic garbage collector over every object left, torch's tens
    of thousands among them, for nothing: the process is ending. Frozen objects are not examined (their
    memory goes back with the process; objects freed by reference counting still are). Measured on a
    2-core machine: `python -c "import torch"` 1.36-1.50 s, 1.10-1.12 s with gc.freeze() at the end;
    `dainctl interpolate` of a 2-s 640x360 clip 3.18-3.29 s -> 2.92-3.05 s (docs/benchmarks.md,
    2026-12-04)."""
    gc.freeze()


def _run(argv: list[str] | None, debug: bool, terminated: list[int]) -> int:
    try:
        result = app(args=argv, prog_name="dainctl", standalone_mode=False)
        if result == INTERRUPTED_EXIT_CODE:  # Typer turns Ctrl-C into a silent Exit(130)
            _interrupted_line(terminated)
        return result if isinstance(result, int) else 0
    except DainctlError as exc:
        if debug:
            traceback.print_exc()
        _error_line(exc.message)
        return exc.exit_code
    except ClickException as exc:  # bad flags and values found by the parser
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `dainctl`: the help, not an error line
            exc.show()
            return 2
        _error_line(f"{exc.format_message()} (see dainctl --help)")
        return 2
    except (KeyboardInterrupt, typer.Abort):
        _interrupted_line(terminated)
        return INTERRUPTED_EXIT_CODE
    except Exception as exc:  # a bug: one line, the traceback with DAINCTL_DEBUG=1
        if debug:
            traceback.print_exc()
        _error_line(f"internal error: {type(exc).__name__}: {exc} (run with DAINCTL_DEBUG=1 for details)")
        return INTERNAL_ERROR_EXIT_CODE


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While the command runs, SIGTERM (`kill`, `timeout`, a job scheduler) raises `Terminated` in the main
    thread, so the partial output and temporary folders are removed as on Ctrl-C; yields a list that is
    non-empty once SIGTERM came. The previous handler is put back afterwards."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        # Signals are handled on the main thread only; an ignored SIGTERM (inherited) stays ignored.
        yield received
        return

    def on_sigterm(signum, frame):
        received.append(signum)
        if len(received) == 1:  # a second SIGTERM must not break off the cleanup the first one started
            raise Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_line(terminated: list[int]) -> None:
    cause = "terminated (SIGTERM)" if terminated else "interrupted"
    _error_line(f"{cause}; the partial output was removed")


def _quiet_ffmpeg(debug: bool) -> None:
    """FFmpeg's own log lines (x264 complaints, decoder warnings) would break the one-line rule; our
    errors carry what matters. DAINCTL_DEBUG=1 lets them through."""
    try:
        import av.logging

        av.logging.set_level(av.logging.WARNING if debug else None)
    except Exception:  # logging control is a nicety, never a reason to fail
        pass


def _error_line(message: str) -> None:
    sys.stderr.write(f"dainctl: error: {' '.join(str(message).split())}\n")
    sys.stderr.flush()
