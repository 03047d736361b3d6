#!/usr/bin/env python3
"""A loopback stand-in for Twilio's REST API, for the media phase of `make bench`.

It serves what the service's workers call while the webhook is loaded:

  GET  /2010-04-01/Accounts/{sid}/Messages/{MM}/Media/{ME}
       Basic auth (account sid : auth token) required, then 307 to /cdn/{ME}
  GET  /cdn/{ME}
       the sample JPEG (Content-Type: image/jpeg) or voice note (audio/ogg), for any ME; a request that carries an
       Authorization header is refused with 400, as Twilio's CDN does. Given both files (the soak), an ME
       whose hex digits start with a0d10 gets the voice note and any other the JPEG; with --vary-jpeg the
       JPEG's bytes differ per ME (its sid appended after the image's end: the same picture, a new file)
  POST /2010-04-01/Accounts/{sid}/Messages.json
       Basic auth required, then 201 with a Message resource ("SM" + 32 hex, "queued")
  GET  /2010-04-01/Accounts/{sid}/Messages.json
       Basic auth required, then an empty page ({"messages": []})

It binds 127.0.0.1 on a free port and writes the port to --port-file once it listens.
On SIGTERM or SIGINT (or after --max-seconds) it stops and writes its counts, one
key=value a line, to --stats-file. Standard library only.
"""

import argparse
import base64
import binascii
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API = "/2010-04-01/Accounts/"
MEDIA_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages/(MM[0-9a-fA-F]{32})/Media/(ME[0-9a-fA-F]{32})$")
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
CDN_PATH = re.compile(r"^/cdn/(ME[0-9a-fA-F]{32})$")
# With both --jpeg and --ogg, media sids starting ME + this get the voice note
# (examples/soak/traffic.rs marks them so).
VOICE_MARK = "a0d10"

