"""The command line's words: every verb, its flags and help texts, in one place. Kept
apart from cli.py (which runs the verbs) so that each reads in one screen; importing it
costs nothing heavy, so `ci-kit --help` stays fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from ci_kit import __version__, console
from ci_kit.errors import EXIT_CODES

DESCRIPTION = """\
Build, test and promote the exact bytes of a Python data product on devpi.

  job 1  ci-kit build-and-push              build sdist + wheel, upload to the unstable index
  job 2  ci-kit test-and-promote NAME==VER  test the uploaded bytes in fresh environments,
                                            then promote them (stable or testing)
  local  ci-kit run                         both jobs on the current repository

Configuration: [tool.ci-kit] in pyproject.toml < CI_KIT_* environment < flags.
The password (or a per-stage devpi token: ci-kit token) comes from CI_KIT_PASSWORD or
--password-file, never from a flag's value.
"""

EPILOG = "exit codes:\n" + "\n".join(f"  {code:>2}  {text}" for code, text in EXIT_CODES.items())
VERB_EPILOG = ("Every configuration key is also a flag, --KEY VALUE (e.g. --index-url URL, --test-extras test):\n"
               "`ci-kit config --table` lists them all. Exit codes: `ci-kit --help`.")


def _config_flags(p: argparse.ArgumentParser) -> None:
    from ci_kit.config import KEYS

    g = p.add_argument_group("common configuration (overrides [tool.ci-kit] and CI_KIT_*)")
    g.add_argument("--project-dir", default=".", help="the product's directory (default: current)")
    g.add_argument("--password-file", help="file holding the devpi password (or set CI_KIT_PASSWORD)")
    g.add_argument("--python", dest="python_list", action="append", metavar="X.Y",
                   help="Python version to test on (repeatable; overrides python-versions)")
    for key in KEYS:
        if key.name == "python-versions":
            continue
        # every key is a flag, but listed once (ci-kit config --table), not in every verb's help
        g.add_argument(f"--{key.name}", dest=f"cfg_{key.attr}", metavar=key.kind.upper(), help=argparse.SUPPRESS)


def _out_flags(p: argparse.ArgumentParser, output: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress stays on stderr)")
    if output:
        p.add_argument("--output", metavar="FILE", help="append KEY=VALUE results to FILE (e.g. \"$GITHUB_OUTPUT\")")
        p.add_argument("--summary", metavar="FILE", help="append a Markdown summary to FILE (e.g. \"$GITHUB_STEP_SUMMARY\")")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in ci-kit's two-line form (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        console.error(message, f"see `{self.prog} --help`")
        sys.exit(2)


_Verb = Callable[..., argparse.ArgumentParser]  # verb(name, func, help, output=True): one subcommand


def parser(handlers: dict[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """Every verb and flag; handlers maps each verb to its function in cli.py."""
    p = _Parser(prog="ci-kit", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"ci-kit {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    def verb(name: str, func: Callable[[argparse.Namespace], int], help: str, output: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, epilog=VERB_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")
        sp.add_argument("--debug", action="store_true", help="show a traceback for unexpected errors")
        _out_flags(sp, output)
        _config_flags(sp)
        return sp

    _flow_verbs(verb, handlers)
    _other_verbs(verb, handlers)
    return p


def _flow_verbs(verb: _Verb, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """The stages and the two jobs."""
    verb("build", handlers["build"], "Build sdist + wheel of the clean HEAD, twine check them, write dist/ci-kit-build.json.")
    verb("push", handlers["push"], "Upload the built files to the unstable index and verify their sha256 there.")
    for name, func, help in (
        ("test", handlers["test"], ("Test NAME==VERSION from the unstable index in fresh environments; attach results.\n"
                                    "With --dist DIR: test the files `ci-kit build` left in DIR the same way, without any index.")),
        ("test-and-promote", handlers["test-and-promote"], "Job 2: test NAME==VERSION, then promote it if every run passed."),
    ):
        sp = verb(name, func, help)
        sp.add_argument("requirement", metavar="NAME==VERSION", nargs="?" if name == "test" else None)
        sp.add_argument("--commit", help="commit the release was built from; must be the one job 1 recorded (default: that one)")
        sp.add_argument("--junit-dir", metavar="DIR", help="where JUnit XML goes (default: results-dir)")
        if name == "test":
            sp.add_argument("--only-python", metavar="X.Y",
                            help="run only this Python's share of the plan for python-versions (one job of a CI "
                                 "matrix per Python: the sdist is then tested once, not in every job)")
            sp.add_argument("--dist", metavar="DIR",
                            help="test the built files in DIR (what `ci-kit build` wrote: its manifest names the files, "
                                 "their sha256 and the commit) instead of a release on the index: for pull requests, "
                                 "which may not upload. Needs no credential and writes to no index, so these results "
                                 "never count for promotion (the gate counts only records on the index). NAME==VERSION, "
                                 "if given, must be what DIR holds")
    sp = verb("promote", handlers["promote"], "Gate NAME==VERSION on trusted passing results for each file's sha256, then copy exactly those bytes to testing/stable. "
              "Runs promoting one release at once: the first claim the index commits records it; the others wait and say "
              "'already promoted by WHO' (exit 16 if it never appears).")
    sp.add_argument("requirement", metavar="NAME==VERSION")
    sp.add_argument("--dry-run", action="store_true", help="check and say what would happen; change nothing")
    sp.add_argument("--force", action="store_true", help="promote without passing results (recorded as forced, with who)")
    verb("build-and-push", handlers["build-and-push"], "Job 1: build, then push; prints the commit and NAME==VERSION.")
    verb("run", handlers["run"], "Both jobs in turn on the current repository (the local end-to-end).")


def _other_verbs(verb: _Verb, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Status, report, the embedded server, configuration, tokens, the image."""
    sp = verb("status", handlers["status"], "Versions x indexes with test outcomes per Python and promotions.", output=False)
    sp.add_argument("name", nargs="?", metavar="NAME", help="a project (default: every project, newest versions)")
    sp.add_argument("--limit", type=int, default=10, help="newest versions shown (default 10)")
    sp.add_argument("--all", action="store_true", help="show every version")
    sp = verb("report", handlers["report"], "Model quality per version of NAME as one self-contained HTML page: metrics over "
              "versions, responses against the baseline, input profile, promotions (docs/quality.md).", output=False)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--html", metavar="FILE", help="where the page goes (default: results-dir/report-NAME.html)")
    sp.add_argument("--compare", metavar="VERSION", help="the version compared with its baseline (default: the newest evaluated)")
    sp.add_argument("--summary", metavar="FILE", help="append the comparison table as Markdown to FILE (e.g. \"$GITHUB_STEP_SUMMARY\")")
    sp = verb("server", handlers["server"], "Start, stop or show the embedded devpi-server on 127.0.0.1.", output=False)
    sp.add_argument("action", choices=["start", "stop", "status"])
    sp.add_argument("--replica-of", metavar="URL", default="",
                    help="start: a replica of the devpi primary at URL, sharing its secret file (server-secret-file); docs/scale.md")
    sp.add_argument("--primary", action="store_true",
                    help="start: a primary that replicas can follow (implied by server-storage)")
    sp = verb("config", handlers["config"], "Show the resolved configuration and where each value came from.", output=False)
    sp.add_argument("--table", action="store_true", help="print README's configuration table")
    sp = verb("token", handlers["token"], "Make a devpi token with one stage's rights and an expiry, for a CI secret; "
              "without STAGE, say what the credential held may do.", output=False)
    sp.add_argument("stage", nargs="?", choices=["build-and-push", "push", "test", "promote", "test-and-promote"])
    sp.add_argument("--expires", default="30d", help="duration (30d, 12h, 2w) or ISO date; default 30d")
    sp.add_argument("--project", action="append", metavar="NAME", help="limit to this project (repeatable)")
    sp.add_argument("--token-file", metavar="FILE", help="write the token to FILE (0600) instead of stdout")
    sp = verb("image", handlers["image"], "Build a pinned Docker image of a promoted release (hash-locked, base by digest, smoke-tested).")
    sp.add_argument("requirement", nargs="?", metavar="NAME==VERSION", help="default: the current project's version")
    _image_flags(sp)


