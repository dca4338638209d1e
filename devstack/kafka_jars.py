"""What the Kafka broker needs before it can start: a Java 17+ runtime, and the broker's jars,
resolved once through Maven (``devstack/kafka/pom.xml``) into a cache outside the checkout.

The cache is ``$BILLING_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/billing`` (``~/.cache/billing``),
one folder per pom content (``kafka-<version>-<hash>/libs``): every checkout, worktree and CI
clone on the machine shares the jars, ``make clean`` keeps them, and a changed pom never meets
stale jars. Maven keeps its own copy in its local repository (``~/.m2``, or what the user's
``settings.xml`` says), so a deleted cache is rebuilt without the network.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

from devstack import StartupError

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
MIN_JAVA = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
"""Pinned, not Maven's default for the prefix (2.8 in Maven 3.8): the same copy on every machine.
3.8.1 runs on Maven 3.6.3 and newer."""
RESOLVE_TIMEOUT = 900.0
_COMPLETE = ".complete"


class JavaUnavailable(StartupError):
    """No Java runtime was found, or it is older than the broker needs (17)."""


class JarsUnavailable(StartupError):
    """Maven is missing, or it could not resolve the broker's jars."""


def kafka_version() -> str:
    """The pinned Kafka version: ``kafka.version`` in the pom."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(POM).find("m:properties/m:kafka.version", namespace)
    assert version is not None and version.text, f"{POM} has no kafka.version property"
    return version.text.strip()


def cache_dir() -> Path:
    """Where the jars of this pom live (or will live) on this machine."""
    root = os.environ.get("BILLING_KAFKA_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "billing")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:10]
    return Path(root) / f"kafka-{kafka_version()}-{digest}"


def jars_cached() -> bool:
    return (cache_dir() / "libs" / _COMPLETE).exists()


def find_java() -> Path:
    """The ``java`` of ``$JAVA_HOME``, else the one on ``PATH``, if it is 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is None or not candidate.exists():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise JavaUnavailable("the Kafka broker needs Java 17 or newer, and no `java` was found "
                              "(on PATH or in $JAVA_HOME); install a JDK or JRE 17+, e.g. "
                              "`apt-get install openjdk-17-jre-headless`")
    try:
        probe = subprocess.run([str(candidate), "-version"], capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise JavaUnavailable(f"{candidate} -version failed: {error}") from None
    version = parse_java_version(probe.stderr + probe.stdout)
    if version is None or version < MIN_JAVA:
        shown = "an unknown version" if version is None else f"Java {version}"
        raise JavaUnavailable(f"the Kafka broker needs Java {MIN_JAVA} or newer; {candidate} is "
                              f"{shown}. Point JAVA_HOME at a JDK or JRE {MIN_JAVA}+.")
    return candidate


def parse_java_version(banner: str) -> int | None:
    """The feature release in ``java -version``'s banner: 8 for "1.8.0_392", 17 for "17.0.15"."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def ensure_jars(maven_args: Sequence[str] = ()) -> Path:
    """The folder of the broker's jars, resolved through Maven on first use.

    ``maven_args`` are added to the ``mvn`` command line (``-s settings.xml``, ``-o``, ...).
    Holds a file lock meanwhile: Maven's local repository is not safe for two concurrent runs,
    and a second test session on the machine then waits and reuses the first one's jars."""
    target = cache_dir()
    libs = target / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsUnavailable("the Kafka broker's jars are not cached yet and `mvn` (Maven 3) was "
                              f"not found to fetch them into {target}; install Maven, e.g. "
                              "`apt-get install maven`")
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (libs / _COMPLETE).exists():
            _resolve(mvn, target, maven_args)
    return libs


def _resolve(mvn: str, target: Path, maven_args: Sequence[str]) -> None:
    # Into a scratch folder first, renamed when complete: an interrupted run leaves no half cache.
    scratch = target / f"libs.{os.getpid()}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    command = [mvn, "-B", "-q", "-f", str(POM), *maven_args,
               f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={scratch}"]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise JarsUnavailable(f"Maven could not fetch the Kafka jars: {error}") from None
    if run.returncode != 0 or not any(scratch.glob("kafka_2.13-*.jar")):
        shutil.rmtree(scratch, ignore_errors=True)
        output = "\n".join(_maven_errors(run.stdout + run.stderr))
        raise JarsUnavailable(f"Maven could not resolve the Kafka broker's jars "
                              f"(`{' '.join(command)}` exited with {run.returncode}):\n{output}")
    (scratch / _COMPLETE).touch()
    scratch.rename(target / "libs")


def _maven_errors(output: str) -> list[str]:
    """Maven's own reasons: its first ``[ERROR]`` lines, up to the blank one before the advice."""
    errors: list[str] = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines():
        if line.strip() == "[ERROR]" and errors:
            break
        if line.startswith("[ERROR] "):
            errors.append(line)
    return errors[:5]
