#!/usr/bin/env node
// verify-package.mjs: checks an evidence package with nothing but Node.js 18 or later.
//
//   node verify-package.mjs PACKAGE_DIR [--trusted-key FINGERPRINT]... [--tsa-ca FILE]
//
// Written from the package format as the archive documents it (custody format 2: events,
// links, checkpoints, keys, the payload commitment), not from the archive's own verifier, so
// that a package is checked by a second, independent implementation. It checks:
//   1. the BagIt manifests: every payload file's SHA-256, no file missing, none unlisted;
//   2. every checkpoint statement (exact canonical bytes, consecutive numbers, each one's
//      "prev" the SHA-256 of the one before), its Ed25519 signature, and that its signer's
//      fingerprint is one the checker trusts (--trusted-key, obtained apart from the package)
//      or one that trust reaches along the keys' history (keys/changes/: key-change statements
//      signed by both keys; a fork is a problem; a retired key's checkpoints only with a
//      time-stamp from before its compromise, checked by `openssl ts -verify` with --tsa-ca);
//   3. every link (hash = SHA-256(prev || body_hash)), each run of links unbroken up to a
//      checkpoint's event and head;
//   4. every disclosed event: exact canonical bytes, SHA-256 equal to its link's body_hash
//      (a v1 record: its hash recomputed and equal to its link's);
//   5. the package's own "exported" event: the files and events it commits to are exactly
//      those in the package, with their SHA-256;
//   6. completeness: each subject's events walked back through subject_prev from the committed
//      head, none left out (withheld protected events appear as links only);
//   7. each item's file digest recorded by a v2 ingested, document_added or attested event;
//   8. a time-stamp token (checkpoint.tsr), when present: that its imprint is SHA-256 of the
//      checkpoint statement. The TSA's signature is NOT checked here: `openssl ts -verify`
//      does that with the TSA's CA certificate (VERIFY.txt).
// Exit 0: everything holds. Exit 1: a problem, each named with its file or event. Exit 2: usage.
import { createHash, createPublicKey, verify as verifySignature } from "node:crypto";
import { execFileSync } from "node:child_process";
import { closeSync, constants, fstatSync, lstatSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";

const MAX_SAFE = 9007199254740991n;
const ZERO = "0".repeat(64);
const BINDING = new Set(["ingested", "document_added", "attested"]);
const HEX64 = /^[0-9a-f]{64}$/;
const problems = [];
const notes = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);
const sha256 = (bytes) => createHash("sha256").update(bytes).digest();
const hex = (bytes) => Buffer.from(bytes).toString("hex");

// ---- usage ----------------------------------------------------------------------------------
const args = process.argv.slice(2);
const trusted = new Set();
let root = null;
let tsaCa = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--tsa-ca") {
    tsaCa = args[++i] || usage("--tsa-ca takes the TSA's CA certificate file (PEM)");
  } else if (args[i] === "--trusted-key") {
    const fp = (args[++i] || "").toLowerCase();
    if (!HEX64.test(fp)) usage(`--trusted-key takes a 64-hex-digit SHA-256 fingerprint, not ${JSON.stringify(fp)}`);
    trusted.add(fp);
  } else if (root === null && !args[i].startsWith("--")) root = args[i];
  else usage(`unexpected argument ${JSON.stringify(args[i])}`);
}
if (root === null) usage("name the package's folder");
function usage(message) {
  process.stderr.write(`verify-package.mjs: ${message}\nusage: node verify-package.mjs PACKAGE_DIR [--trusted-key FINGERPRINT]... [--tsa-ca FILE]\n`);
  process.exit(2);
}
try {
  if (!lstatSync(root).isDirectory()) usage(`${root} is not a folder (unzip a zipped package first)`);
} catch {
  usage(`${root} cannot be read`);
}

