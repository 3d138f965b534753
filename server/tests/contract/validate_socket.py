"""Validates socket messages against Parlance's JSON Schema for them (/api/schema/socket.json).

Usage: validate_socket.py SCHEMA.json MESSAGES.jsonl, each line of MESSAGES {"from": "server"|"client", "message": {...}}.
Prints one JSON object: how many of each side were checked, and every message that failed, with why.
"""

import json
import sys

import jsonschema_rs

DEFINITION = {"server": "ServerEvent", "client": "ClientMessage"}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        document = json.load(file)
    validators = {}
    for side, name in DEFINITION.items():
        # The document's own $defs, entered through the one message type this side sends.
        schema = {"$schema": document["$schema"], "$ref": f"#/$defs/{name}", "$defs": document["$defs"]}
        validators[side] = jsonschema_rs.validator_for(schema)
    checked = {side: 0 for side in DEFINITION}
    failed = []
    with open(sys.argv[2], encoding="utf-8") as file:
        lines = file.readlines()
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        side, message = entry["from"], entry["message"]
        checked[side] += 1
        errors = [error.message for error in validators[side].iter_errors(message)]
        if errors:
            failed.append({"from": side, "type": message.get("type"), "errors": errors[:3]})
    json.dump({"checked": checked, "failed": failed}, sys.stdout)


if __name__ == "__main__":
    main()
