// Recomputes every v2 custody event of a package from the documented format
// (docs/CUSTODY-FORMAT.md), with nothing but Node.js: it shares no code with the verifier.
//
//   node custody_recompute.mjs PACKAGE_DIR
//
// For each line of data/custody/events.jsonl holding a v2 body: parse it, serialize it again
// as RFC 8785 (JCS) and require the very same bytes; body_hash = SHA-256(line); the link of
// that seq in data/custody/links.tsv must carry that body_hash and
// hash = SHA-256(prev bytes || body_hash bytes). Prints one JSON object: counts and mismatches.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

function jcs(value) {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`number ${value} is not a safe integer`);
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
  // Object keys sorted by UTF-16 code units: what Array.prototype.sort does by default.
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest();

const folder = join(process.argv[2], "data", "custody");
const links = new Map();
for (const line of readFileSync(join(folder, "links.tsv"), "latin1").split("\n")) {
  if (!line) continue;
  const [seq, prev, bodyHash, hash] = line.split("\t");
  links.set(Number(seq), { prev, bodyHash, hash });
}

const raw = readFileSync(join(folder, "events.jsonl"));
const result = { v1: 0, v2: 0, matched: 0, mismatches: [] };
let start = 0;
while (start < raw.length) {
  const end = raw.indexOf(0x0a, start);
  const bytes = raw.subarray(start, end);
  start = end + 1;
  const event = JSON.parse(bytes.toString("utf8"));
  if (event.v !== 2) {
    result.v1 += 1;
    continue;
  }
  result.v2 += 1;
  const again = Buffer.from(jcs(event), "utf8");
  const bodyHash = sha256(bytes).toString("hex");
  const link = links.get(event.seq);
  const problems = [];
  if (!again.equals(bytes)) problems.push("JCS bytes differ");
  if (!link) problems.push("no link");
  else {
    if (link.bodyHash !== bodyHash) problems.push("body_hash differs");
    const hash = sha256(Buffer.concat([Buffer.from(link.prev, "hex"), Buffer.from(bodyHash, "hex")]));
    if (hash.toString("hex") !== link.hash) problems.push("hash differs");
  }
  if (problems.length) result.mismatches.push({ seq: event.seq, problems });
  else result.matched += 1;
}
process.stdout.write(JSON.stringify(result) + "\n");
