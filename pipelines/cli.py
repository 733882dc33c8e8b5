"""The `ci-kit` command line: argument parsing and printing only; stages live in their
modules and are imported when their verb runs, so `ci-kit --help` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

from pipelines import __version__, console
from pipelines.errors import EXIT_CODES, CiKitError, Interrupted

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
    from pipelines.config import KEYS

    g = p.add_argument_group("common configuration (overrides [tool.ci-kit] and CI_KIT_*)")
    g.add_argument("--project-dir", default=".", help="the product's directory (default: current)")
    g.add_argument("--password-file", help="file holding the devpi password (or set CI_KIT_PASSWORD)")
    g.add_argument("--python", dest="python_list", action="append", metavar="X.Y",
                   help="Python version to test on (repeatable; overrides python-versions)")
    for key in KEYS:
        if key.name in ("python-versions",):
            continue
        # every key is a flag, but listed once (ci-kit config --table), not in every verb's help
        g.add_argument(f"--{key.name}", dest=f"cfg_{key.attr}", metavar=key.kind.upper(), help=argparse.SUPPRESS)


def _out_flags(p: argparse.ArgumentParser, output: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress stays on stderr)")
    if output:
        p.add_argument("--output", metavar="FILE", help="append KEY=VALUE results to FILE (e.g. \"$GITHUB_OUTPUT\")")
        p.add_argument("--summary", metavar="FILE", help="append a Markdown summary to FILE (e.g. \"$GITHUB_STEP_SUMMARY\")")


def _settings(args: argparse.Namespace) -> Any:
    from pipelines import config

    flags: dict[str, Any] = {}
    for key in config.KEYS:
        value = getattr(args, f"cfg_{key.attr}", None)
        if value is not None:
            flags[key.name] = value
    if getattr(args, "python_list", None):
        flags["python-versions"] = ",".join(args.python_list)
    if getattr(args, "password_file", None):
        flags["password-file"] = args.password_file
    from pipelines import sandbox, secretfd

    settings = config.load(Path(args.project_dir), flags, environ={**os.environ, **secretfd.inherited()})
    sandbox.note_secret_files(settings.password_files)
    return settings


def _preflight(args: argparse.Namespace, s: Any, *, dist: bool = False, results: bool = False) -> Any:
    """Every path this command will write, checked before it touches the index."""
    from pipelines import preflight
    from pipelines.errors import ProjectError

    if (dist or results) and not s.project_dir.is_dir():
        raise ProjectError(f"{s.project_dir} is not a directory", "pass --project-dir DIR or cd into the project")
    preflight.temp_dir()
    preflight.writable_file(getattr(args, "output", None), "--output")
    preflight.writable_file(getattr(args, "summary", None), "--summary")
    if dist:
        preflight.writable_dir(s.path(s.dist_dir), "dist-dir")
    if results:
        junit = getattr(args, "junit_dir", None)
        preflight.writable_dir(Path(junit).resolve() if junit else s.path(s.results_dir), "--junit-dir" if junit else "results-dir")
    return s


def _n(count: int, noun: str) -> str:
    """1 test, 2 tests."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _spec(text: str) -> Any:
    from pipelines.release import parse

    return parse(text)


# -- verbs ---------------------------------------------------------------------------------

def cmd_build(args: argparse.Namespace) -> int:
    from pipelines.build import build

    m = build(_preflight(args, _settings(args), dist=True))
    console.write_outputs(args.output, {"name": m.name, "version": m.version, "requirement": m.requirement,
                                        "commit": m.commit, "files": [f.__dict__ for f in m.files]})
    rows = "\n".join(f"| `{f.filename}` | `{f.sha256}` |" for f in m.files)
    console.write_summary(args.summary, f"### ci-kit build: `{m.requirement}` (not uploaded)\n\n"
                                        f"Commit `{m.commit}`; {len(m.files)} file(s) built and checked.\n\n"
                                        f"| file | sha256 |\n|---|---|\n{rows}")
    if args.json:
        console.out_json(m.to_json())
    else:
        console.out(m.requirement)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from pipelines.build import Manifest
    from pipelines.push import push

    s = _preflight(args, _settings(args))
    result = push(s, Manifest.read(s.path(s.dist_dir)))
    return _emit_push(args, result)