// ---- files: only regular files inside the package, never through a link ----------------------
function safeRel(rel) {
  return rel !== "" && !rel.startsWith("/") && !rel.split("/").some((p) => p === ".." || p === "." || p === "");
}
// A package file opened as itself: no component of its path a symbolic link, the file opened
// without following one and checked regular on the open descriptor (a swap between the check
// and the open is caught too). Returns the descriptor; the caller closes it.
function openRegular(rel, limit) {
  if (!safeRel(rel)) throw new Error(`unsafe path ${JSON.stringify(rel)}`);
  let path = root;
  for (const part of rel.split("/")) {
    path = join(path, part);
    if (lstatSync(path).isSymbolicLink()) throw new Error("is a symbolic link");
  }
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  const st = fstatSync(fd);
  if (!st.isFile() || st.size > limit) {
    closeSync(fd);
    throw new Error(st.isFile() ? `is larger than ${limit} bytes` : "is not a regular file");
  }
  return fd;
}
function read(rel, limit = 1 << 30) {
  const fd = openRegular(rel, limit);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
function tryRead(rel, limit) {
  try {
    return read(rel, limit);
  } catch {
    return null;
  }
}
function walk(rel) {
  const out = [];
  for (const entry of readdirSync(join(root, ...rel.split("/")), { withFileTypes: true })) {
    const child = `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...walk(child));
    else out.push(child);
  }
  return out;
}
function hashFile(rel) {
  // In pieces, so a recording of many gigabytes does not have to fit in memory.
  const h = createHash("sha256");
  const fd = openRegular(rel, Number.MAX_SAFE_INTEGER);
  try {
    const buf = Buffer.alloc(1 << 20);
    let n;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

// ---- JSON read exactly: numbers keep their spelling, duplicate keys refused -------------------
class Num {
  constructor(text) {
    this.text = text;
  }
}
function parseExact(text) {
  let i = 0;
  const fail = (what) => {
    throw new Error(`${what} at character ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  function value() {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = new Map();
      ws();
      if (text[i] === "}") return i++, obj;
      for (;;) {
        ws();
        if (text[i] !== '"') fail("a key expected");
        const key = string();
        if (obj.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        ws();
        if (text[i++] !== ":") fail("':' expected");
        obj.set(key, value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, obj;
        else fail("',' or '}' expected");
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") return i++, arr;
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, arr;
        else fail("',' or ']' expected");
      }
    }
    if (c === '"') return string();
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (m && m[0]) return (i += m[0].length), new Num(m[0]);
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) return (i += word.length), v;
    }
    fail("a value expected");
  }
  function string() {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    if (i >= text.length) fail("unterminated string");
    i++;
    return JSON.parse(text.slice(start, i));
  }
  const v = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return v;
}
// RFC 8785 with the archive's number rule (integers within +-(2^53 - 1) only) when strictInts;
// the v1 form (keys sorted, numbers as written) otherwise.
function canonical(v, strictInts) {
  if (v === null || v === true || v === false) return JSON.stringify(v);
  if (v instanceof Num) {
    if (strictInts) {
      if (!/^-?(0|[1-9][0-9]*)$/.test(v.text)) throw new Error(`number ${v.text} is not an integer`);
      const n = BigInt(v.text);
      if (n > MAX_SAFE || n < -MAX_SAFE) throw new Error(`integer ${v.text} is beyond +-(2^53 - 1)`);
    }
    return v.text;
  }
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map((x) => canonical(x, strictInts)).join(",") + "]";
  const keys = [...v.keys()].sort(); // UTF-16 code unit order, as RFC 8785 asks
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(v.get(k), strictInts)).join(",") + "}";
}
function plain(v) {
  if (v instanceof Num) return Number(v.text);
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  return v;
}
// The object these exact bytes hold, or an Error saying why they are not canonical.
function exact(bytes, strictInts = true) {
  const text = bytes.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(bytes)) throw new Error("not UTF-8");
  const v = parseExact(text);
  if (!(v instanceof Map)) throw new Error("not a JSON object");
  if (canonical(v, strictInts) !== text) throw new Error("not in canonical form (RFC 8785)");
  return v;
}

