#!/usr/bin/python3
"""Independent check of a robot's director metadata with securesystemslib (what python-tuf uses).

Node signs (@tufjs/canonical-json + node:crypto) and tuf-js verifies, so a canonicalisation both
share would go unseen. Here, with Debian's python3-securesystemslib (ed25519 through
python3-nacl):

- every document's `signed` canonicalises under securesystemslib to exactly the bytes Node
  signed (given as `canonical`);
- root N+1 is signed by root N's root keys and by its own;
- timestamp, snapshot and targets are signed by the online key of the newest root, timestamp
  names the snapshot's version and snapshot the targets' version;
- every target has sha256/sha512 of the right length and names its ECUs in custom.ecuIdentifiers.

Input: one JSON object on stdin {roots: [text...] (version order), timestamp, snapshot, targets:
text, canonical: {name: text}}. Output: one JSON line {"ok", "errors"}; exit 1 on failure.
"""

import json
import sys

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Signature, SSlibKey

errors = []


def verified_by(doc, keys, role, where):
    data = encode_canonical(doc["signed"]).encode()
    good = set()
    for s in doc["signatures"]:
        keyid = s["keyid"]
        if keyid in role["keyids"] and keyid in keys:
            try:
                SSlibKey.from_dict(keyid, dict(keys[keyid])).verify_signature(Signature(keyid, s["sig"]), data)
                good.add(keyid)
            except Exception as e:  # noqa: BLE001 - any failure is a finding
                errors.append(f"{where}: signature by {keyid[:12]} does not verify: {e}")
    if len(good) < role["threshold"]:
        errors.append(f"{where}: {len(good)} valid signatures, threshold {role['threshold']}")


def main():
    given = json.load(sys.stdin)
    for name, text in given["canonical"].items():
        doc = json.loads(given[name] if name in ("timestamp", "snapshot", "targets") else given["roots"][int(name.split(":")[1]) - 1])
        if encode_canonical(doc["signed"]) != text:
            errors.append(f"{name}: securesystemslib canonicalises it differently from the signed bytes")
    roots = [json.loads(r) for r in given["roots"]]
    for i, root in enumerate(roots):
        own = root["signed"]
        verified_by(root, own["keys"], own["roles"]["root"], f"root v{own['version']} by itself")
        if i > 0:
            prev = roots[i - 1]["signed"]
            verified_by(root, prev["keys"], prev["roles"]["root"], f"root v{own['version']} by v{prev['version']}")
    newest = roots[-1]["signed"]
    docs = {n: json.loads(given[n]) for n in ("timestamp", "snapshot", "targets")}
    for n, d in docs.items():
        verified_by(d, newest["keys"], newest["roles"][n], n)
    if docs["timestamp"]["signed"]["meta"]["snapshot.json"]["version"] != docs["snapshot"]["signed"]["version"]:
        errors.append("timestamp does not name the snapshot's version")
    if docs["snapshot"]["signed"]["meta"]["targets.json"]["version"] != docs["targets"]["signed"]["version"]:
        errors.append("snapshot does not name the targets' version")
    for path, t in docs["targets"]["signed"]["targets"].items():
        if len(t["hashes"].get("sha256", "")) != 64 or len(t["hashes"].get("sha512", "")) != 128:
            errors.append(f"target {path}: bad hashes")
        if not t.get("custom", {}).get("ecuIdentifiers"):
            errors.append(f"target {path}: no ECU identifiers")
    print(json.dumps({"ok": not errors, "errors": errors}))
    sys.exit(1 if errors else 0)


main()
