#!/usr/bin/python3
"""An Uptane manifest signed by an independent implementation: securesystemslib (what python-tuf
uses; ed25519 through python3-nacl) makes each ECU's key, canonicalises `signed` with its own
encode_canonical and signs it, so a canonicalisation Node shares with itself would go unseen.

Input: one JSON object on stdin {"primary": serial, "ecus": {serial: {"installed_image": ...,
"report_counter": n, "timeserver_time": "..."}}} (each body signed as given, with its ecu_serial).
Output: one JSON line {"manifest": {...}, "keys": {serial: public key hex}}: every ECU's version
report signed by its own key, the vehicle manifest by the primary's.
"""

import json
import sys

from securesystemslib import formats, keys


def signed_document(signed, key):
    data = formats.encode_canonical(signed).encode("utf-8")
    return {"signed": signed, "signatures": [keys.create_signature(key, data)]}


def main():
    request = json.load(sys.stdin)
    ecu_keys = {serial: keys.generate_ed25519_key() for serial in request["ecus"]}
    reports = {
        serial: signed_document(dict(body, ecu_serial=serial), ecu_keys[serial])
        for serial, body in request["ecus"].items()
    }
    vehicle = {"primary_ecu_serial": request["primary"], "ecu_version_manifests": reports}
    manifest = signed_document(vehicle, ecu_keys[request["primary"]])
    public = {serial: key["keyval"]["public"] for serial, key in ecu_keys.items()}
    print(json.dumps({"manifest": manifest, "keys": public}))


if __name__ == "__main__":
    main()
