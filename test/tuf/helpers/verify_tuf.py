#!/usr/bin/python3
"""Independent check of a team's published TUF repository, with what python-tuf uses.

The TUF tests sign with Node (@tufjs/canonical-json + node:crypto) and verify with tuf-js, so a
canonicalisation both of them share cannot be seen there. This verifier uses Debian's
python3-securesystemslib (its canonical JSON encoder and SSlibKey signature checks, what
python-tuf and RSTUF sign and verify with; ed25519 through python3-nacl) and checks:

- every document (stored in gk_public.tuf_metadata and served from the blob store) parses, its
  `signed` canonicalises under securesystemslib to exactly the bytes Node signed, and its key
  order is the same under UTF-16 code units, code points and UTF-8 bytes;
- a served file is byte for byte the stored document of that role and version;
- root N+1 is signed by a threshold of root N and of itself; timestamp, snapshot and targets by
  a threshold of their role in a root of the chain; every bin by a threshold of the succinct
  delegation of a targets version, holding only paths that hash into that bin;
- from the served timestamp.json: the newest root, its snapshot, targets and every bin exist
  and verify (root -> targets -> bins -> snapshot -> timestamp);
- with `targets` given (the database's rows as PostgreSQL's JSON text, parsed here with exact
  integers): the published bins list exactly those targets.

Input: one JSON object on stdin {files: {name: text}, stored: [{role, version, document}],
canonical: {"role:version": text}, targets: text|null}. Output: one JSON line
{"ok", "errors", "documents"}; exit status 1 when anything failed.
"""

import hashlib
import json
import re
import sys

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Signature, SSlibKey

HEX = re.compile(r"^[0-9a-f]+$")
HASH_LENGTHS = {"sha256": 64, "sha512": 128}
errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


def utf16_key(s):
    return s.encode("utf-16-be")


def orders_agree(value, where):
    """Key order by code point (securesystemslib), UTF-8 bytes (go-tuf), UTF-16 (tuf-js)."""
    if isinstance(value, dict):
        keys = list(value)
        by_code_point = sorted(keys)
        if by_code_point != sorted(keys, key=utf16_key) or by_code_point != sorted(keys, key=lambda k: k.encode("utf-8")):
            fail(where, f"key order differs between UTF-16, code points and UTF-8: {by_code_point!r}")
        for k, v in value.items():
            orders_agree(v, where)
    elif isinstance(value, list):
        for v in value:
            orders_agree(v, where)
    elif isinstance(value, float):
        fail(where, f"float {value!r} cannot be signed as canonical JSON")


def canonical(signed, where):
    try:
        return encode_canonical(signed).encode("utf-8")
    except Exception as e:  # securesystemslib raises FormatError for floats and other types
        fail(where, f"securesystemslib cannot canonicalise it: {e}")
        return None


def verified_by(doc, keys, role, where):
    """Distinct keyids of `role` ({keyids, threshold}) whose signature over `signed` verifies."""
    data = canonical(doc["signed"], where)
    if data is None:
        return False
    good = set()
    for s in doc.get("signatures", []):
        keyid = s.get("keyid")
        if keyid not in role["keyids"] or keyid in good or keyid not in keys:
            continue
        try:
            SSlibKey.from_dict(keyid, dict(keys[keyid])).verify_signature(Signature(keyid, s["sig"]), data)
            good.add(keyid)
        except Exception:
            pass
    return len(good) >= role["threshold"]


def check_keys(keys, where):
    for keyid, key in keys.items():
        if hashlib.sha256(encode_canonical(key).encode("utf-8")).hexdigest() != keyid:
            fail(where, f"keyid {keyid} is not the sha256 of its canonical key")


def bin_of(path, bit_length):
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:4], "big") >> (32 - bit_length)


def bin_name(n, bit_length):
    width = len(f"{(1 << bit_length) - 1:x}")
    return f"bins-{n:0{width}x}"


