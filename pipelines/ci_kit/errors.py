"""The error hierarchy: every failure a user can cause has a one-line message, a hint
and an exit code, so the CLI can print two lines and never a traceback."""

from __future__ import annotations


class CiKitError(Exception):
    """Base class. `exit_code` is documented in README ("Exit codes")."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CiKitError):
    """Bad flags, unknown or ill-typed configuration, malformed requirement."""

    exit_code = 2


class ProjectError(CiKitError):
    """Not a git repository, no pyproject.toml, dirty tree, unknown commit."""

    exit_code = 3


class BuildError(CiKitError):
    """The build backend failed; the message carries the backend's own error."""

    exit_code = 4


class IndexUnreachable(CiKitError):
    exit_code = 5


class AuthError(CiKitError):
    exit_code = 6


class NotFound(CiKitError):
    """Index, project or release missing on the index."""

    exit_code = 7


class Collision(CiKitError):
    """Same version, different bytes."""

    exit_code = 8


class ProductTestsFailed(CiKitError):
    """The product's tests failed, or none were found."""

    exit_code = 9

    def __init__(self, message: str, hint: str = "", report: object = None) -> None:
        super().__init__(message, hint)
        self.report = report  # the testrun.RunReport, for summaries of a failed run


class GateRefused(CiKitError):
    """Promotion refused: a file lacks trusted passing evidence for its exact sha256 on a
    configured Python, the release is incomplete, or the index lets others write."""

    exit_code = 10


class ImageError(CiKitError):
    """Docker engine, registry, base image or smoke test failure."""

    exit_code = 11


class EnvFailed(CiKitError):
    """A test environment could not be made: uv could not create it, or could not install
    the release, its dependencies or the test tools into it (say, a dependency that the
    dependency index does not have)."""

    exit_code = 12


class ServerFailed(CiKitError):
    """The embedded devpi-server (`ci-kit server start`) could not be initialised or started."""

    exit_code = 13


class Mismatch(CiKitError):
    """A promotion target holds bytes, or a release, that did not come through the gate.
    Said on every run that finds it, never waved through as "already promoted"."""

    exit_code = 14


class TimedOut(CiKitError):
    """A command ran past its time limit; its whole process group was killed."""

    exit_code = 15


class PromotionPending(CiKitError):
    """Another run claimed the promotion of the same release first (claims.py) and its
    records did not appear on the target within the wait."""

    exit_code = 16


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a person's Ctrl-C, CI's cancel button).

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way up
    swallows it, while every `with` block on the way (temporary folders) still runs. The
    exit code is the shell's convention, 128 + the signal number: 130 for SIGINT, 143 for
    SIGTERM.
    """

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


EXIT_CODES: dict[int, str] = {
    0: "success (also: re-running a stage that already succeeded)",
    1: "unexpected error: a server answered in a way ci-kit does not expect, or a bug (--debug shows a traceback)",
    2: "usage or configuration error (flag, [tool.ci-kit] key, environment, requirement)",
    3: "project or repository error (not a git repository, no pyproject.toml, dirty tree, unknown commit)",
    4: "build failed (the build backend's own error is shown)",
    5: "index unreachable, or its answer lost: connection refused or dropped, no answer within index-timeout, a gateway's 5xx",
    6: "authentication failed",
    7: "not found on the index (index, project or release)",
    8: "version collision (same version, different bytes)",
    9: "tests failed, or no tests were found, or the evaluation record ($CI_KIT_METRICS_FILE) is malformed",
    10: "promotion refused by the gate (no passing result for a file's sha256, or a quality bound not met)",
    11: "image step failed (engine, registry, base image, smoke test)",
    12: "a test environment could not be made (uv could not create it or install the release, its dependencies or the test tools)",
    13: "the embedded devpi-server could not be initialised or started (`ci-kit server start`)",
    14: "a promotion target holds bytes or a release without trusted passing evidence (not from the gate)",
    15: "a command ran past its time limit (it was stopped with its child processes)",
    16: "another run of promote claimed the same release first and its promotion did not appear on the target within the wait (run promote again)",
    130: "interrupted by SIGINT (Ctrl-C): child processes stopped, temporary folders removed",
    143: "interrupted by SIGTERM (CI's cancel): child processes stopped, temporary folders removed",
}
