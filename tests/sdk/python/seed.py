"""Puts data in the server before schemathesis runs, so its requests reach real rows.

Without it most generated requests name users and memories that do not exist and get 404s,
and the 200 responses that carry memories, search hits and interactions are never checked
against the spec. Uses only the standard library (not a generated client, so a broken client
cannot hide schemathesis's findings).

Seeds two users: 15551234567 with memories saved through the API (no profile name, no time
zone: the optional fields are absent), and 15550001111 with a message sent on WhatsApp (the
webhook, unsigned as the development server accepts it), so it has an interaction and a
profile name. Writes {"users": [...], "memory_ids": [...]} to the path in argv[1] for hooks.py.

Environment: WM_BASE_URL, WM_API_KEY.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.parse
import urllib.request

API_USER = "15551234567"
WHATSAPP_USER = "15550001111"


def call(method: str, path: str, body: bytes | None = None, content_type: str | None = None, auth: bool = True) -> bytes:
    request = urllib.request.Request(os.environ["WM_BASE_URL"] + path, data=body, method=method)
    if auth:
        request.add_header("Authorization", f"Bearer {os.environ['WM_API_KEY']}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"seed: {method} {path} answered {error.code}: {error.read()[:300]!r}")


def create_memory(user: str, text: str, labels: list[str]) -> int:
    body = json.dumps({"memory_type": "text", "text": text, "labels": labels}).encode()
    created = json.loads(call("POST", f"/memories?user_id={user}", body, "application/json"))
    return int(created["id"])


def main() -> None:
    memory_ids = [
        create_memory(API_USER, "Lea's piano lessons with Mrs. Brandt start in September", ["family", "music"]),
        create_memory(API_USER, "The piano tuner comes on Tuesday at 10", []),
        create_memory(API_USER, "Wifi password at the cabin is larch-river-42", ["home"]),
    ]
    sid = "SM" + secrets.token_hex(16)
    form = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Ada",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": WHATSAPP_USER,
        "SmsStatus": "received",
        "Body": "Parking spot at the airport is P3 level 2, row F, piano bar exit",
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": f"whatsapp:+{WHATSAPP_USER}",
        "ApiVersion": "2010-04-01",
    }
    call("POST", "/webhook", urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded", auth=False)
    listed = json.loads(call("GET", f"/memories/list?user_id={WHATSAPP_USER}"))
    memory_ids += [int(m["id"]) for m in listed.get("items", [])]
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump({"users": [API_USER, WHATSAPP_USER], "memory_ids": memory_ids, "query": "piano"}, f)
    print(f"seed: users {API_USER} and {WHATSAPP_USER}, memories {memory_ids}")


if __name__ == "__main__":
    main()