def _image_flags(sp: argparse.ArgumentParser) -> None:
    """One build's choices (ci_kit.image.ImageRequest); base, entry point, smoke command,
    repository and tags are configuration keys (image-*), flags like every key."""
    sp.add_argument("--push", nargs="?", const="", default=None, metavar="REGISTRY/REPO",
                    help="push tags VERSION and the moving tags, print the digest (default repository: image-repository)")
    sp.add_argument("--tag", action="append", default=[], metavar="TAG",
                    help="a moving tag pushed besides VERSION (repeatable; adds to image-tags)")
    sp.add_argument("--from-unstable", action="store_true", help="allow a release that is not promoted (recorded in the labels)")
    sp.add_argument("--allow-unpinned-base", action="store_true",
                    help="accept a base given by tag (resolved to its digest at build time)")
    sp.add_argument("--smoke", metavar="CMD", help="shell command run inside the built image before any push (overrides image-smoke)")
    sp.add_argument("--commit", metavar="SHA", help="commit of the release (default: the one job 1 recorded on the index)")
    sp.add_argument("--artifacts-dir", metavar="DIR",
                    help="where the lock, SBOM, Dockerfile and image.json go (default: ci-kit-image/NAME-VERSION in the project)")
    sp.add_argument("--audit", action="store_true",
                    help="pip-audit the lock before building; fail on a finding or when the service is out of reach")
    sp.add_argument("--no-cache", action="store_true", help="build without the engine's layer cache")