def _emit_push(args: argparse.Namespace, result: Any) -> int:
    outputs = result.outputs()
    console.write_outputs(args.output, outputs)
    console.write_summary(args.summary, _push_summary(outputs, result.uploaded))
    if args.json:
        console.out_json(outputs)
    else:
        console.out(f"commit {outputs['commit']}")
        console.out(outputs["requirement"])
    return 0


def cmd_build_and_push(args: argparse.Namespace) -> int:
    from pipelines.jobs import build_and_push

    return _emit_push(args, build_and_push(_preflight(args, _settings(args), dist=True)))


def _push_summary(o: dict[str, Any], uploaded: list[str]) -> str:
    rows = "\n".join(f"| `{f['filename']}` | `{f['sha256']}` |" for f in o["files"])
    return (f"### ci-kit: `{o['requirement']}` on `{o['index']}`\n\n"
            f"Commit `{o['commit']}`; {len(uploaded)} file(s) uploaded, {len(o['files']) - len(uploaded)} already there.\n\n"
            f"| file | sha256 |\n|---|---|\n{rows}")


def _test_summary(report: Any, error: str = "") -> str:
    rows = "\n".join(f"| `{r.filename}` | {r.python} | {'✅ passed' if r.passed else '❌ failed'} | {r.counts['tests']} | "
                     f"{r.counts['failures'] + r.counts['errors']} | {r.counts['skipped']} | `{Path(r.junit_path).name}` |"
                     for r in report.runs)
    head = f"### ci-kit test: `{report.spec}` at `{report.commit[:12]}`\n\n"
    table = "| file | Python | result | tests | failed | skipped | JUnit |\n|---|---|---|---|---|---|---|\n" + rows
    failing = [f"- `{name}` ({r.kind}, Python {r.python})" for r in report.runs for name in r.failed_tests]
    listing = ("\n\nFailed tests:\n\n" + "\n".join(failing[:30]) + (f"\n- … and {len(failing) - 30} more" if len(failing) > 30 else "")
               if failing else "")
    return head + table + listing + (f"\n\n**{error}**" if error else "")


def _promote_summary(p: Any) -> str:
    verb = "would be promoted to" if p.dry_run else ("promoted to" if p.changed else "was already on")
    lines = [f"### ci-kit promote: `{p.spec}` {verb} `{p.target}`" + (" (FORCED)" if p.forced else ""), ""]
    lines += [f"- {g}" for g in p.gate]
    return "\n".join(lines)


@contextlib.contextmanager
def _summary_on_failure(args: argparse.Namespace) -> Iterator[None]:
    """Failed test runs still get their table in the job summary, then the error goes on."""
    from pipelines.errors import TestsFailed

    try:
        yield
    except TestsFailed as exc:
        if exc.report is not None:
            console.write_summary(args.summary, _test_summary(exc.report, exc.message))
        raise


