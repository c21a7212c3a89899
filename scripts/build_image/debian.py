"""Debian root filesystems made by mmdebstrap, as ``FROM debian:<suite>-slim`` plus
the stage's ``apt-get install --no-install-recommends`` line would make them.

The slim images are a minbase with dpkg told to leave out documentation, manuals
and translations (debuerreotype's slimify); the same ``path-exclude`` rules are
given here, so the two builds install the same packages and the same files.
Packages come from the archive this machine's apt uses (its sources files name
it: nothing here names a host), for the image's suite, its -updates and its
-security twin, as the Debian images' own sources.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The apt line a stage may start with; its packages go to mmdebstrap's --include.
APT_LINE = re.compile(
    r"apt-get update && apt-get install -y --no-install-recommends "
    r"(?P<packages>[a-z0-9][a-z0-9.+\- ]*?) && rm -rf /var/lib/apt/lists/\*"
)
BASE = re.compile(r"debian:(?P<suite>[a-z]+)-slim")
#: debuerreotype's slim images: what dpkg leaves out (copyright files stay).
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/man/*",
)
#: Merged /usr as the Debian images have it, with the usr-is-merged package instead of
#: usrmerge (which would bring perl along).
MERGED_USR_HOOK = "--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class DebianError(RuntimeError):
    """A root filesystem cannot be made here; the message says why."""


@dataclass(frozen=True)
class Base:
    suite: str
    packages: tuple[str, ...]

    @property
    def key(self) -> str:
        text = "\n".join(
            [self.suite, *sorted(self.packages), *SLIM_DPKG_OPTIONS, MERGED_USR_HOOK, arch()]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def arch() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return done.stdout.strip() or os.uname().machine


def base_of(image: str, apt_line: str | None) -> Base:
    """The Debian base a stage's FROM and first RUN describe."""
    match = BASE.fullmatch(image)
    if not match:
        raise DebianError(f"FROM {image}: only debian:<suite>-slim bases can be built here")
    packages: tuple[str, ...] = ()
    if apt_line is not None:
        found = APT_LINE.fullmatch(apt_line)
        if not found:
            raise DebianError(f"RUN {apt_line}: not the apt-get line this builder understands")
        packages = tuple(found["packages"].split())
    return Base(match["suite"], packages)


def _archives() -> tuple[str, str, str]:
    """(archive URI, security archive URI, keyring) from this machine's apt sources."""
    main = security = keyring = ""
    files: list[Path] = []
    for item in APT_SOURCES:
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix in (".list", ".sources"))
        elif item.is_file():
            files.append(item)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (m[1].lower(), m[2].strip())
                    for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)
                )
                if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
                    continue
                uri, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
                if not uri:
                    continue
                if any(s.endswith("-security") for s in suites):
                    security = security or uri[0]
                elif any("-" not in s for s in suites):
                    main = main or uri[0]
                keyring = keyring or fields.get("signed-by", "")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    if words[2].endswith("-security") or words[2].endswith("/updates"):
                        security = security or words[1]
                    elif "-" not in words[2]:
                        main = main or words[1]
    if not main:
        raise DebianError("no Debian archive in this machine's apt sources (/etc/apt)")
    return main, security, keyring


def sources_file(suite: str, target: Path) -> Path:
    """A deb822 sources file for ``suite``, -updates and -security."""
    main, security, keyring = _archives()
    signed = f"Signed-By: {keyring}\n" if keyring else ""
    text = f"Types: deb\nURIs: {main}\nSuites: {suite} {suite}-updates\nComponents: main\n{signed}"
    if security:
        text += (
            f"\nTypes: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n{signed}"
        )
    target.write_text(text, encoding="utf-8")
    return target


def ensure_mmdebstrap() -> str:
    found = shutil.which("mmdebstrap")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DebianError(
            "mmdebstrap is missing (Debian package mmdebstrap; installing it needs root)"
        )
    print("build-image: installing mmdebstrap (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"],
        check=True,
        env=env,
        stdout=sys.stderr,
    )
    return shutil.which("mmdebstrap") or "mmdebstrap"


def rootfs_tar(base: Base, cache: Path) -> Path:
    """The base's root filesystem as a tar, made once and kept under ``cache``."""
    out = cache / f"rootfs-{base.suite}-{base.key}.tar"
    if out.is_file():
        return out
    if os.geteuid() != 0:
        raise DebianError("making a Debian root filesystem needs root (mmdebstrap --mode=root)")
    mmdebstrap = ensure_mmdebstrap()
    cache.mkdir(parents=True, exist_ok=True)
    sources = sources_file(base.suite, cache / f"{base.suite}.sources")
    partial = out.with_suffix(".partial.tar")
    argv = [
        mmdebstrap,
        "--mode=root",
        "--variant=minbase",
        "--format=tar",
        "--quiet",
        "--skip=output/dev",  # the runtime mounts its own /dev
        '--aptopt=APT::Install-Recommends "false"',
        MERGED_USR_HOOK,
        *(f"--dpkgopt={option}" for option in SLIM_DPKG_OPTIONS),
    ]
    if base.packages:
        argv.append("--include=" + ",".join(base.packages))
    argv += [base.suite, str(partial), str(sources)]
    print(
        f"build-image: mmdebstrap {base.suite} minbase + {' '.join(base.packages)}", file=sys.stderr
    )
    with tempfile.TemporaryDirectory(prefix="libmount-", dir=cache) as scratch:
        # mmdebstrap mounts with mount(8), whose libmount would otherwise leave its
        # table (utab) in the machine's /run/mount.
        env = {**os.environ, "LIBMOUNT_UTAB": str(Path(scratch) / "utab")}
        done = subprocess.run(argv, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise DebianError(f"mmdebstrap failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    partial.replace(out)
    return out
