"""Where the product's code runs in job 2: a minimal environment, out of reach of ci-kit's secrets.

Why: the product's tests import every dependency the product has, and any of them may be
malicious (a hijacked package, a typosquat). They run next to ci-kit, which holds the devpi
password and a login token that can upload, attach results and promote. So the test
command (or tox) runs in a Box:

* its environment is built like tox's pass_env: a short allow-list (PATH, locale, TZ,
  TERM, proxy and CA settings, CI), the product's `pass-env` globs, ci-kit's probe
  variables, and a HOME and TMPDIR of its own. Never a CI_KIT_* variable, never a value
  that carries a secret ci-kit knows;
* in its own PID namespace (ci-kit and its ancestors are invisible, so there is no
  /proc/<pid>/environ, cmdline or mem of theirs to read, and every process the tests leave
  behind dies with them) and mount namespace, where ci-kit's home (~/.netrc, ~/.pypirc,
  ~/.devpi, the embedded server's password files...) is covered by an empty tmpfs and each
  password file by /dev/null (sandbox_init.py arranges this inside the namespaces);
* as root ("user" mode): as a throwaway uid chosen per run (no passwd entry, like
  systemd's DynamicUser), with no capabilities and no_new_privs, so root's files stay
  closed and concurrent runs cannot touch each other's folders; the run's clone and its
  box (home, tmp, outputs) are given to that uid;
* not root ("namespace" mode): inside a user namespace whose mounts are locked by a
  second, nested one, so the covering mounts cannot be undone;
* neither possible ("none"): the minimal environment only, with a warning.

Steps that run the product's code as ci-kit itself (its build backend in job 1, the build of
an sdist being installed) cannot change identity (they need ci-kit's uv cache and index
credentials); confine() still runs them where ci-kit is invisible and the password files
are covered.

CI_KIT_SANDBOX=auto|user|namespace|none picks the mode (auto: user as root, else
namespace, else none). The outputs the tests write (JUnit, probe, metrics) go to the box
and are copied back afterwards as plain files, never through a link, masked. See
docs/security.md for the threat model.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import os
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_kit import console, runner
from ci_kit.config import SANDBOX_MODES as MODES
from ci_kit.errors import EnvFailed, UsageError

# tox's pass_env idea: what a test run needs from the machine, and nothing that authorises.
BASE_ENV = ("PATH", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "CI", "SOURCE_DATE_EPOCH",
            "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
SANDBOX_USER = "ci-kit-sandbox"  # USER/LOGNAME of the throwaway uid, which has no passwd entry
_ID_RANGE = (1 << 24, (1 << 31) - 2)  # far above login and system users
_INIT = Path(__file__).with_name("sandbox_init.py")


_secret_files: set[str] = set()  # password files of this process, hidden from build steps too (confine)


def note_secret_files(paths: Sequence[str]) -> None:
    """Remember the password files of the settings in use, for confine()."""
    for p in paths:
        try:
            _secret_files.add(str(Path(p).expanduser().resolve(strict=True)))
        except (OSError, RuntimeError):
            continue


def confine(argv: Sequence[str]) -> list[str]:
    """argv for a step that runs the product's code as ci-kit (its build backend in job 1,
    the build of an sdist being installed): in PID and mount namespaces where ci-kit and its
    ancestors are invisible and the password files are /dev/null, but as ci-kit's user, with
    its home (uv's cache, an index's netrc) left alone. Unchanged where the mode is none
    or the machine forbids namespaces."""
    argv = [str(a) for a in argv]
    m = mode()
    root = os.geteuid() == 0
    if m == "none" or not _namespaces(user=not root):
        return argv
    import sys

    if root:
        ns, inner = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"], []
    else:
        ns = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"]
        inner = ["unshare", "--user", "--map-root-user", "--mount", "--"]
    spec = {"cover": [], "keep": [], "hide": sorted(_secret_files)}
    return [*ns, "--", sys.executable, "-I", "-S", str(_INIT), json.dumps(spec), "--", *inner, *argv]


def mode() -> str:
    """The isolation in use, from CI_KIT_SANDBOX (default auto) and what the machine allows."""
    asked = os.environ.get("CI_KIT_SANDBOX", "") or "auto"
    if asked not in MODES:
        raise UsageError(f"environment: CI_KIT_SANDBOX must be one of {', '.join(MODES)}, got {asked!r}",
                         "leave it unset (auto) unless the machine forbids namespaces; see docs/security.md")
    if asked == "auto":
        import shutil

        if os.geteuid() == 0 and shutil.which("setpriv"):
            return "user"
        return "namespace" if os.geteuid() != 0 and _namespaces(user=True) else "none"
    if asked == "user" and os.geteuid() != 0:
        raise UsageError("CI_KIT_SANDBOX=user needs ci-kit to run as root", "use namespace (or auto) as another user")
    return asked


@functools.cache
def _namespaces(user: bool) -> bool:
    """Whether unshare can make the namespaces here (a container may forbid it)."""
    argv = ["unshare", *(["--user", "--map-root-user"] if user else []), "--pid", "--fork", "--mount-proc", "true"]
    try:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _mapped_ids() -> list[tuple[int, int]]:
    """Ranges [lo, hi) of ids usable here: inside a container only what its maps allow."""
    ranges: list[tuple[int, int]] | None = None
    for name in ("uid_map", "gid_map"):
        try:
            rows = [tuple(int(x) for x in line.split()) for line in Path(f"/proc/self/{name}").read_text().splitlines()]
        except (OSError, ValueError):
            rows = [(0, 0, 1 << 32)]
        mine = [(first, first + count) for first, _, count in rows]
        ranges = mine if ranges is None else [(max(a, c), min(b, d)) for a, b in ranges for c, d in mine if max(a, c) < min(b, d)]
    return ranges or []


def throwaway_id() -> int:
    """A uid (= gid) that no account and, almost surely, no other run uses."""
    import grp
    import pwd
    import secrets

    lo_all, hi_all = _ID_RANGE
    spans = [(max(lo, lo_all), min(hi, hi_all)) for lo, hi in _mapped_ids() if max(lo, lo_all) < min(hi, hi_all)]
    for lo, hi in sorted(spans, key=lambda s: s[1] - s[0], reverse=True)[:1]:
        for _ in range(50):
            n = lo + secrets.randbelow(hi - lo)
            try:
                pwd.getpwuid(n)
                continue
            except KeyError:
                pass
            try:
                grp.getgrgid(n)
                continue
            except KeyError:
                return n
    console.step("test: WARNING: no free id range here; the product's tests run as nobody (shared with other runs)")
    return pwd.getpwnam("nobody").pw_uid


def product_env(pass_env: Sequence[str], secret_files: Sequence[str], extra: Mapping[str, str], *, home: Path, tmp: Path,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of the product's test run (see the module docstring)."""
    base = os.environ if base is None else base
    patterns = (*BASE_ENV, *pass_env)
    unsafe = set(secret_files)
    secrets = [s for s in console.secrets() if s]
    env: dict[str, str] = {}
    for name, value in base.items():
        if name.startswith("CI_KIT_") or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if value in unsafe or any(s in value for s in secrets):
            console.step(f"test: not passing {name} to the product's tests: it carries one of ci-kit's secrets")
            continue
        env[name] = value
    env.update({"HOME": str(home), "TMPDIR": str(tmp)})
    env.update(extra)
    return env


