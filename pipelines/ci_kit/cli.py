"""The `ci-kit` command line: argument parsing and printing only; stages live in their
modules and are imported when their verb runs, so `ci-kit --help` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ci_kit import console, summary
from ci_kit.contract import pick
from ci_kit.errors import CiKitError, Interrupted


def _settings(args: argparse.Namespace) -> Any:
    from ci_kit import config

    flags: dict[str, Any] = {}
    for key in config.KEYS:
        value = getattr(args, f"cfg_{key.attr}", None)
        if value is not None:
            flags[key.name] = value
    if getattr(args, "python_list", None):
        flags["python-versions"] = ",".join(args.python_list)
    if getattr(args, "password_file", None):
        flags["password-file"] = args.password_file
    from ci_kit import sandbox, secretfd

    settings = config.load(Path(args.project_dir), flags, environ={**os.environ, **secretfd.inherited()})
    sandbox.note_secret_files(settings.password_files)
    return settings


def _preflight(args: argparse.Namespace, s: Any, *, dist: bool = False, results: bool = False) -> Any:
    """Every path this command will write, checked before it touches the index."""
    from ci_kit import preflight
    from ci_kit.errors import ProjectError

    if (dist or results) and not s.project_dir.is_dir():
        raise ProjectError(f"{s.project_dir} is not a directory", "pass --project-dir DIR or cd into the project")
    preflight.temp_dir()
    preflight.writable_file(getattr(args, "output", None), "--output")
    preflight.writable_file(getattr(args, "summary", None), "--summary")
    if dist:
        preflight.writable_dir(s.path(s.build.dist_dir), "dist-dir")
    if results:
        junit = getattr(args, "junit_dir", None)
        preflight.writable_dir(Path(junit).resolve() if junit else s.path(s.test.results_dir), "--junit-dir" if junit else "results-dir")
    return s


def _index(settings: Any, login: bool | str = True) -> Any:
    """The one Index of this command, made here at the top and handed to every stage."""
    from ci_kit.index import Index

    return Index.from_settings(settings.index, login=login)


def _n(count: int, noun: str) -> str:
    """1 test, 2 tests."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _spec(text: str) -> Any:
    from ci_kit.release import parse

    return parse(text)


# -- verbs ---------------------------------------------------------------------------------

def cmd_build(args: argparse.Namespace) -> int:
    from ci_kit.build import build

    s = _preflight(args, _settings(args), dist=True)
    m = build(s.project_dir, s.build)
    console.write_summary(args.summary, summary.build(m))
    return _emit(args, "build", m.to_json(), m.requirement)


def cmd_push(args: argparse.Namespace) -> int:
    from ci_kit.build import Manifest
    from ci_kit.push import push

    s = _preflight(args, _settings(args))
    dist = s.path(s.build.dist_dir)
    result = push(_index(s), s.index, Manifest.read(dist), dist)
    return _emit_push(args, result, "push")


def _emit(args: argparse.Namespace, command: str, data: Any, *lines: str) -> int:
    """A command's result: KEY=VALUE lines for --output, then --json or the lines for people."""
    console.write_outputs(args.output, pick(data, command))
    if args.json:
        console.out_json(data)
    else:
        for line in lines:
            console.out(line)
    return 0


def _emit_push(args: argparse.Namespace, result: Any, command: str) -> int:
    data = result.to_json()
    console.write_summary(args.summary, summary.push(data, result.uploaded))
    return _emit(args, command, data, f"commit {data['commit']}", data["requirement"])


def cmd_build_and_push(args: argparse.Namespace) -> int:
    from ci_kit.jobs import build_and_push

    s = _preflight(args, _settings(args), dist=True)
    return _emit_push(args, build_and_push(_index(s), s), "build-and-push")


@contextlib.contextmanager
def _summary_on_failure(args: argparse.Namespace) -> Iterator[None]:
    """Failed test runs still get their table in the job summary, then the error goes on."""
    from ci_kit.errors import ProductTestsFailed

    try:
        yield
    except ProductTestsFailed as exc:
        if exc.report is not None:
            console.write_summary(args.summary, summary.run_report(exc.report, exc.message))
        raise


