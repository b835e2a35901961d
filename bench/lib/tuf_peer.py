#!/usr/bin/python3
"""The peer cost for bench/tuf.ts: what python-tuf (and so RSTUF) pays to canonicalise and sign
N empty hashed-bin documents in memory, with Debian's python3-securesystemslib (its canonical
JSON encoder and an ed25519 signature through python3-nacl, as SSlibSigner does). Nothing is
stored. Prints one JSON line {"documents", "seconds"}; the timing excludes interpreter start-up.

Usage: /usr/bin/python3 bench/lib/tuf_peer.py N [documents.jsonl]
With a file, the N `signed` objects in it (one JSON per line) instead of N empty bins.
"""

import json
import sys
import time

from securesystemslib import keys
from securesystemslib.formats import encode_canonical


def main():
    n = int(sys.argv[1])
    key = keys.generate_ed25519_key()
    if len(sys.argv) > 2:
        # The `signed` objects of our own published documents, one JSON per line (read untimed).
        with open(sys.argv[2], encoding="utf-8") as f:
            documents = [json.loads(line) for line in f][:n]
    else:
        documents = None
    signatures = []
    t0 = time.perf_counter()
    for i in range(n):
        signed = documents[i] if documents else {
            "_type": "targets",
            "spec_version": "1.0.31",
            "version": 1,
            "expires": "2026-12-31T00:00:00Z",
            "targets": {},
        }
        data = encode_canonical(signed).encode("utf-8")
        signatures.append(keys.create_signature(key, data))
    print(json.dumps({"documents": n, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
