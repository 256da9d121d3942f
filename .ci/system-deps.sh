#!/usr/bin/env bash
# Install the system packages evidence-archive needs, and only those that are missing.
#
#   .ci/system-deps.sh          ffmpeg (ffmpeg + ffprobe), poppler-utils (pdftoppm draws written
#                               records' pages for the web pages), python3-venv when venvs can't
#                               be made, fonts-wqy-zenhei (the TrueType CJK font the case file
#                               PDF embeds)
#   .ci/system-deps.sh --test   the same, plus fonts-noto-cjk (pages in Chromium show CJK text),
#                               a PostgreSQL server for the integration tests and
#                               Ceph's RADOS Gateway (radosgw, ceph-mon, ceph-osd, ceph-common):
#                               the S3 server with Object Lock the tests start (tests/servers/rgw.py);
#                               Chromium; and the tools the deployment files are checked with:
#                               systemd (systemd-analyze verify), logrotate, nginx, openssl
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

# poppler-utils: pdftoppm draws a written record's PDF pages as images, in a child process
# (the tests also read the printed case file back with pdftotext).
if command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then
  say "poppler-utils present ($(command -v pdftoppm))"
else
  say "poppler-utils missing: will install poppler-utils"
  packages+=(poppler-utils)
fi

# fonts-wqy-zenhei: the case file PDF embeds a TrueType CJK font; reportlab refuses CFF fonts
# such as Noto CJK, so this one is needed on any server that makes the PDF.
if [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then
  say "fonts-wqy-zenhei present"
else
  say "fonts-wqy-zenhei missing: will install fonts-wqy-zenhei"
  packages+=(fonts-wqy-zenhei)
fi

# Tests only: CJK glyphs for the pages in Chromium (screenshots with no missing-glyph boxes,
# printed PDFs, the tests' own PDFs).
if [ "$want_test" -eq 1 ]; then
  if compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc' >/dev/null; then
    say "fonts-noto-cjk present"
  else
    say "fonts-noto-cjk missing: will install fonts-noto-cjk"
    packages+=(fonts-noto-cjk)
  fi
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

# Node.js (18 or later) and openssl: every package carries verify-package.mjs and VERIFY.txt's
# OpenSSL recipes; the demo runs them, and the tests check a package with all three verifiers.
if command -v node >/dev/null 2>&1; then
  say "node present"
else
  say "node missing: will install nodejs"
  packages+=(nodejs)
fi
command -v openssl >/dev/null 2>&1 || packages+=(openssl)

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

# Ceph RADOS Gateway (tests only): a throw-away single-node cluster gives the tests a real S3
# server with Object Lock. Needs the gateway, a monitor, an OSD and the `ceph` command line.
if [ "$want_test" -eq 1 ]; then
  ceph_missing=()
  command -v radosgw  >/dev/null 2>&1 || ceph_missing+=(radosgw)
  command -v ceph-mon >/dev/null 2>&1 || ceph_missing+=(ceph-mon)
  command -v ceph-osd >/dev/null 2>&1 || ceph_missing+=(ceph-osd)
  command -v ceph     >/dev/null 2>&1 || ceph_missing+=(ceph-common)
  if [ "${#ceph_missing[@]}" -eq 0 ]; then
    say "Ceph RADOS Gateway present ($(command -v radosgw))"
  else
    say "Ceph RADOS Gateway missing: will install ${ceph_missing[*]}"
    packages+=("${ceph_missing[@]}")
  fi
fi

# Debian's Chromium (tests only): the web pages are tested in a real headless browser, driven by
# Playwright with this binary (never a browser build downloaded by a test tool).
if [ "$want_test" -eq 1 ]; then
  if command -v chromium >/dev/null 2>&1; then
    say "Chromium present ($(command -v chromium))"
  else
    say "Chromium missing: will install chromium"
    packages+=(chromium)
  fi
fi

# Deployment files (tests only): the units are checked by Debian's `systemd-analyze verify`
# (it reads unit files and needs no running systemd), the logrotate snippet by logrotate, the
# nginx example by running it in front of the server with a test certificate made by openssl.
if [ "$want_test" -eq 1 ]; then
  command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)
  command -v logrotate >/dev/null 2>&1 || packages+=(logrotate)
  { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || packages+=(nginx-light)
  say "deployment-file checkers: ${packages[*]:-present}"
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
    radosgw|ceph-mon|ceph-osd)
      command -v "$pkg" >/dev/null 2>&1 || die "$pkg installed but '$pkg' not on PATH" ;;
    chromium)
      command -v chromium >/dev/null 2>&1 || die "chromium installed but not on PATH" ;;
    fonts-wqy-zenhei)
      [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || die "fonts-wqy-zenhei installed but wqy-zenhei.ttc not found" ;;
    fonts-noto-cjk)
      compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc' >/dev/null || die "fonts-noto-cjk installed but its fonts not found" ;;
    poppler-utils)
      command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1 \
        || die "poppler-utils installed but pdftoppm/pdftotext not on PATH" ;;
    systemd)
      command -v systemd-analyze >/dev/null 2>&1 || die "systemd installed but systemd-analyze not on PATH" ;;
    nodejs)
      command -v node >/dev/null 2>&1 || die "nodejs installed but 'node' not on PATH" ;;
    logrotate|openssl)
      command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || die "$pkg installed but not found" ;;
    nginx-light)
      [ -x /usr/sbin/nginx ] || die "nginx-light installed but /usr/sbin/nginx missing" ;;
    ceph-common)
      command -v ceph >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1 \
        && command -v monmaptool >/dev/null 2>&1 \
        || die "ceph-common installed but ceph/radosgw-admin/monmaptool not on PATH" ;;
  esac
done
say "done"