def cmd_test(args: argparse.Namespace) -> int:
    from ci_kit.testrun import pythons_to_run, run_tests

    if args.dist is None and not args.requirement:
        from ci_kit.errors import UsageError

        raise UsageError("NAME==VERSION is required (or --dist DIR: the built files)",
                         "`ci-kit test churn-model==1.2.0` tests a release on the index, `ci-kit test --dist dist` the built files")
    spec: Any = _spec(args.requirement) if args.requirement else None  # bad input is an error before any work
    s = _preflight(args, _settings(args), results=True)
    pythons_to_run(s.test.python_versions, args.only_python)  # a usage error before the index is asked
    junit_dir = Path(args.junit_dir).resolve() if args.junit_dir else None
    with _summary_on_failure(args):
        if args.dist is not None:  # a pull request's built files: no index, no credential, nothing attached
            from ci_kit.jobs import run_local_tests

            report = run_local_tests(s, Path(args.dist).resolve(), spec, commit=args.commit, junit_dir=junit_dir,
                                     only_python=args.only_python)
        else:
            report = run_tests(_index(s), s.index, s.test, s.project_dir, spec, commit=args.commit,
                               junit_dir=junit_dir, only_python=args.only_python, secret_files=s.password_files, quality=s.quality)
    console.write_summary(args.summary, summary.run_report(report))
    if args.json:
        console.out_json(report.to_json())
    else:
        for r in report.to_json()["runs"]:
            console.out(f"{r['filename']}  Python {r['python']}  {'passed' if r['passed'] else 'FAILED'}  "
                        f"{_n(r['counts']['tests'], 'test')}  {r['junit_path']}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from ci_kit.promote import promote

    s = _preflight(args, _settings(args))
    spec = _spec(args.requirement)  # bad input is an error before the index is contacted
    p = promote(_index(s), s.index, s.test.python_versions, spec, dry_run=args.dry_run, force=args.force, quality=s.quality)
    console.write_summary(args.summary, summary.promote(p))
    if args.dry_run and not p.already:
        return _emit(args, "promote", p.to_json(), f"would promote {p.spec} to {p.target}" + (" (forced)" if p.forced else ""))
    return _emit(args, "promote", p.to_json(), f"{p.spec} {'promoted to' if p.changed else 'already on'} {p.target}")


def cmd_test_and_promote(args: argparse.Namespace) -> int:
    from ci_kit.jobs import test_and_promote

    with _summary_on_failure(args):
        s = _preflight(args, _settings(args), results=True)
        spec = _spec(args.requirement)  # bad input is an error before the index is contacted
        job = test_and_promote(_index(s), s, spec, commit=args.commit,
                               junit_dir=Path(args.junit_dir).resolve() if args.junit_dir else None)
    console.write_summary(args.summary, summary.run_report(job.report) + "\n\n" + summary.promote(job.promotion))
    p = job.promotion
    return _emit(args, "test-and-promote", job.to_json(), f"{p.spec} {'promoted to' if p.changed else 'already on'} {p.target}")


def cmd_run(args: argparse.Namespace) -> int:
    from ci_kit.jobs import run

    s = _preflight(args, _settings(args), dist=True, results=True)
    data = run(_index(s), s).to_json()
    return _emit(args, "run", data, f"{data['requirement']} {'promoted to' if data['changed'] else 'already on'} {data['promoted_to']}")


def cmd_status(args: argparse.Namespace) -> int:
    from ci_kit import status

    s = _settings(args)
    if args.limit < 1:
        from ci_kit.errors import UsageError

        raise UsageError(f"--limit must be 1 or more, got {args.limit}", "use --all to show every version")
    if args.name:
        project = status.project_status(_index(s, login=False), s.index, args.name, limit=0 if args.all else args.limit,
                                         headline=str(s.quality.rules.get("headline", "")))
        console.out_json(project) if args.json else console.out(status.render_project(project))
    else:
        overview = status.overview(_index(s, login=False), s.index)
        console.out_json(overview) if args.json else console.out(status.render_overview(overview))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Model quality per version as one HTML page (and --summary Markdown): quality/report.py."""
    from ci_kit import preflight
    from ci_kit.errors import NotFound
    from ci_kit.quality import history, report

    s = _preflight(args, _settings(args))
    preflight.writable_file(args.html, "--html", make_parents=True)  # report.write makes the folders
    h = history.gather(_index(s, login=False), s, args.name)
    if args.compare and h.get(args.compare) is None:
        raise NotFound(f"{h.name}=={args.compare} is not on {', '.join(h.indexes.values())}", "pick a version `ci-kit status` lists")
    path = report.write(Path(args.html).expanduser().resolve() if args.html else s.path(s.test.results_dir) / f"report-{h.name}.html",
                        report.html(h, s.quality, args.compare))
    console.write_summary(args.summary, report.markdown(h))
    if args.json:
        console.out_json({"name": h.name, "html": str(path), "versions": [v.__dict__ for v in h.versions]})
    else:
        console.out(str(path))
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from ci_kit import server

    s = _settings(args)
    if args.action == "start":
        state = server.start(s, replica_of=args.replica_of, primary=args.primary)
    else:
        state = {"stop": server.stop, "status": server.status}[args.action](s)
    if args.json:
        console.out_json(state.to_json())
    else:
        console.out(server.describe(state))
    return 0 if (state.running or args.action == "stop") else 7


def cmd_config(args: argparse.Namespace) -> int:
    from ci_kit import config

    if args.table:
        console.out(config.markdown_table())
        return 0
    from ci_kit.tokens import credentials

    s = _settings(args)
    desc = {**s.describe(), "credentials": credentials(s.index)}  # what the password/token held may do, never its value
    if args.json:
        console.out_json(desc)
    else:  # grouped as the settings object is (settings.index, settings.test ...)
        group = ""
        for key in config.KEYS_BY_GROUP:
            if key.group != group:
                group = key.group
                console.out(f"[{group}]")
            v = desc[key.name]
            console.out(f"  {key.name:22} {v['value']!s:40} ({v['source']})")
        console.out(f"{'credentials':24} {desc['credentials']['value']!s:40} ({desc['credentials']['source']})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Make a stage's token; its value goes to --token-file, else raw to stdout (the one unmasked output)."""
    from ci_kit import tokens

    s = _settings(args)
    if not args.stage:
        cred = tokens.credentials(s.index)
        console.out_json(cred) if args.json else console.out(f"{cred['value']} ({cred['source']})")
        return 0
    token, info, how = tokens.make(s.index, args.stage, expires=args.expires, projects=args.project)
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
    from ci_kit.image import ImageRequest, build_image
    from ci_kit.image.result import OUTPUT_KEYS

    s = _settings(args)
    request = ImageRequest(push=args.push, tags=tuple(args.tag), from_unstable=args.from_unstable,
                           allow_unpinned_base=args.allow_unpinned_base, smoke=args.smoke, commit=args.commit or "",
                           artifacts_dir=args.artifacts_dir or "", audit=args.audit, no_cache=args.no_cache)
    res = build_image(s, _image_spec(args, s), request)
    data = res.to_json()
    console.write_outputs(args.output, {k: data[k] for k in OUTPUT_KEYS})
    console.write_summary(args.summary, summary.image(res))
    if args.json:
        console.out_json(data)
    else:
        console.out(res.reference)
    return 0


def _image_spec(args: argparse.Namespace, s: Any) -> Any:
    """NAME==VERSION as given, else the release `ci-kit build` last made here."""
    if args.requirement:
        return _spec(args.requirement)
    from ci_kit.build import Manifest

    return _spec(Manifest.read(s.path(s.dist_dir)).requirement)


# -- parser --------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    from ci_kit import cliargs

    return cliargs.parser({"build": cmd_build, "push": cmd_push, "test": cmd_test, "test-and-promote": cmd_test_and_promote,
                           "promote": cmd_promote, "build-and-push": cmd_build_and_push, "run": cmd_run,
                           "status": cmd_status, "report": cmd_report, "server": cmd_server, "config": cmd_config, "token": cmd_token,
                           "image": cmd_image})


def _traceback() -> None:
    """--debug's traceback, masked like everything else ci-kit prints."""
    import traceback

    console.detail(traceback.format_exc())



def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the real command line: first take the secrets out of our environ (secretfd.py)
        from ci_kit import secretfd

        secretfd.reexec_without_secrets()
    p = parser()
    args, extra = p.parse_known_args(argv)
    if args.verb is None:
        p.print_help()
        return 2
    if extra:
        p.error("unrecognized arguments: " + " ".join(extra))
    console.set_quiet(bool(getattr(args, "quiet", False)))
    debug = getattr(args, "debug", False) or bool(os.environ.get("CI_KIT_DEBUG"))
    from ci_kit import runner  # here, not at the top: `ci-kit --help` never needs it

    runner.stop_on_signals()
    verb: Callable[[argparse.Namespace], int] = args.func  # each verb's cmd_* (set by parser())
    try:
        return verb(args)
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
        from ci_kit.preflight import why

        if debug:
            import traceback

            traceback.print_exc()
        where = exc.filename or "a file"
        console.error(f"cannot write {where}: {why(exc)}" if exc.errno else f"{type(exc).__name__}: {exc}",
                      "free space or point the folder (dist-dir, results-dir, TMPDIR) elsewhere, then run again")
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: one line, and the traceback only on request
        if debug:
            _traceback()
        console.error(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug (or CI_KIT_DEBUG=1) and report the traceback")
        return 1


if __name__ == "__main__":
    sys.exit(main())