// ---- 1. BagIt ---------------------------------------------------------------------------------
function manifest(rel) {
  const raw = tryRead(rel, 64 << 20);
  if (raw === null) return problem(rel, "missing"), new Map();
  const out = new Map();
  for (const line of raw.toString("utf8").split(/\r?\n/)) {
    if (!line) continue;
    const m = /^([0-9a-fA-F]{64})[ \t]+\*?(.+)$/.exec(line);
    if (!m) {
      problem(rel, `unreadable line ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    const path = m[2].replace(/%0D/gi, "\r").replace(/%0A/gi, "\n").replace(/%25/g, "%");
    if (!safeRel(path)) problem(rel, `names an unsafe path ${JSON.stringify(path)}`);
    else out.set(path, m[1].toLowerCase());
  }
  return out;
}
if (tryRead("bagit.txt", 4096) === null) problem("bagit.txt", "missing: not a BagIt package");
const payload = manifest("manifest-sha256.txt");
let present = [];
try {
  present = walk("data");
} catch {
  problem("data/", "missing");
}
for (const rel of present) {
  if (!payload.has(rel)) problem(rel, "in the package but not in manifest-sha256.txt");
}
const fileDigests = new Map();
for (const [rel, expected] of payload) {
  if (!rel.startsWith("data/")) {
    problem("manifest-sha256.txt", `names ${rel} outside data/`);
    continue;
  }
  try {
    const got = hashFile(rel);
    fileDigests.set(rel, got);
    if (got !== expected) problem(rel, `SHA-256 ${got} is not the manifest's ${expected}`);
  } catch (e) {
    problem(rel, `listed in the manifest but ${e.code === "ENOENT" ? "missing" : e.message}`);
  }
}
const tags = manifest("tagmanifest-sha256.txt");
for (const [rel, expected] of tags) {
  const bytes = tryRead(rel, 1 << 30);
  if (bytes === null) problem(rel, "listed in tagmanifest-sha256.txt but missing");
  else if (hex(sha256(bytes)) !== expected) problem(rel, "SHA-256 differs from tagmanifest-sha256.txt");
}

// ---- 2. keys and checkpoints ------------------------------------------------------------------
const C = "data/custody";
const keys = new Map(); // fingerprint -> KeyObject
for (const rel of present.filter((r) => r.startsWith(`${C}/keys/`) && r.endsWith(".pem"))) {
  try {
    const key = createPublicKey(read(rel, 1 << 16));
    const der = key.export({ format: "der", type: "spki" });
    if (key.asymmetricKeyType !== "ed25519" || der.length !== 44) throw new Error("not an Ed25519 public key");
    keys.set(hex(sha256(der.subarray(12))), key);
  } catch (e) {
    problem(rel, e.message);
  }
}
// ---- 2a. the signing keys' history (data/custody/keys/changes/) --------------------------------
// A key-change statement names the old key, the new key and the old key's last checkpoint (its
// number and statement SHA-256), signed by BOTH keys; trust flows from a --trusted-key along such
// statements in either direction. A key with two successors (or two predecessors) is a fork: a
// problem, and no trust flows through it. A retirement statement, signed by a later key of the
// same history, says since when a key is compromised: its checkpoints are then trusted only
// with a trusted RFC 3161 time-stamp from before that time. Node.js alone cannot check a
// TSA's signature: with --tsa-ca FILE the openssl command does (`openssl ts -verify`), and
// without it no checkpoint of a retired key is trusted.
const CH = `${C}/keys/changes/`;
const INSTANT = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$/;
const changes = [];
const retirements = [];
function historyStatement(rel, type, want) {
  const bytes = tryRead(rel, 1 << 16);
  if (bytes === null) return problem(rel, "unreadable"), null;
  let f;
  try {
    f = plain(exact(bytes));
  } catch (e) {
    return problem(rel, `statement ${e.message}`), null;
  }
  if (f.v !== 1 || f.type !== type || Object.keys(f).sort().join() !== want) return problem(rel, `not a ${type} statement`), null;
  return { rel, bytes, f, digest: hex(sha256(bytes)) };
}
for (const rel of present.filter((r) => r.startsWith(CH))) {
  const name = rel.slice(CH.length);
  let m;
  if ((m = /^([0-9a-f]{64})-([0-9a-f]{64})\.json$/.exec(name))) {
    const s = historyStatement(rel, "evidence-custody-key-change", "n,new,old,statement,time,type,v");
    if (!s) continue;
    const f = s.f;
    if (f.old !== m[1] || f.new !== m[2] || !Number.isSafeInteger(f.n) || f.n < 1 || !HEX64.test(f.statement) || !INSTANT.test(f.time)) {
      problem(rel, "a key-change statement field is malformed, or its name is not its keys' fingerprints");
      continue;
    }
    const stem = rel.slice(0, -5);
    changes.push({ ...s, name: stem, oldSig: tryRead(`${stem}.old.sig`, 1024), newSig: tryRead(`${stem}.new.sig`, 1024) });
  } else if ((m = /^([0-9a-f]{64})-retired-([0-9a-f]{16})\.json$/.exec(name))) {
    const s = historyStatement(rel, "evidence-custody-key-retirement", "by,compromised_since,key,time,type,v");
    if (!s) continue;
    const f = s.f;
    if (f.key !== m[1] || s.digest.slice(0, 16) !== m[2] || !HEX64.test(f.by) || f.by === f.key || !INSTANT.test(f.compromised_since) || !INSTANT.test(f.time)) {
      problem(rel, "a retirement statement field is malformed, or its name is not its key and digest");
      continue;
    }
    retirements.push({ ...s, sig: tryRead(`${rel.slice(0, -5)}.sig`, 1024) });
  } else if (!/^[0-9a-f]{64}-([0-9a-f]{64}\.(old|new)|retired-[0-9a-f]{16})\.sig$/.test(name)) {
    problem(rel, "not a key-change or retirement file name");
  }
}
const signedBy = (fp, sig, bytes) => keys.has(fp) && sig !== null && sig.length === 64 && verifySignature(null, bytes, keys.get(fp), sig);
const successor = new Map();
const predecessor = new Map();
const forked = new Set();
const handOvers = [];
for (const c of changes) {
  const missing = [c.f.old, c.f.new].find((fp) => !keys.has(fp));
  if (missing) {
    problem(c.rel, `public key not available: fingerprint ${missing}`);
    continue;
  }
  if (!signedBy(c.f.old, c.oldSig, c.bytes) || !signedBy(c.f.new, c.newSig, c.bytes)) {
    problem(c.rel, "key change not signed by both keys");
    continue;
  }
  handOvers.push(c);
  for (const [index, own, word] of [[successor, c.f.old, "successors"], [predecessor, c.f.new, "predecessors"]]) {
    const seen = index.get(own);
    if (seen && seen.digest !== c.digest) {
      forked.add(own);
      problem(c.rel, `fork: key ${own} has two ${word}`);
    } else index.set(own, c);
  }
}
const edges = handOvers.filter((c) => !forked.has(c.f.old) && !forked.has(c.f.new));
for (const index of [successor, predecessor]) for (const [fp, c] of [...index]) if (!edges.includes(c)) index.delete(fp);
const trustedKeys = new Set(trusted);
for (let grew = true; grew; ) {
  grew = false;
  for (const c of edges) {
    if (trustedKeys.has(c.f.old) !== trustedKeys.has(c.f.new)) {
      trustedKeys.add(c.f.old);
      trustedKeys.add(c.f.new);
      grew = true;
    }
  }
}
const retired = new Map(); // fingerprint -> compromised_since (the earliest)
for (const r of retirements) {
  const later = new Set();
  for (let fp = r.f.key; successor.has(fp) && !later.has(successor.get(fp).f.new); ) later.add((fp = successor.get(fp).f.new));
  if (!later.has(r.f.by)) problem(r.rel, `retirement signed by ${r.f.by}, which is no successor of ${r.f.key}`);
  else if (!trustedKeys.has(r.f.by)) problem(r.rel, `retirement signed by ${r.f.by}, which is not trusted`);
  else if (!signedBy(r.f.by, r.sig, r.bytes)) problem(r.rel, "retirement's signature does not verify");
  else if (!retired.has(r.f.key) || r.f.compromised_since < retired.get(r.f.key)) retired.set(r.f.key, r.f.compromised_since);
}

// Whether the token beside a statement shows, under the TSA's CA, that the statement existed
// before `since`: null when it does, otherwise why not.
function stampedBefore(statement, tsrRel, since, statementTime) {
  if (tsaCa === null) return "its time-stamp cannot be checked without --tsa-ca FILE";
  const token = tryRead(tsrRel, 1 << 20);
  if (token === null) return "it has no time-stamp token";
  const dir = mkdtempSync(join(tmpdir(), "verify-package-"));
  try {
    const file = join(dir, "token.tsr");
    writeFileSync(file, token);
    const digest = hex(sha256(statement));
    try {
      execFileSync("openssl", ["ts", "-verify", "-digest", digest, "-in", file, "-CAfile", tsaCa], { stdio: "pipe" });
    } catch (e) {
      return e.code === "ENOENT" ? "openssl is needed to check its time-stamp" : "its time-stamp does not verify against the CA given";
    }
    const text = execFileSync("openssl", ["ts", "-reply", "-in", file, "-text"], { stdio: "pipe" }).toString();
    const m = /Time stamp: ([A-Z][a-z]{2}) +([0-9]+) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)? ([0-9]{4}) GMT/.exec(text);
    if (!m) return "its time-stamp's time cannot be read";
    const month = "JanFebMarAprMayJunJulAugSepOctNovDec".indexOf(m[1]) / 3;
    const when = Date.UTC(+m[7], month, +m[2], +m[3], +m[4], +m[5], Math.floor(Number(m[6] || 0) * 1000));
    const a = /Accuracy: (0x[0-9A-Fa-f]+|unspecified) seconds, (0x[0-9A-Fa-f]+|unspecified) millis, (0x[0-9A-Fa-f]+|unspecified) micros/.exec(text);
    const part = (x) => (x && x !== "unspecified" ? parseInt(x, 16) : 0);
    const upper = when + (a ? part(a[1]) * 1000 + part(a[2]) + part(a[3]) / 1000 : 0);
    const ms = (iso) => Date.parse(iso.slice(0, 23) + "Z");
    if (upper + 1000 < ms(statementTime)) return "its time-stamp is older than the statement itself";
    if (upper >= ms(since)) return `time-stamped at ${new Date(when).toISOString()}, not before the compromise`;
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const statements = []; // {n, bytes, fields, rel}
function loadStatement(rel, sigRel) {
  const bytes = tryRead(rel, 1 << 16);
  const sig = tryRead(sigRel, 1024);
  if (bytes === null || sig === null) return problem(rel, "statement or signature missing"), null;
  let fields;
  try {
    fields = plain(exact(bytes));
  } catch (e) {
    return problem(rel, `statement ${e.message}`), null;
  }
  const want = ["head", "key", "n", "prev", "seq", "time", "type", "v"];
  if (fields.v !== 2 || fields.type !== "evidence-custody-checkpoint" || Object.keys(fields).sort().join() !== want.join()) {
    return problem(rel, "not a version 2 checkpoint statement"), null;
  }
  const key = keys.get(fields.key);
  if (!key) problem(rel, `signer ${fields.key}: its public key is not in ${C}/keys/`);
  else if (sig.length !== 64 || !verifySignature(null, bytes, key, sig)) problem(rel, "signature does not verify");
  else if (!trustedKeys.has(fields.key)) {
    problem(rel, `signature valid, signer not trusted: fingerprint ${fields.key}`);
  } else if (successor.has(fields.key) && fields.n > successor.get(fields.key).f.n) {
    problem(rel, `signer ${fields.key} handed over to ${successor.get(fields.key).f.new} after checkpoint ${successor.get(fields.key).f.n}: not trusted`);
  } else if (predecessor.has(fields.key) && fields.n <= predecessor.get(fields.key).f.n) {
    problem(rel, `signer ${fields.key} signs only after checkpoint ${predecessor.get(fields.key).f.n}: not trusted`);
  } else if (retired.has(fields.key)) {
    const since = retired.get(fields.key);
    const why = stampedBefore(bytes, rel.replace(/\.json$/, ".tsr"), since, fields.time);
    if (why) problem(rel, `signer ${fields.key} is compromised since ${since}: not trusted (${why})`);
  }
  return { n: fields.n, bytes, fields, rel };
}
const own = loadStatement(`${C}/checkpoint.json`, `${C}/checkpoint.sig`);
for (const rel of present.filter((r) => /^data\/custody\/checkpoints\/\d{8}\.json$/.test(r))) {
  const s = loadStatement(rel, rel.replace(/\.json$/, ".sig"));
  if (s) statements.push(s);
}
if (own) {
  const same = statements.find((s) => s.n === own.n);
  if (same && !same.bytes.equals(own.bytes)) problem(own.rel, `differs from checkpoint ${own.n} under checkpoints/`);
  if (!same) statements.push(own);
}
statements.sort((a, b) => a.n - b.n);
for (let k = 1; k < statements.length; k++) {
  const [a, b] = [statements[k - 1], statements[k]];
  if (b.n !== a.n + 1) problem(b.rel, `checkpoint ${a.n + 1} is missing before it`);
  else if (b.fields.prev !== hex(sha256(a.bytes))) problem(b.rel, `its prev is not the SHA-256 of checkpoint ${a.n}`);
}
if (own && statements.length && statements[statements.length - 1].n !== own.n) {
  problem(own.rel, "is not the last checkpoint the package carries");
}
for (const c of successor.values()) {
  const cp = statements.find((s) => s.n === c.f.n);
  if (cp && (cp.fields.key !== c.f.old || hex(sha256(cp.bytes)) !== c.f.statement)) {
    problem(c.rel, `names checkpoint ${c.f.n} with another statement than the one in the package`);
  }
}
const bySeq = new Map(statements.map((s) => [s.fields.seq, s]));

// 8. the time-stamp token, when there is one
const token = tryRead(`${C}/checkpoint.tsr`, 1 << 20);
if (own && token !== null) {
  const imprint = tokenImprint(token);
  if (imprint === null) problem(`${C}/checkpoint.tsr`, "not a readable RFC 3161 time-stamp token");
  else if (imprint !== hex(sha256(own.bytes))) problem(`${C}/checkpoint.tsr`, "its imprint is not the SHA-256 of checkpoint.json");
  else notes.push("time-stamp token: its imprint is the checkpoint statement's SHA-256; its signature is not checked here (openssl ts -verify, see VERIFY.txt)");
}

// ---- 3. links -----------------------------------------------------------------------------------
const links = new Map(); // seq -> {prev, bodyHash, hash}
const byHash = new Map();
const linkBytes = tryRead(`${C}/links.tsv`, 1 << 28);
if (linkBytes === null) problem(`${C}/links.tsv`, "missing");
else {
  for (const line of linkBytes.toString("utf8").split("\n")) {
    if (!line) continue;
    const f = line.split("\t");
    if (f.length !== 4 || !/^[1-9][0-9]*$/.test(f[0]) || !HEX64.test(f[1]) || !HEX64.test(f[3]) || !(f[2] === "-" || HEX64.test(f[2]))) {
      problem(`${C}/links.tsv`, `unreadable line ${JSON.stringify(line.slice(0, 80))}`);
      continue;
    }
    const seq = Number(f[0]);
    if (links.has(seq)) problem(`${C}/links.tsv`, `event ${seq} twice`);
    links.set(seq, { prev: f[1], bodyHash: f[2], hash: f[3] });
    byHash.set(f[3], seq);
  }
  const seqs = [...links.keys()].sort((a, b) => a - b);
  for (let k = 0; k < seqs.length; k++) {
    const seq = seqs[k];
    const link = links.get(seq);
    if (link.bodyHash !== "-") {
      const h = hex(sha256(Buffer.concat([Buffer.from(link.prev, "hex"), Buffer.from(link.bodyHash, "hex")])));
      if (h !== link.hash) problem(`${C}/links.tsv`, `event ${seq}: hash is not SHA-256(prev || body_hash)`);
    }
    if (seq === 1 && link.prev !== ZERO) problem(`${C}/links.tsv`, "event 1 does not start from 64 zeros");
    const next = links.get(seq + 1);
    if (next && next.prev !== link.hash) problem(`${C}/links.tsv`, `event ${seq + 1}: prev is not event ${seq}'s hash`);
    if (!next) {
      // The end of a run: it must reach a checkpoint, and that checkpoint's head.
      const cp = bySeq.get(seq);
      if (!cp) problem(`${C}/links.tsv`, `the links from event ${seq} back end at no checkpoint`);
      else if (cp.fields.head !== link.hash) problem(cp.rel, `head is not event ${seq}'s hash`);
    }
  }
}

// ---- 4. disclosed events ----------------------------------------------------------------------
const events = new Map(); // seq -> {v, fields, hash}
const eventBytes = tryRead(`${C}/events.jsonl`, 1 << 28);
if (eventBytes === null) problem(`${C}/events.jsonl`, "missing");
else {
  let start = 0;
  let lineno = 0;
  while (start < eventBytes.length) {
    let end = eventBytes.indexOf(0x0a, start);
    lineno++;
    if (end < 0) {
      problem(`${C}/events.jsonl`, `line ${lineno} does not end with a line feed`);
      end = eventBytes.length;
    }
    const bytes = eventBytes.subarray(start, end);
    start = end + 1;
    const ev = readEvent(bytes, lineno);
    if (!ev) continue;
    const link = links.get(ev.seq);
    if (events.has(ev.seq)) problem(`${C}/events.jsonl`, `event ${ev.seq} twice`);
    events.set(ev.seq, ev);
    if (!link) problem(`${C}/events.jsonl`, `event ${ev.seq} has no link`);
    else if (ev.v === 2 && link.bodyHash !== ev.bodyHash) problem(`${C}/events.jsonl`, `event ${ev.seq} altered: its SHA-256 is not its link's body_hash`);
    else if (ev.v === 1 && link.hash !== ev.hash) problem(`${C}/events.jsonl`, `event ${ev.seq} (v1) is not its link's`);
  }
}
function readEvent(bytes, lineno) {
  let map;
  try {
    map = exact(bytes);
  } catch (v2error) {
    try {
      map = exact(bytes, false);
    } catch {
      return problem(`${C}/events.jsonl`, `line ${lineno}: ${v2error.message}`), null;
    }
  }
  const fields = plain(map);
  if (fields.v === 2) {
    const want = ["action", "actor", "details", "salt", "seq", "subject", "subject_prev", "time", "v"];
    if (Object.keys(fields).sort().join() !== want.join()) return problem(`${C}/events.jsonl`, `line ${lineno}: not a v2 event body (its keys)`), null;
    return { v: 2, seq: fields.seq, fields, bodyHash: hex(sha256(bytes)) };
  }
  if (fields.v === 1) {
    // v1: SHA-256 over the record without its "hash" member, keys sorted, numbers as written.
    const want = ["action", "actor", "details", "hash", "prev", "seq", "subject", "time", "v"];
    if (Object.keys(fields).sort().join() !== want.join()) return problem(`${C}/events.jsonl`, `line ${lineno}: not a v1 record`), null;
    map.delete("hash");
    const h = hex(sha256(Buffer.from(canonical(map, false), "utf8")));
    if (h !== fields.hash) problem(`${C}/events.jsonl`, `event ${fields.seq} (v1) altered: its record does not give its hash`);
    return { v: 1, seq: fields.seq, fields, hash: fields.hash };
  }
  return problem(`${C}/events.jsonl`, `line ${lineno}: unknown event version`), null;
}

// ---- 5. the payload commitment ----------------------------------------------------------------
const seqsDisclosed = [...events.keys()].sort((a, b) => a - b);
const exported = events.get(seqsDisclosed[seqsDisclosed.length - 1]);
let withheld = new Map();
if (!exported || exported.v !== 2 || exported.fields.action !== "exported") {
  problem(`${C}/events.jsonl`, "its last event is not the package's own v2 exported event");
} else {
  const d = exported.fields.details;
  if (!own || own.fields.seq < exported.seq) problem(`${C}/checkpoint.json`, `does not cover the exported event ${exported.seq}`);
  const committed = d.files || {};
  for (const rel of fileDigests.keys()) {
    if (rel.startsWith(`${C}/`)) continue;
    if (!(rel in committed)) problem(rel, "not among the files the signed exported event commits to");
  }
  for (const [rel, digest] of Object.entries(committed)) {
    if (!payload.has(rel)) problem(rel, "committed to by the exported event but not in the package");
    else if (fileDigests.get(rel) !== digest) problem(rel, "its SHA-256 is not the one the signed exported event commits to");
  }
  const listed = new Set(d.events || []);
  for (const seq of seqsDisclosed) {
    if (seq !== exported.seq && !listed.has(seq)) problem(`${C}/events.jsonl`, `event ${seq} is not among the committed events`);
  }
  for (const seq of listed) if (!events.has(seq)) problem(`${C}/events.jsonl`, `committed event ${seq} is missing`);
  withheld = new Map(Object.entries(d.withheld_events || {}).map(([k, v]) => [Number(k), v]));
  for (const seq of withheld.keys()) if (!links.has(seq)) problem(`${C}/links.tsv`, `withheld event ${seq} has no link`);

  // ---- 6. completeness: walk each subject back through subject_prev ----------------------------
  const heads = { ...(d.heads || {}) };
  const walked = new Set();
  const walks = [[exported.fields.subject, exported.fields.subject_prev], ...Object.entries(heads)];
  for (const [subject, head] of walks) {
    let h = head;
    const seen = new Set();
    while (h) {
      const seq = byHash.get(h);
      if (seq === undefined) {
        problem(`${C}/links.tsv`, `subject ${subject}: an event (hash ${h.slice(0, 16)}…) is missing from the package`);
        break;
      }
      if (seen.has(seq)) {
        problem(`${C}/events.jsonl`, `subject ${subject}: its walk loops at event ${seq}`);
        break;
      }
      seen.add(seq);
      walked.add(seq);
      const ev = events.get(seq);
      if (ev && ev.v === 2) {
        if (ev.fields.subject !== subject) problem(`${C}/events.jsonl`, `event ${seq} is on the walk of ${subject} but names ${ev.fields.subject}`);
        h = ev.fields.subject_prev;
      } else if (ev && ev.v === 1) {
        notes.push(`subject ${subject}: its history before event ${seq} is version 1, whose completeness cannot be proven`);
        break;
      } else if (withheld.has(seq)) {
        h = withheld.get(seq);
      } else {
        problem(`${C}/events.jsonl`, `subject ${subject}: event ${seq} was left out of the package`);
        break;
      }
    }
  }
  for (const seq of seqsDisclosed) {
    const ev = events.get(seq);
    if (ev.v === 2 && !walked.has(seq) && seq !== exported.seq) problem(`${C}/events.jsonl`, `event ${seq} is on no committed subject's walk`);
  }
}

// ---- 7. item bindings -----------------------------------------------------------------------------
const bound = new Map();
for (const ev of events.values()) {
  const f = ev.fields;
  if (ev.v === 2 && BINDING.has(f.action) && typeof f.details.sha256 === "string") {
    if (!bound.has(String(f.subject))) bound.set(String(f.subject), new Set());
    bound.get(String(f.subject)).add(f.details.sha256);
  }
}
const caseBytes = tryRead("data/case.json", 64 << 20);
let items = [];
try {
  items = JSON.parse(caseBytes.toString("utf8")).items || [];
} catch {
  problem("data/case.json", "missing or not JSON");
}
for (const item of items) {
  if (!item || typeof item !== "object" || (item.withheld && !item.file)) continue;
  const subject = String(item.archive_no || item.item_no);
  if (!(bound.get(subject) || new Set()).has(item.sha256)) {
    problem("data/case.json", `item ${item.item_no}: its digest is not the one a v2 ingested, document_added or attested event of ${subject} records`);
  }
  if (item.file) {
    const digest = fileDigests.get(`data/${item.file}`);
    if (digest !== item.sha256) problem(`data/${item.file}`, `its SHA-256 is not item ${item.item_no}'s`);
  }
}

// ---- DER, just enough to find a time-stamp token's message imprint ------------------------------
function der(buf, pos) {
  const tag = buf[pos];
  let len = buf[pos + 1];
  let off = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4) throw new Error("bad length");
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + buf[off + k];
    off += n;
  }
  if (off + len > buf.length) throw new Error("truncated");
  return { tag, start: off, end: off + len };
}
function children(buf, node) {
  const out = [];
  for (let p = node.start; p < node.end; ) {
    const c = der(buf, p);
    out.push(c);
    p = c.end;
  }
  return out;
}
function tokenImprint(buf) {
  // TimeStampResp { status, timeStampToken ContentInfo { signedData OID, [0] SignedData {
  //   version, digestAlgorithms, encapContentInfo { id-ct-TSTInfo, [0] OCTET STRING TSTInfo } } } }
  // TSTInfo { version, policy, messageImprint { hashAlgorithm, hashedMessage }, ... }
  try {
    const resp = children(buf, der(buf, 0));
    const contentInfo = children(buf, resp[1]);
    const signedData = children(buf, children(buf, contentInfo[1])[0]);
    const encap = children(buf, signedData[2]);
    const octets = children(buf, encap[1])[0];
    const tst = children(buf, der(buf, octets.start));
    const imprint = children(buf, tst[2]);
    const alg = children(buf, imprint[0])[0];
    if (hex(buf.subarray(alg.start, alg.end)) !== "608648016503040201") return null; // SHA-256
    return hex(buf.subarray(imprint[1].start, imprint[1].end));
  } catch {
    return null;
  }
}

// ---- verdict ------------------------------------------------------------------------------------
const signer = own ? own.fields.key : "(none)";
process.stdout.write(`package: ${root}\nsigner: ${signer}\n`);
if (!trusted.size) process.stdout.write("no --trusted-key given: the signer cannot be trusted without one obtained apart from the package\n");
for (const n of notes) process.stdout.write(`note: ${n}\n`);
if (problems.length) {
  for (const p of problems) process.stdout.write(`PROBLEM ${p}\n`);
  process.stdout.write(`${problems.length} problem(s)\n`);
  process.exit(1);
}
process.stdout.write(`ok: ${payload.size} files, ${events.size} events, ${links.size} links, ${statements.length} checkpoint(s) checked\n`);
process.exit(0);