def _hidden(secret_files: Sequence[str]) -> list[str]:
    """Secret files outside ci-kit's home (those inside vanish with it), by real path."""
    found: list[str] = []
    for p in secret_files:
        try:
            found.append(str(Path(p).expanduser().resolve(strict=True)))
        except (OSError, RuntimeError):
            continue
    return found


def _covers(keep: Sequence[str], uid: int | None) -> list[str]:
    """Folders covered by an empty tmpfs in the box: ci-kit's home (by HOME and by the
    account's entry), and for a throwaway uid also any folder on the way to a kept path
    that others may not traverse (a 0700 /root holding a pyenv)."""
    import pwd

    found = {os.path.realpath(os.path.expanduser("~"))}
    with contextlib.suppress(KeyError):  # a uid without an account entry
        found.add(os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir))
    if uid is not None:
        for path in keep:
            for parent in reversed(Path(path).parents):
                try:
                    if not os.stat(parent).st_mode & 0o001:
                        found.add(str(parent))
                        break
                except OSError:
                    break
    found = {f for f in found if f not in ("", "/") and os.path.isdir(f) and not any(f == k or f.startswith(k + "/") for k in keep)}
    return sorted(f for f in found if not any(f.startswith(o + "/") for o in found))  # outermost only


def _keep(pythons: Sequence[str], *run_dirs: Path) -> list[str]:
    """What the run needs even if it lies under ci-kit's home: the run's temporary folder
    (clone, environment, box), ci-kit's environment and package (the probe, tox), and the
    prefix of every interpreter the environments are made from (say, a pyenv under ~)."""
    import sys

    from ci_kit import envs

    keep = {os.path.realpath(str(p)) for p in (*run_dirs, sys.prefix, sys.base_prefix, Path(__file__).parent)}
    for version in pythons:
        try:
            keep.add(os.path.dirname(os.path.dirname(os.path.realpath(envs.find_python(version)))))
        except UsageError:
            continue
    return sorted(keep)