def cmd_test(args: argparse.Namespace) -> int:
    from pipelines.test import test

    s = _preflight(args, _settings(args), results=True)
    with _summary_on_failure(args):
        report = test(s, _spec(args.requirement), commit=args.commit,
                      junit_dir=Path(args.junit_dir).resolve() if args.junit_dir else None,
                      only_python=getattr(args, "only_python", None))
    console.write_summary(args.summary, _test_summary(report))
    if args.json:
        console.out_json(report.to_json())
    else:
        for r in report.runs:
            console.out(f"{r.filename}  Python {r.python}  {'passed' if r.passed else 'FAILED'}  "
                        f"{_n(r.counts['tests'], 'test')}  {r.junit_path}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from pipelines.promote import promote

    p = promote(_preflight(args, _settings(args)), _spec(args.requirement), dry_run=args.dry_run, force=args.force)
    console.write_summary(args.summary, _promote_summary(p))
    outputs = p.outputs()
    console.write_outputs(args.output, {k: outputs[k] for k in ("requirement", "promoted_to", "changed", "forced")})
    if args.json:
        console.out_json(outputs)
    elif args.dry_run and not p.already:
        console.out(f"would promote {p.spec} to {p.target}" + (" (forced)" if p.forced else ""))
    else:
        console.out(f"{p.spec} {'promoted to' if p.changed else 'already on'} {p.target}")
    return 0


def cmd_test_and_promote(args: argparse.Namespace) -> int:
    from pipelines.jobs import test_and_promote

    with _summary_on_failure(args):
        job = test_and_promote(_preflight(args, _settings(args), results=True), _spec(args.requirement), commit=args.commit,
                               junit_dir=Path(args.junit_dir).resolve() if args.junit_dir else None)
    console.write_summary(args.summary, _test_summary(job.report) + "\n\n" + _promote_summary(job.promotion))
    outputs = job.outputs()
    console.write_outputs(args.output, {k: outputs[k] for k in ("requirement", "commit", "promoted_to", "changed")})
    if args.json:
        console.out_json(outputs)
    else:
        console.out(f"{job.promotion.spec} {'promoted to' if job.promotion.changed else 'already on'} {job.promotion.target}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.jobs import run

    outputs = run(_preflight(args, _settings(args), dist=True, results=True))
    console.write_outputs(args.output, {k: outputs[k] for k in ("requirement", "commit", "promoted_to")})
    if args.json:
        console.out_json(outputs)
    else:
        console.out(f"{outputs['requirement']} {'promoted to' if outputs['changed'] else 'already on'} {outputs['promoted_to']}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines import status

    s = _settings(args)
    if args.limit < 1:
        from pipelines.errors import UsageError

        raise UsageError(f"--limit must be 1 or more, got {args.limit}", "use --all to show every version")
    if args.name:
        data = status.project_status(s, args.name, limit=0 if args.all else args.limit)
        console.out_json(data) if args.json else console.out(status.render_project(data))
    else:
        data = status.overview(s)
        console.out_json(data) if args.json else console.out(status.render_overview(data))
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from pipelines import server

    s = _settings(args)
    state = {"start": server.start, "stop": server.stop, "status": server.status}[args.action](s)
    if args.json:
        console.out_json(state.to_json())
    else:
        console.out(server.describe(state))
    return 0 if (state.running or args.action == "stop") else 7


def cmd_config(args: argparse.Namespace) -> int:
    from pipelines import config

    if args.table:
        console.out(config.markdown_table())
        return 0
    from pipelines.tokens import credentials

    s = _settings(args)
    desc = {**s.describe(), "credentials": credentials(s)}  # what the password/token held may do, never its value
    if args.json:
        console.out_json(desc)
    else:
        for k, v in desc.items():
            console.out(f"{k:22} {v['value']!s:40} ({v['source']})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Make a stage's token; its value goes to --token-file, else raw to stdout (the one unmasked output)."""
    from pipelines import tokens

    s = _settings(args)
    if not args.stage:
        cred = tokens.credentials(s)
        console.out_json(cred) if args.json else console.out(f"{cred['value']} ({cred['source']})")
        return 0
    token, info, how = tokens.make(s, args.stage, expires=args.expires, projects=args.project)
    console.step(f"token: for {args.stage}, {how}: {info.describe()}")
    if args.token_file:
        tokens.write_token(token, args.token_file)
        console.step(f"token: written to {args.token_file} (mode 0600)")
    if args.json:
        import json

        sys.stdout.write(json.dumps({**info.to_json(), "stage": args.stage, "file": args.token_file or None,
                                     "token": None if args.token_file else token}, indent=2) + "\n")
    elif not args.token_file:
        sys.stdout.write(token + "\n")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from pipelines import image

    return image.cli(args, _settings(args))


# -- parser --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in ci-kit's two-line form (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        console.error(message, f"see `{self.prog} --help`")
        sys.exit(2)


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
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

    verb("build", cmd_build, "Build sdist + wheel of the clean HEAD, twine check them, write dist/ci-kit-build.json.")
    verb("push", cmd_push, "Upload the built files to the unstable index and verify their sha256 there.")
    for name, func, help in (
        ("test", cmd_test, "Test NAME==VERSION from the unstable index in fresh environments; attach results."),
        ("test-and-promote", cmd_test_and_promote, "Job 2: test NAME==VERSION, then promote it if every run passed."),
    ):
        sp = verb(name, func, help)
        sp.add_argument("requirement", metavar="NAME==VERSION")
        sp.add_argument("--commit", help="commit the release was built from (job 1 prints it; default HEAD)")
        sp.add_argument("--junit-dir", metavar="DIR", help="where JUnit XML goes (default: results-dir)")
        if name == "test":
            sp.add_argument("--only-python", metavar="X.Y",
                            help="run only this Python's share of the plan for python-versions (one job of a CI "
                                 "matrix per Python: the sdist is then tested once, not in every job)")
    sp = verb("promote", cmd_promote, "Gate NAME==VERSION on trusted passing results for each file's sha256, then copy exactly those bytes to testing/stable.")
    sp.add_argument("requirement", metavar="NAME==VERSION")
    sp.add_argument("--dry-run", action="store_true", help="check and say what would happen; change nothing")
    sp.add_argument("--force", action="store_true", help="promote without passing results (recorded as forced, with who)")
    verb("build-and-push", cmd_build_and_push, "Job 1: build, then push; prints the commit and NAME==VERSION.")
    verb("run", cmd_run, "Both jobs in turn on the current repository (the local end-to-end).")
    sp = verb("status", cmd_status, "Versions x indexes with test outcomes per Python and promotions.", output=False)
    sp.add_argument("name", nargs="?", metavar="NAME", help="a project (default: every project, newest versions)")
    sp.add_argument("--limit", type=int, default=10, help="newest versions shown (default 10)")
    sp.add_argument("--all", action="store_true", help="show every version")
    sp = verb("server", cmd_server, "Start, stop or show the embedded devpi-server on 127.0.0.1.", output=False)
    sp.add_argument("action", choices=["start", "stop", "status"])
    sp = verb("config", cmd_config, "Show the resolved configuration and where each value came from.", output=False)
    sp.add_argument("--table", action="store_true", help="print README's configuration table")
    sp = verb("token", cmd_token, "Make a devpi token with one stage's rights and an expiry, for a CI secret; "
              "without STAGE, say what the credential held may do.", output=False)
    sp.add_argument("stage", nargs="?", choices=["build-and-push", "push", "test", "promote", "test-and-promote"])
    sp.add_argument("--expires", default="30d", help="duration (30d, 12h, 2w) or ISO date; default 30d")
    sp.add_argument("--project", action="append", metavar="NAME", help="limit to this project (repeatable)")
    sp.add_argument("--token-file", metavar="FILE", help="write the token to FILE (0600) instead of stdout")
    sp = verb("image", cmd_image, "Build a pinned Docker image of a promoted release (hash-locked, base by digest, smoke-tested).")
    sp.add_argument("requirement", nargs="?", metavar="NAME==VERSION", help="default: the current project's version")
    if "image" in (sys.argv[1:] if argv is None else argv):  # its flags cost an import: only when used
        from pipelines.image import add_arguments

        add_arguments(sp)
    return p


def _traceback() -> None:
    """--debug's traceback, masked like everything else ci-kit prints."""
    import traceback

    console.detail(traceback.format_exc())
def _on_signals() -> None:
    """SIGTERM (CI's cancel) and SIGINT (Ctrl-C) stop the children's process groups, then
    unwind as Interrupted so that every `with` block (temporary folders) cleans up, and
    main() exits 143/130 with one line. A second signal while unwinding only stops children
    again: the cleanup that is under way must finish."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        from pipelines import runner

        first = not runner.cancelled()
        runner.cancel(signum)
        if first and not runner.starting():  # else runner raises once the new child is in hand
            raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the real command line: first take the secrets out of our environ (secretfd.py)
        from pipelines import secretfd

        secretfd.reexec_without_secrets()
    p = parser(argv)
    args, extra = p.parse_known_args(argv)
    if args.verb is None:
        p.print_help()
        return 2
    if extra:
        p.error("unrecognized arguments: " + " ".join(extra))
    args.extra = extra
    console.set_quiet(bool(getattr(args, "quiet", False)))
    debug = getattr(args, "debug", False) or bool(os.environ.get("CI_KIT_DEBUG"))
    _on_signals()
    try:
        return args.func(args)
    except Interrupted as exc:
        console.error(f"interrupted ({exc})")
        return exc.exit_code
    except CiKitError as exc:
        if debug:
            _traceback()
        console.error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    except OSError as exc:  # a file system refusing a write ci-kit could not check in advance
        from pipelines.preflight import why

        if debug:
            import traceback

            traceback.print_exc()
        where = exc.filename or "a file"
        console.error(f"cannot write {where}: {why(exc)}" if exc.errno else f"{type(exc).__name__}: {exc}",
                      "free space or point the folder (dist-dir, results-dir, TMPDIR) elsewhere, then run again")
        return 2
    except Exception as exc:  # a bug: one line, and the traceback only on request
        if debug:
            _traceback()
        console.error(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug (or CI_KIT_DEBUG=1) and report the traceback")
        return 1


if __name__ == "__main__":
    sys.exit(main())