def check_target_entry(path, entry, where):
    if not isinstance(entry.get("length"), int) or isinstance(entry.get("length"), bool) or entry["length"] < 0:
        fail(where, f"{path!r}: length {entry.get('length')!r} is not a non-negative integer")
    hashes = entry.get("hashes")
    if not isinstance(hashes, dict) or not hashes:
        fail(where, f"{path!r}: no hashes")
        return
    for alg, value in hashes.items():
        if alg not in HASH_LENGTHS or not isinstance(value, str) or not HEX.match(value) or len(value) != HASH_LENGTHS[alg]:
            fail(where, f"{path!r}: hash {alg}={value!r} is not a {alg} digest")


def main():
    given = json.load(sys.stdin)
    docs = {}  # (role, version) -> parsed document
    texts = {}
    for row in given["stored"]:
        texts[(row["role"], row["version"])] = row["document"]
    for name, text in given["files"].items():
        if name == "timestamp.json":
            continue
        m = re.match(r"^([0-9]+)\.(.+)\.json$", name)
        if not m:
            fail(name, "not a versioned metadata file")
            continue
        key = (m.group(2), int(m.group(1)))
        if key in texts and texts[key] != text:
            fail(name, "served file differs from the stored document")
        texts[key] = text  # what clients get is what must verify
    served_ts = given["files"].get("timestamp.json")
    if served_ts is not None:
        ts_version = json.loads(served_ts)["signed"]["version"]
        stored_ts = texts.get(("timestamp", ts_version))
        if stored_ts is not None and stored_ts != served_ts:
            fail("timestamp.json", "served file differs from the stored document")
        texts[("timestamp", ts_version)] = served_ts

    for (role, version), text in sorted(texts.items()):
        where = f"{version}.{role}.json"
        doc = json.loads(text)
        docs[(role, version)] = doc
        signed = doc.get("signed")
        if not isinstance(signed, dict):
            fail(where, "no signed object")
            continue
        if signed.get("version") != version:
            fail(where, f"signed.version is {signed.get('version')!r}")
        expected_type = "targets" if role.startswith("bins-") else role
        if signed.get("_type") != expected_type:
            fail(where, f"_type is {signed.get('_type')!r}")
        orders_agree(signed, where)
        data = canonical(signed, where)
        node = given["canonical"].get(f"{role}:{version}")
        if data is not None and node is not None and data != node.encode("utf-8"):
            fail(where, "securesystemslib's canonical bytes differ from the bytes Node signed")
        # The publisher writes `signed` as the canonical bytes it signed (bins from stored
        # fragments): they must be securesystemslib's, byte for byte.
        if data is not None and not text.encode("utf-8").endswith(b',"signed":' + data + b"}"):
            fail(where, "the document's signed part is not securesystemslib's canonical JSON")

    # Root chain: v1 is trusted, v(N+1) needs root vN's threshold and its own.
    roots = sorted(v for (r, v) in docs if r == "root")
    if not roots or roots[0] != 1:
        fail("root", "1.root.json is missing")
        print(json.dumps({"ok": False, "errors": errors, "documents": len(docs)}))
        return 1
    for v in roots:
        root = docs[("root", v)]["signed"]
        check_keys(root["keys"], f"{v}.root.json")
        if v > 1:
            if ("root", v - 1) not in docs:
                fail(f"{v}.root.json", f"root v{v - 1} is missing from the chain")
                continue
            prev = docs[("root", v - 1)]["signed"]
            if not verified_by(docs[("root", v)], prev["keys"], prev["roles"]["root"], f"{v}.root.json"):
                fail(f"{v}.root.json", f"not signed by a threshold of root v{v - 1}")
        if not verified_by(docs[("root", v)], root["keys"], root["roles"]["root"], f"{v}.root.json"):
            fail(f"{v}.root.json", "not signed by a threshold of its own root keys")
    root_versions = [docs[("root", v)]["signed"] for v in roots]

    def signed_by_a_root(role, version):
        doc = docs[(role, version)]
        return any(verified_by(doc, r["keys"], r["roles"][role], f"{version}.{role}.json") for r in root_versions)

    delegations = []  # (version, succinct_roles, keys) of every targets version
    for (role, version), doc in sorted(docs.items()):
        if role in ("timestamp", "snapshot", "targets") and not signed_by_a_root(role, version):
            fail(f"{version}.{role}.json", f"not signed by a threshold of the {role} role of any root")
        if role == "targets":
            d = doc["signed"].get("delegations", {})
            check_keys(d.get("keys", {}), f"{version}.targets.json")
            delegations.append((version, d.get("succinct_roles"), d.get("keys", {})))

    for (role, version), doc in sorted(docs.items()):
        if not role.startswith("bins-"):
            continue
        where = f"{version}.{role}.json"
        ok = False
        for _, succinct, keys in delegations:
            if succinct and verified_by(doc, keys, succinct, where):
                ok = True
                bit_length = succinct["bit_length"]
                for path, entry in doc["signed"].get("targets", {}).items():
                    if bin_name(bin_of(path, bit_length), bit_length) != role:
                        fail(where, f"{path!r} belongs to {bin_name(bin_of(path, bit_length), bit_length)}")
                    check_target_entry(path, entry, where)
                break
        if not ok:
            fail(where, "not signed by a threshold of any targets version's bins delegation")

    # The chain a client walks from the served timestamp.json, with the newest root.
    if served_ts is not None:
        root = root_versions[-1]
        ts = json.loads(served_ts)
        if not verified_by(ts, root["keys"], root["roles"]["timestamp"], "timestamp.json"):
            fail("timestamp.json", f"not signed by the timestamp role of root v{roots[-1]}")
        snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        snapshot = docs.get(("snapshot", snap_v))
        if snapshot is None:
            fail("timestamp.json", f"snapshot v{snap_v} is not published")
        else:
            if not verified_by(snapshot, root["keys"], root["roles"]["snapshot"], f"{snap_v}.snapshot.json"):
                fail(f"{snap_v}.snapshot.json", f"not signed by the snapshot role of root v{roots[-1]}")
            meta = snapshot["signed"]["meta"]
            targets_v = meta.get("targets.json", {}).get("version")
            targets = docs.get(("targets", targets_v))
            if targets is None:
                fail(f"{snap_v}.snapshot.json", f"targets v{targets_v} is not published")
            else:
                if not verified_by(targets, root["keys"], root["roles"]["targets"], f"{targets_v}.targets.json"):
                    fail(f"{targets_v}.targets.json", f"not signed by the targets role of root v{roots[-1]}")
                d = targets["signed"]["delegations"]
                succinct = d["succinct_roles"]
                published = {}
                for n in range(1 << succinct["bit_length"]):
                    name = bin_name(n, succinct["bit_length"])
                    v = meta.get(f"{name}.json", {}).get("version")
                    doc = docs.get((name, v))
                    if doc is None:
                        fail(f"{snap_v}.snapshot.json", f"{name} v{v} is not published")
                        continue
                    if not verified_by(doc, d["keys"], succinct, f"{v}.{name}.json"):
                        fail(f"{v}.{name}.json", f"not signed by the bins delegation of targets v{targets_v}")
                    published.update(doc["signed"].get("targets", {}))
                if given.get("targets") is not None:
                    # Exact integers: PostgreSQL's JSON text parsed by Python, not by JavaScript.
                    rows = json.loads(given["targets"]) or []
                    expected = {}
                    for r in rows:
                        entry = {"length": r["length"], "hashes": r["hashes"]}
                        if r.get("custom") is not None:
                            entry["custom"] = r["custom"]
                        expected[r["path"]] = entry
                    for path in sorted(set(expected) | set(published)):
                        a, b = expected.get(path), published.get(path)
                        if a is None or b is None:
                            fail("targets", f"{path!r} is {'only published' if a is None else 'not published'}")
                        elif canonical(a, "database") != canonical(b, "published"):
                            fail("targets", f"{path!r}: published {b!r}, database {a!r}")

    print(json.dumps({"ok": not errors, "errors": errors[:50], "documents": len(docs)}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