class Box:
    """One test run's sandbox: its home, tmp and output folders, and how to launch in it."""

    def __init__(self, pass_env: Sequence[str], pythons: Sequence[str], secret_files: Sequence[str], root: Path,
                 clone: Path) -> None:
        self.pass_env, self.pythons, self.secret_files = pass_env, pythons, secret_files
        self.mode = mode()
        self.root, self.clone = root, clone
        self.home, self.tmp, self.out = root / "home", root / "tmp", root / "out"
        for d in (self.home, self.tmp, self.out):
            d.mkdir(parents=True, exist_ok=True)
        self._outputs: dict[Path, Path] = {}
        self.uid: int | None = None
        if self.mode == "user":
            self.uid = throwaway_id()
            self._give()

    def _give(self) -> None:
        """Let the throwaway uid reach its folders: traverse (not list) the run's temporary
        folder, own its clone and box subfolders. The box root stays ci-kit's, so the
        outputs folder cannot be swapped for a link."""
        for d in {self.root.parent, self.clone.parent, self.root}:
            d.chmod(stat.S_IMODE(d.stat().st_mode) | 0o711)
        for top in (self.clone, self.home, self.tmp, self.out):
            self.give(top)

    def give(self, top: Path) -> None:
        """Make a folder the tests may write (a clone, tox's work folder) the box uid's."""
        if self.uid is None:
            return
        for dirpath, dirnames, filenames in os.walk(top):
            for n in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, n), self.uid, self.uid, follow_symlinks=False)
        os.chown(top, self.uid, self.uid)

    def output(self, path: Path) -> Path:
        """Where the tests write what ci-kit expects at path; copied there by run()."""
        inside = self.out / f"{len(self._outputs)}-{path.name}"  # numbered: two outputs may share a name
        self._outputs[inside] = path
        return inside

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = product_env(self.pass_env, self.secret_files, extra, home=self.home, tmp=self.tmp)
        if self.uid is not None:
            env.update({"USER": SANDBOX_USER, "LOGNAME": SANDBOX_USER})
        return env

    def argv(self, argv: Sequence[str]) -> list[str]:
        """argv wrapped in the namespaces and identity of this box's mode."""
        argv = [str(a) for a in argv]
        if self.mode == "none":
            console.step("test: WARNING: CI_KIT_SANDBOX=none: the product's tests run as ci-kit's own user, "
                         "with a minimal environment only (see docs/security.md)")
            return argv
        import shutil

        missing = [t for t in ("unshare", "setpriv" if self.mode == "user" else "") if t and not shutil.which(t)]
        if missing:
            raise EnvFailed(f"{missing[0]} (util-linux) is needed to isolate the product's tests ({self.mode} mode)",
                            "install util-linux, or set CI_KIT_SANDBOX=none and read docs/security.md first")
        if self.mode == "user":
            drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--no-new-privs", "--"]
            if not _namespaces(user=False):
                console.step("test: WARNING: no PID/mount namespaces here; the tests run as a throwaway uid only, "
                             "so secret files are protected by their permissions alone")
                return [*drop, *argv]
            ns = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
            inner = drop
        else:
            ns = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc"]
            inner = ["unshare", "--user", "--map-root-user", "--mount", "--"]  # locks the mounts made below
        import sys

        keep = _keep(self.pythons, self.root.parent, self.clone)
        spec = {"cover": _covers(keep, self.uid), "keep": keep, "hide": _hidden(self.secret_files)}
        return [*ns, "--", sys.executable, "-I", "-S", str(_INIT), json.dumps(spec), "--", *inner, *argv]

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """Run the product's command in the box, then bring its outputs back."""
        console.step(f"test: isolation: {self.mode}" + (f" (uid {self.uid})" if self.uid is not None else ""))
        try:
            return runner.run(self.argv(argv), cwd=cwd, env=env, show=False)
        finally:
            self._end()

    def _end(self) -> None:
        if self.uid is not None and not _namespaces(user=False):  # with a PID namespace, all died with it
            try:  # kill(-1) as that uid: every process it left behind, and nothing else
                runner.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "kill", "-KILL", "-1"], show=False)
            except OSError:
                console.step(f"test: WARNING: could not stop what the tests left running as uid {self.uid}")
        for inside, dest in self._outputs.items():
            dest.unlink(missing_ok=True)
            data = _read_plain(inside)
            if data is not None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(console.mask(data.decode("utf-8", "surrogateescape")), encoding="utf-8", errors="surrogateescape")


def _read_plain(path: Path) -> bytes | None:
    """A file the tests wrote, read only if it is a plain file of its own (no symlink, no
    hard link to something else): ci-kit may be root, and must not be made to read for them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        return fh.read(50_000_000)
