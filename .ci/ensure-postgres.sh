#!/usr/bin/env bash
# Make sure the local PostgreSQL accepts
#     psql -h 127.0.0.1 -U postgres -d postgres -c 'select 1'
# without a password, as the integration tests expect.
#
# - EVIDENCE_TEST_PG_URL set: the tests use that server instead; nothing is done here.
# - server not answering: start the main cluster(s) under /etc/postgresql (and the one set
#   to listen on $PGPORT, if another) with pg_ctlcluster, wait up to 30 s. A cluster that is already running is left alone; nothing is ever stopped.
# - server answering but asking for a password: put trust lines for 127.0.0.1/32 and ::1/128
#   at the top of pg_hba.conf and reload.
set -euo pipefail

HOST=127.0.0.1
PORT="${PGPORT:-5432}"
WAIT_SECONDS=30
MARKER="# evidence-archive tests: local TCP connections without password"

say() { echo "ensure-postgres: $*"; }
die() { echo "ensure-postgres: error: $*" >&2; exit 1; }

if [ -n "${EVIDENCE_TEST_PG_URL:-}" ]; then
  say "EVIDENCE_TEST_PG_URL is set; the tests use that server, nothing to do"
  exit 0
fi

for tool in psql pg_isready pg_ctlcluster; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool not found; install PostgreSQL first (bash .ci/system-deps.sh --test)"
done

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()  # only needed to start a cluster or edit pg_hba.conf; checked there
fi
need_root() {
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    die "need root or sudo to $1"
  fi
}

# The clusters Debian knows about: /etc/postgresql/VERSION/NAME.
clusters=()   # every cluster, as VERSION/NAME
for conf in /etc/postgresql/*/*/postgresql.conf; do
  [ -f "$conf" ] || continue
  c="${conf#/etc/postgresql/}"; c="${c%/postgresql.conf}"
  clusters+=("$c")
done

cluster_port() {  # the port a cluster (VERSION/NAME) is configured for
  local p
  p="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "/etc/postgresql/$1/postgresql.conf" | tail -n1)"
  echo "${p:-5432}"
}

reachable() { pg_isready -q -h "$HOST" -p "$PORT" -t 3 >/dev/null 2>&1; }

can_connect() {
  # -w: never prompt for a password; a password-less connection must work as is.
  env -u PGPASSWORD -u PGSERVICE PGCONNECT_TIMEOUT=5 \
    psql -w -X -q -At -h "$HOST" -p "$PORT" -U postgres -d postgres -c 'select 1' 2>&1
}

if ! reachable; then
  if [ "${#clusters[@]}" -eq 0 ]; then
    # Packages installed without a cluster (create_main_cluster = false): make one.
    for bin in /usr/lib/postgresql/*/bin/postgres; do
      [ -x "$bin" ] || continue
      v="${bin#/usr/lib/postgresql/}"; v="${v%%/*}"
      need_root "create a PostgreSQL cluster"
      say "no cluster found: creating $v main"
      "${SUDO[@]}" pg_createcluster "$v" main >/dev/null
      clusters+=("$v/main")
    done
    [ "${#clusters[@]}" -gt 0 ] \
      || die "no PostgreSQL cluster under /etc/postgresql and no server installed (bash .ci/system-deps.sh --test)"
  fi
  for c in "${clusters[@]}"; do
    v="${c%/*}"; n="${c#*/}"
    # the main cluster(s), and whichever cluster is configured for $PORT
    [ "$n" = main ] || [ "$(cluster_port "$c")" = "$PORT" ] || continue
    if pg_ctlcluster "$v" "$n" status >/dev/null 2>&1; then
      say "cluster $v $n already running"
      continue
    fi
    need_root "start PostgreSQL cluster $v $n"
    say "starting cluster $v $n"
    "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$v" "$n" start \
      || die "could not start cluster $v $n; see /var/log/postgresql/postgresql-$v-$n.log"
  done
  say "waiting up to ${WAIT_SECONDS}s for $HOST:$PORT"
  deadline=$((SECONDS + WAIT_SECONDS))
  until reachable; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "PostgreSQL not accepting connections on $HOST:$PORT after ${WAIT_SECONDS}s (is a cluster on port $PORT? see pg_lsclusters and /var/log/postgresql/)"
    fi
    sleep 1
  done
fi

if out="$(can_connect)"; then
  say "PostgreSQL on $HOST:$PORT accepts user postgres without password"
  exit 0
fi

# Reachable but refusing us. Only an authentication refusal is fixed here.
flat="${out//$'\n'/ }"
case "$flat" in
  *"password authentication failed"*|*"no password supplied"*|*"fe_sendauth"*|*"no pg_hba.conf entry"*|*"authentication failed"*) ;;
  *) die "cannot connect as postgres to $HOST:$PORT: $flat" ;;
esac
say "connection as postgres refused: $flat"

# The cluster listening on $PORT gets trust for local TCP connections.
cluster=""
for c in "${clusters[@]}"; do
  if [ "$(cluster_port "$c")" = "$PORT" ]; then cluster="$c"; break; fi
done
[ -n "$cluster" ] || die "no cluster under /etc/postgresql listens on port $PORT; cannot fix its pg_hba.conf"
cversion="${cluster%/*}"; cname="${cluster#*/}"

hba="$(sed -nE "s/^[[:space:]]*hba_file[[:space:]]*=[[:space:]]*'([^']+)'.*/\1/p" "/etc/postgresql/$cluster/postgresql.conf" | tail -n1)"
hba="${hba:-/etc/postgresql/$cluster/pg_hba.conf}"
[ -f "$hba" ] || die "pg_hba.conf not found at $hba"

if grep -qxF "$MARKER" "$hba"; then
  die "trust lines are already in $hba but the connection is still refused: $flat"
fi

need_root "edit $hba"
say "adding trust for 127.0.0.1/32 and ::1/128 at the top of $hba"
tmp="$(mktemp)"
{
  echo "$MARKER"
  echo "host    all             all             127.0.0.1/32            trust"
  echo "host    all             all             ::1/128                 trust"
  echo
  "${SUDO[@]}" cat "$hba"
} >"$tmp"
# Write in place so the file keeps its owner and mode.
"${SUDO[@]}" tee "$hba" <"$tmp" >/dev/null
rm -f "$tmp"

say "reloading cluster $cversion $cname"
"${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$cversion" "$cname" reload \
  || die "reload of cluster $cversion $cname failed"

for _ in 1 2 3 4 5; do
  if out="$(can_connect)"; then
    say "PostgreSQL on $HOST:$PORT accepts user postgres without password"
    exit 0
  fi
  sleep 1
done
die "still refused after editing $hba: ${out//$'\n'/ }"
