#!/usr/bin/env bash
# Install the system packages evidence-archive needs, and only those that are missing.
#
#   .ci/system-deps.sh          ffmpeg (ffmpeg + ffprobe), python3-venv when venvs can't be made
#   .ci/system-deps.sh --test   the same, plus a PostgreSQL server for the integration tests
#
# Idempotent: a machine that already has everything is left untouched (no apt-get update).
set -euo pipefail

usage() { echo "usage: $0 [--test]" >&2; exit 2; }

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    -h|--help) echo "usage: $0 [--test]"; exit 0 ;;
    *) usage ;;
  esac
done

say() { echo "system-deps: $*"; }
die() { echo "system-deps: error: $*" >&2; exit 1; }

PYTHON="${PYTHON:-python3}"
packages=()

# ffmpeg: both ffmpeg and ffprobe must be on PATH.
if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
  say "ffmpeg present ($(command -v ffmpeg))"
else
  say "ffmpeg/ffprobe missing: will install ffmpeg"
  packages+=(ffmpeg)
fi

# python3-venv: needed when `python3 -m venv` can't make a venv with pip (Debian splits
# ensurepip out of the interpreter package). Try it for real in a throwaway folder.
venv_works() {
  local py tmp rc=0
  py="$(command -v "$PYTHON" 2>/dev/null)" || return 1
  tmp="$(mktemp -d)"
  "$py" -m venv "$tmp/venv" >/dev/null 2>&1 && [ -x "$tmp/venv/bin/pip" ] || rc=1
  rm -rf "$tmp"
  return "$rc"
}
if venv_works; then
  say "$PYTHON -m venv works"
elif ! command -v "$PYTHON" >/dev/null 2>&1; then
  die "$PYTHON not found; install Python 3.11 first (apt-get install python3)"
else
  say "$PYTHON -m venv does not work: will install python3-venv"
  packages+=(python3-venv)
fi

# PostgreSQL server (tests only): pg_ctlcluster and a server binary.
if [ "$want_test" -eq 1 ]; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
     && command -v psql >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1; then
    say "PostgreSQL server present"
  else
    say "PostgreSQL server missing: will install postgresql"
    packages+=(postgresql)
  fi
fi

if [ "${#packages[@]}" -eq 0 ]; then
  say "nothing to install"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 \
  || die "apt-get not found; install by hand: ${packages[*]}"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "need root or sudo to install: ${packages[*]}"
fi

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)

say "apt-get update"
"${APT[@]}" update -qq
say "apt-get install ${packages[*]}"
"${APT[@]}" install -y -qq --no-install-recommends "${packages[@]}"

# Check that what was asked for is really there now.
for pkg in "${packages[@]}"; do
  case "$pkg" in
    ffmpeg)
      command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 \
        || die "ffmpeg installed but ffmpeg/ffprobe still not on PATH" ;;
    python3-venv)
      venv_works || die "python3-venv installed but '$PYTHON -m venv' still fails (is $PYTHON the system python3?)" ;;
    postgresql)
      command -v pg_ctlcluster >/dev/null 2>&1 || die "postgresql installed but pg_ctlcluster not found" ;;
  esac
done
say "done"
