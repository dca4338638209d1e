"""What a machine without Java, with an old Java, or where Maven cannot resolve the jars gets:
a typed error that says what to do, before any broker process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import StartupError
from devstack.kafka import check_kafka_prerequisites, kafka_available, start_kafka
from devstack.kafka_jars import (
    JarsUnavailable,
    JavaUnavailable,
    cache_dir,
    ensure_jars,
    find_java,
    kafka_version,
    parse_java_version,
)


@pytest.mark.parametrize(("banner", "version"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
    ("no version here", None),
])
def test_java_version_banner(banner: str, version: int | None) -> None:
    assert parse_java_version(banner) == version


def test_no_java_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaUnavailable, match="needs Java 17 or newer, and no `java` was found"):
        find_java()
    assert not kafka_available()
    with pytest.raises(JavaUnavailable):
        start_kafka(tmp_path / "kafka")
    assert not (tmp_path / "kafka").exists()


def test_an_old_java_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A stand-in for a Java 11 installation: only its banner matters here.
    java = tmp_path / "jdk11" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.21" 2023-10-17\' >&2\n')
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk11"))
    with pytest.raises(JavaUnavailable, match=f"needs Java 17 or newer; {java} is Java 11"):
        check_kafka_prerequisites()


def test_maven_that_cannot_resolve_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # An empty cache and an empty, offline Maven repository: a real resolution failure that
    # stays on this machine.
    monkeypatch.setenv("BILLING_KAFKA_CACHE", str(tmp_path / "cache"))
    with pytest.raises(JarsUnavailable, match="Maven could not resolve") as failure:
        ensure_jars(["-o", f"-Dmaven.repo.local={tmp_path / 'm2'}"])
    assert "\n[ERROR] " in str(failure.value)  # Maven's own reason, not only ours
    assert not (cache_dir() / "libs").exists()
    assert not list(cache_dir().glob("libs.*"))


def test_no_maven_and_no_cached_jars_is_a_typed_error(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    java = find_java()
    monkeypatch.setenv("BILLING_KAFKA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("JAVA_HOME", str(java.resolve().parent.parent))
    with pytest.raises(JarsUnavailable, match="`mvn`"):
        ensure_jars()
    assert not kafka_available()


def test_the_cache_is_named_for_the_pinned_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BILLING_KAFKA_CACHE", str(tmp_path))
    assert cache_dir().parent == tmp_path
    assert cache_dir().name.startswith(f"kafka-{kafka_version()}-")
    monkeypatch.delenv("BILLING_KAFKA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir().parent == tmp_path / "xdg" / "billing"


def test_the_errors_are_startup_errors() -> None:
    assert issubclass(JavaUnavailable, StartupError) and issubclass(JarsUnavailable, StartupError)
