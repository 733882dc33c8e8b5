"""The error hierarchy: every failure a user can cause has a one-line message, a hint
and an exit code, so the CLI can print two lines and never a traceback."""

from __future__ import annotations


class CiKitError(Exception):
    """Base class. Each subclass names its exit code on its class line (`code=N`), so the
    codes read as a table here; EXIT_CODES below says what each means, for `--help` and
    README ("Exit codes")."""

    exit_code = 1

    def __init_subclass__(cls, code: int = 0, **kw: object) -> None:
        super().__init_subclass__(**kw)
        if code:
            cls.exit_code = code

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CiKitError, code=2):
    """Bad flags, unknown or ill-typed configuration, malformed requirement."""


class ProjectError(CiKitError, code=3):
    """Not a git repository, no pyproject.toml, dirty tree, unknown commit."""


class BuildError(CiKitError, code=4):
    """The build backend failed; the message carries the backend's own error."""


class IndexUnreachable(CiKitError, code=5):
    """The index could not be reached, or its answer was lost or was not devpi's."""


class AuthError(CiKitError, code=6):
    """The index refused the credentials, or there were none."""


class NotFound(CiKitError, code=7):
    """Index, project or release missing on the index."""


class Collision(CiKitError, code=8):
    """Same version, different bytes."""


class ProductTestsFailed(CiKitError, code=9):
    """The product's tests failed, or none were found."""

    def __init__(self, message: str, hint: str = "", report: object = None) -> None:
        super().__init__(message, hint)
        self.report = report  # the testreport.RunReport, for summaries of a failed run


class GateRefused(CiKitError, code=10):
    """Promotion refused: a file lacks trusted passing evidence for its exact sha256 on a
    configured Python, the release is incomplete, or the index lets others write."""


class ImageError(CiKitError, code=11):
    """Docker engine, registry, base image or smoke test failure."""


class EnvFailed(CiKitError, code=12):
    """A test environment could not be made: uv could not create it, or could not install
    the release, its dependencies or the test tools into it (say, a dependency that the
    dependency index does not have)."""


class ServerFailed(CiKitError, code=13):
    """The embedded devpi-server (`ci-kit server start`) could not be initialised or started."""


class Mismatch(CiKitError, code=14):
    """A promotion target holds bytes, or a release, that did not come through the gate.
    Said on every run that finds it, never waved through as "already promoted"."""


class TimedOut(CiKitError, code=15):
    """A command ran past its time limit; its whole process group was killed."""


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
