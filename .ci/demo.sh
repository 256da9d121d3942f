#!/usr/bin/env bash
# Demo of the embedded default (SQLite catalog and local store under one data folder, no
# settings file): a synthetic station inbox in demo-data/inbox and the pipeline run over it,
# with its data in demo-data/evidence-data.
#
# Steps are added here as the pipeline's stages land (ingest, linking, replay).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"

VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PYTHON="$VENV/bin/python"
EVIDENCE="$VENV/bin/evidence"

for exe in "$PYTHON" "$EVIDENCE"; do
  if [ ! -x "$exe" ]; then
    echo "demo: $exe not found; run 'make venv' first" >&2
    exit 1
  fi
done

DEMO="$ROOT/demo-data"
CASE_NO='开城管罚立〔2020〕42号'

# Print a step's command the way one would type it, then run it.
show() {
  local out="==>" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  echo
  echo "$out"
}
evidence() {
  show evidence "$@"
  (cd "$DEMO" && "$EVIDENCE" "$@")
}

rm -rf "$DEMO"
mkdir -p "$DEMO"

show python -m tests.synthetic demo-data/inbox
"$PYTHON" -m tests.synthetic "$DEMO/inbox"

# The embedded default: only the data folder is given. Commands run inside demo-data/ so
# that an evidence.toml lying in the working copy is not picked up.
export EVIDENCE_DATA_DIR="$DEMO/evidence-data"
unset EVIDENCE_CONFIG EVIDENCE_DATABASE_URL EVIDENCE_STORAGE_URL

evidence init
evidence config show
# The station's inbox, archived in one pass (the daemon, `ingest watch`, runs the same pipeline).
show evidence ingest scan --station ST01 demo-data/inbox --json
(cd "$DEMO" && "$EVIDENCE" ingest scan --station ST01 "$DEMO/inbox" --json) | tee "$DEMO/scan.json"
mapfile -t ARCHIVED < <("$PYTHON" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["archived"]))' "$DEMO/scan.json")

show evidence case open "$CASE_NO" --title '占道经营' --opened 2020-11-05 --json
(cd "$DEMO" && "$EVIDENCE" case open "$CASE_NO" --title '占道经营' --opened 2020-11-05 --json) | tee "$DEMO/case.json"
CASE_KEY=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["case_key"])' "$DEMO/case.json")
# A written record: a tiny PDF standing in for the scanned approval form.
printf '%%PDF-1.4\n%% 立案审批表 (demo)\n%%%%EOF\n' > "$DEMO/立案审批表.pdf"
evidence case add-doc "$CASE_NO" "$DEMO/立案审批表.pdf" --type '立案审批表' --date 2020-11-05 --json
evidence case link "$CASE_NO" "${ARCHIVED[@]}" --json
evidence hold set "$CASE_NO" --reason '复议期间保全' --json
evidence case show "$CASE_NO"
evidence replay "$CASE_NO" --verify
evidence export "$CASE_NO" "$DEMO/exports" --zip --with-proxies --reason '复议审查' --json
evidence verify-package "$DEMO/exports/$CASE_KEY.zip"
# The same package checked as a court's expert would, without this project: the package's own
# Node.js verifier and the standard-tool recipes of its VERIFY.txt, with the fingerprint the
# bureau hands over apart from the package (`evidence audit key`).
FP=$(cd "$DEMO" && "$EVIDENCE" audit key --json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["fingerprint"])')
show python -m zipfile -e "demo-data/exports/$CASE_KEY.zip" demo-data/unpacked
"$PYTHON" -m zipfile -e "$DEMO/exports/$CASE_KEY.zip" "$DEMO/unpacked"
PKG="$DEMO/unpacked/$CASE_KEY"
show node verify-package.mjs . --trusted-key "$FP"
(cd "$PKG" && node verify-package.mjs . --trusted-key "$FP")
show sha256sum -c --quiet manifest-sha256.txt tagmanifest-sha256.txt
(cd "$PKG" && sha256sum -c --quiet manifest-sha256.txt && sha256sum -c --quiet tagmanifest-sha256.txt && echo "sha256sum: every file OK")
show openssl pkeyutl -verify -pubin -inkey "data/custody/keys/$FP.pem" -rawin -in data/custody/checkpoint.json -sigfile data/custody/checkpoint.sig
(cd "$PKG" && openssl pkeyutl -verify -pubin -inkey "data/custody/keys/$FP.pem" -rawin \
  -in data/custody/checkpoint.json -sigfile data/custody/checkpoint.sig)
evidence verify
evidence retention plan
evidence stations status
evidence audit checkpoint
evidence audit verify
evidence audit log --limit 20

echo
echo "demo: done; data in demo-data/evidence-data, station inbox in demo-data/inbox"
