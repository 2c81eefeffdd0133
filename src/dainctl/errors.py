"""Errors that end a run with one line and a distinct exit code.

Every error a user can cause is a `DainctlError` subclass; the CLI (`dainctl.cli.app`) is the one place
that turns them into a message and an exit code. Exit codes are documented in the README.
"""

from __future__ import annotations


class DainctlError(Exception):
    """Base class: a one-line message for the user and an exit code."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(DainctlError):
    """Bad option values, bad --config, contradictory flags."""

    exit_code = 2


class InputError(DainctlError):
    """Missing, unreadable or undecodable input; no video stream; empty folder."""

    exit_code = 3


class OutputError(DainctlError):
    """Output exists (without --overwrite), same as input, not writable, disk full, encoder failure."""

    exit_code = 4


class EngineError(DainctlError):
    """The interpolation engine cannot run (unknown engine, no CUDA when asked for, build failure)."""

    exit_code = 5


class WeightsError(DainctlError):
    """Missing, unsafe, corrupt or mismatched checkpoint."""

    exit_code = 6


class VerifyError(DainctlError):
    """The written output does not match the plan (frame count, duration, audio)."""

    exit_code = 7


# 130 is used for Ctrl-C (128 + SIGINT) and 143 for SIGTERM (128 + 15), as shells report them.
INTERRUPTED_EXIT_CODE = 130
TERMINATED_EXIT_CODE = 143


class StoppedWithCheckpoint(DainctlError):
    """Ctrl-C or SIGTERM during work that saves what it has done first (`dainctl finetune`): the message
    says where, and the exit code is that of an interruption (the CLI reports 143 for SIGTERM)."""

    exit_code = INTERRUPTED_EXIT_CODE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every cleanup path of Ctrl-C runs for it too."""
