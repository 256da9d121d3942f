"""The Dockerfile and constraints.txt. Images cannot be built on the machines the suite runs on
(no registry for base images), so the Dockerfile's instructions are checked against the
repository instead: base, user, entry point, port, health check, fonts, and that what it copies
is what the package needs. The constraints file must pin every dependency, within setup.cfg's
ranges, at the versions the suite is running on now."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined, out = "", []
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        joined += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = joined.partition(" ")
            out.append((word.upper(), rest.strip()))
            joined = ""
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def requirements() -> list[Requirement]:
    cfg = setup_cfg()
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in cfg["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not an exact pin: {line!r}"
            found[canonicalize_name(name)] = version.strip()
    return found


def test_the_image_is_the_slim_debian_python_and_runs_as_its_own_user() -> None:
    (base,) = of("FROM")
    assert base == "python:3.11-slim-bookworm"
    assert of("USER") == ["evidence"]
    assert "useradd --system --uid 10001" in of("RUN")[1]
    words = [w for w, _ in instructions()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "RUN as root after USER"
    assert json.loads(of("ENTRYPOINT")[0]) == ["evidence"]
    assert json.loads(of("CMD")[0])[-1] == "serve"


def test_the_pages_listen_on_every_interface_and_answer_the_health_check() -> None:
    assert of("EXPOSE") == ["8080"]
    env = " ".join(of("ENV"))
    assert "EVIDENCE_WEB_HOST=0.0.0.0" in env and "EVIDENCE_DATA_DIR=/data" in env
    assert of("VOLUME") == ["/data"]
    (health,) = of("HEALTHCHECK")
    assert "http://127.0.0.1:8080/healthz" in health and "CMD" in health


def test_the_health_check_command_is_the_one_tests_run() -> None:
    """tests/config/test_serve.py runs HEALTHCHECK_COMMAND against a live server: it must be the
    Dockerfile's own."""
    assert json.dumps(healthcheck_command()) in of("HEALTHCHECK")[0]


def healthcheck_command() -> list[str]:
    (health,) = of("HEALTHCHECK")
    return json.loads(health[health.index("CMD") + 3 :].strip())


def test_ffmpeg_and_the_cjk_fonts_are_installed() -> None:
    apt = next(r for r in of("RUN") if "apt-get install" in r)
    packages = set(shlex.split(apt.split("--no-install-recommends", 1)[1].split("&&")[0]))
    assert {"ffmpeg", "fonts-noto-cjk", "fonts-wqy-zenhei"} <= packages


def test_the_copied_paths_are_the_packages_and_nothing_is_ignored() -> None:
    cfg = setup_cfg()
    packages = {p.strip() for p in cfg["options.packages.find"]["include"].split() if "*" not in p}
    copied: set[str] = set()
    for args in of("COPY"):
        *sources, _dest = shlex.split(args)
        copied |= set(sources)
    assert packages <= copied, f"packages not copied: {packages - copied}"
    assert {"setup.cfg", "pyproject.toml", "README.md", "constraints.txt"} <= copied
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), (
            f"{source} is in .dockerignore"
        )
    install = next(r for r in of("RUN") if "pip install" in r)
    assert "-c constraints.txt" in install
    assert of("COPY")[0].split()[0] == "constraints.txt", "the pins are copied before the install"


def test_every_dependency_is_pinned_within_its_range_and_installed_at_the_pin() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} outside {requirement}"
    # The suite runs on exactly the pinned versions (the venv was made with -c constraints.txt).
    for name, version in pinned.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # pinned for an optional path this venv does not install
        assert installed == version, f"{name}: installed {installed}, pinned {version}; run `make venv`"


def test_make_venv_installs_from_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip\" install -c constraints\.txt -e '\.\[test,lint\]'", makefile)


def test_pip_resolves_setup_cfg_within_the_constraints(tmp_path: Path) -> None:
    """pip itself, offline, against this venv: every requirement of setup.cfg (with the test
    and lint extras) is met by the pinned versions, with nothing left to install."""
    wanted = tmp_path / "requirements.txt"
    wanted.write_text("\n".join(str(r) for r in requirements()) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "-c",
            str(CONSTRAINTS),
            "-r",
            str(wanted),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Would install" not in done.stdout, done.stdout