# Every count the stats file reports, in order.
COUNTERS = (
    "media_api",  # authorised GETs of a media URL (answered 307)
    "media_cdn",  # media files served (JPEGs and voice notes)
    "voice_cdn",  # of those, voice notes served beside the JPEG (both files given)
    "cdn_with_authorization",  # CDN GETs that wrongly carried credentials (400)
    "messages_created",  # POST Messages.json answered 201
    "messages_listed",  # GET Messages.json
    "unauthorized",  # any 401
    "not_found",  # any 404
    "bad_requests",  # any other 4xx
)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.started = time.monotonic()

    def add(self, key):
        with self.lock:
            self.counts[key] += 1

    def write(self, path):
        with self.lock:
            lines = [f"{k}={v}" for k, v in self.counts.items()]
        lines.append(f"uptime_s={time.monotonic() - self.started:.1f}")
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as Twilio's API does: the service's client pools its connections.
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"

    # Set on the class by main().
    account_sid = ""
    expected_auth = ""
    jpeg = b""
    content_type = "image/jpeg"
    # Both files given: the voice note for media sids marked VOICE_MARK (else None).
    ogg = None
    vary_jpeg = False
    stats = None
    base_url = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # thousands of requests a run: keep stderr for real problems

    def send_body(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def twilio_error(self, status, code, message):
        key = {401: "unauthorized", 404: "not_found"}.get(status, "bad_requests")
        self.stats.add(key)
        body = json.dumps(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            }
        ).encode()
        extra = [("WWW-Authenticate", 'Basic realm="Twilio API"')] if status == 401 else []
        self.send_body(status, body, "application/json", extra)

    def media_for(self, media_sid):
        """The bytes and type served for one media sid."""
        if self.ogg is not None and media_sid[2:].lower().startswith(VOICE_MARK):
            self.stats.add("voice_cdn")
            return self.ogg, "audio/ogg"
        if self.vary_jpeg:
            # Decoders stop at the image's end marker: the same picture, another file.
            return self.jpeg + media_sid.encode(), self.content_type
        return self.jpeg, self.content_type

    def authorized(self, account):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic ") or account != self.account_sid:
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return given == self.expected_auth

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self):
        path = urlsplit(self.path).path
        m = MEDIA_PATH.match(path)
        if m:
            if not self.authorized(m.group(1)):
                return self.twilio_error(401, 20003, "Authenticate")
            self.stats.add("media_api")
            location = f"{self.base_url}/cdn/{m.group(3)}"
            return self.send_body(307, b"", "text/plain", [("Location", location)])
        m = CDN_PATH.match(path)
        if m:
            if self.headers.get("Authorization") is not None:
                self.stats.add("cdn_with_authorization")
                body = b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"
                return self.send_body(400, body, "application/xml")
            self.stats.add("media_cdn")
            return self.send_body(200, *self.media_for(m.group(1)))
        m = MESSAGES_PATH.match(path)
        if m:
            if not self.authorized(m.group(1)):
                return self.twilio_error(401, 20003, "Authenticate")
            self.stats.add("messages_listed")
            page = {"messages": [], "page": 0, "page_size": 50, "next_page_uri": None}
            return self.send_body(200, json.dumps(page).encode(), "application/json")
        return self.twilio_error(404, 20404, f"The requested resource {path} was not found")

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.read_body()
        m = MESSAGES_PATH.match(path)
        if not m:
            return self.twilio_error(404, 20404, f"The requested resource {path} was not found")
        account = m.group(1)
        if not self.authorized(account):
            return self.twilio_error(401, 20003, "Authenticate")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        to, sender, text = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to.startswith("whatsapp:+"):
            return self.twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not sender.startswith("whatsapp:+"):
            return self.twilio_error(400, 21212, f"Invalid 'From' Phone Number: {sender}")
        if not text:
            return self.twilio_error(400, 21602, "Message body is required.")
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "num_media": "0",
            "num_segments": "1",
            "sid": sid,
            "status": "queued",
            "to": to,
            "uri": f"{API}{account}/Messages/{sid}.json",
        }
        self.stats.add("messages_created")
        return self.send_body(201, json.dumps(resource).encode(), "application/json")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--account-sid", required=True)
    p.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"))
    p.add_argument("--jpeg", help="the JPEG every media URL serves")
    p.add_argument("--ogg", help="instead, the Ogg/Opus voice note every media URL serves; with --jpeg too, "
                   "the note for media sids starting ME" + VOICE_MARK + " and the JPEG for the others")
    p.add_argument("--vary-jpeg", action="store_true",
                   help="append the media sid to the JPEG, so every media URL serves a different file of the same picture")
    p.add_argument("--port-file", required=True, help="written with the port once listening")
    p.add_argument("--stats-file", required=True, help="written with the counts on exit")
    p.add_argument("--max-seconds", type=float, default=900, help="stop on its own after this long")
    args = p.parse_args()
    if not args.auth_token:
        sys.exit("fake_twilio: --auth-token (or TWILIO_AUTH_TOKEN) is required")

    if not (args.jpeg or args.ogg):
        sys.exit("fake_twilio: give --jpeg or --ogg (or both)")
    ogg = None
    if args.ogg:
        with open(args.ogg, "rb") as f:
            ogg = f.read()
        if not ogg.startswith(b"OggS"):
            sys.exit(f"fake_twilio: {args.ogg} is not an Ogg file")
    jpeg = ogg
    if args.jpeg:
        with open(args.jpeg, "rb") as f:
            jpeg = f.read()
        # The OCR phase serves its PNG screenshot the same way; say what it is.
        if not jpeg.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
            sys.exit(f"fake_twilio: {args.jpeg} is neither a JPEG nor a PNG")

    stats = Stats()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    Handler.account_sid = args.account_sid
    Handler.expected_auth = f"{args.account_sid}:{args.auth_token}"
    Handler.jpeg = jpeg
    Handler.content_type = ("image/png" if jpeg.startswith(b"\x89PNG") else "image/jpeg") if args.jpeg else "audio/ogg"
    Handler.ogg = ogg if args.jpeg else None
    Handler.vary_jpeg = bool(args.jpeg and args.vary_jpeg)
    Handler.stats = stats
    Handler.base_url = f"http://127.0.0.1:{port}"

    def stop(*_):
        # shutdown() waits for serve_forever() to return: never call it on its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.max_seconds, stop)
    timer.daemon = True
    timer.start()

    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        stats.write(args.stats_file)


if __name__ == "__main__":
    main()
