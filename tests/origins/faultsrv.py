#!/usr/bin/python3
"""faultsrv: a fault-injecting HTTP origin / reverse proxy for bbcache's tests.

Two modes:
  --serve DIR       be the origin: GET/HEAD of the files under DIR with single
                    Range (206/416), a strong ETag (quoted md5 of the content),
                    Last-Modified, If-Match (412), If-None-Match (304), If-Range,
                    HTTP/1.1 keep-alive, and a JSON listing in nginx's
                    `autoindex_format json` shape for paths ending in '/'.
  --upstream URL    a reverse proxy to nginx or s3rver: method, path, query,
                    headers and body are forwarded unchanged (PUT/POST too).
                    With --sigv4-check every request's AWS SigV4 Authorization
                    is verified independently with botocore (Debian's awscli
                    ships it) before it is forwarded; a mismatch is answered
                    403 SignatureDoesNotMatch.

Control API (never forwarded, never faulted, not counted):
  POST /__fault   JSON rule or list of rules, applied to the next requests
                  whose path matches rule["match"] (fnmatch glob, '*' matches
                  '/' too). See docs/testing.md for the modes and parameters.
  GET  /__faults  the active rules with their remaining counts
  GET  /__stats   JSON counters (add ?log=1 for the per-request log)
  POST /__reset   clear rules, counters and log; wakes stalled responses
  DELETE /__fault clear the rules only

Standard library only (plus botocore for --sigv4-check).
"""

import argparse
import datetime
import email.utils
import fnmatch
import hashlib
import hmac
import http.client
import http.server
import json
import logging
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import uuid

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding",
    "upgrade", "expect",
}
STATUS_MODES = re.compile(r"^[1-5][0-9][0-9]$")
BODY_MODES = {"reset", "truncate", "badlength", "stall", "slow"}
ALL_MODES = BODY_MODES | {"replace"}
CHUNK = 256 * 1024
LOG_MAX = 20000
XOR_5A = bytes(i ^ 0x5A for i in range(256))

log = logging.getLogger("faultsrv")


class Abort(Exception):
    """The connection was cut on purpose (or the peer went away)."""


class State:
    """Fault rules, counters and the request log, shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set by /__reset to end stalls
        self.gen = 0  # bumped by /__reset
        self.rules = []
        self.next_id = 1
        self.reset_stats()

    def reset_stats(self):
        self.total = 0
        self.by_path = {}
        self.by_method = {}
        self.by_status = {}
        self.faults = {}
        self.faults_total = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.ranged = 0
        self.if_match = 0
        self.replaced = 0
        self.credentials = 0
        self.sigv4 = {"good": 0, "bad": 0, "unsigned": 0}
        self.log = []

    def add_rule(self, rule):
        if not isinstance(rule, dict):
            raise ValueError("a rule is a JSON object")
        mode = str(rule.get("mode", ""))
        if not (STATUS_MODES.match(mode) or mode in ALL_MODES):
            raise ValueError("unknown mode %r" % mode)
        r = dict(rule)
        r["mode"] = mode
        r.setdefault("match", "*")
        r["count"] = int(r.get("count", 1))
        r["skip"] = int(r.get("skip", 0))
        if "method" in r and isinstance(r["method"], str):
            r["method"] = [r["method"]]
        if "method" in r:
            r["method"] = [m.upper() for m in r["method"]]
        with self.lock:
            r["id"] = self.next_id
            self.next_id += 1
            r["applied"] = 0
            self.rules.append(r)
        return r["id"]

    def take(self, method, path, ranged):
        """The first rule that matches and has count left, consumed."""
        dpath = urllib.parse.unquote(path)
        with self.lock:
            for r in self.rules:
                if r["count"] == 0:
                    continue
                if not (fnmatch.fnmatchcase(path, r["match"]) or
                        fnmatch.fnmatchcase(dpath, r["match"])):
                    continue
                if "method" in r and method not in r["method"]:
                    continue
                if r["mode"] == "replace":
                    # replace acts on ranged GETs only
                    if method != "GET" or not ranged:
                        continue
                elif "range" in r and bool(r["range"]) != ranged:
                    continue
                if r["skip"] > 0:
                    r["skip"] -= 1
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                r["applied"] += 1
                return dict(r)
        return None

    def count_fault(self, mode, gen):
        with self.lock:
            if gen != self.gen:
                return
            self.faults[mode] = self.faults.get(mode, 0) + 1
            self.faults_total += 1

    def record(self, entry, gen):
        with self.lock:
            if gen != self.gen:
                return  # began before a /__reset
            self.total += 1
            p = self.by_path.setdefault(entry["path"], {})
            p[entry["method"]] = p.get(entry["method"], 0) + 1
            self.by_method[entry["method"]] = self.by_method.get(entry["method"], 0) + 1
            st = str(entry["status"])
            self.by_status[st] = self.by_status.get(st, 0) + 1
            self.bytes_out += entry.get("bytes", 0)
            self.bytes_in += entry.get("bytes_in", 0)
            if entry.get("range"):
                self.ranged += 1
            if entry.get("if_match"):
                self.if_match += 1
            if entry.get("credentials"):
                self.credentials += 1
            if len(self.log) < LOG_MAX:
                self.log.append(entry)

    def snapshot(self, with_log):
        with self.lock:
            s = {
                "total": self.total,
                "by_path": self.by_path,
                "by_method": self.by_method,
                "by_status": self.by_status,
                "faults": self.faults,
                "faults_total": self.faults_total,
                "bytes_out": self.bytes_out,
                "bytes_in": self.bytes_in,
                "ranged": self.ranged,
                "if_match": self.if_match,
                "replaced": self.replaced,
                "credentials": self.credentials,
                "sigv4": self.sigv4,
                "rules": self.rules,
            }
            if with_log:
                s["log"] = self.log
            return json.loads(json.dumps(s))


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def s3_error(code, message, resource=""):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message><Resource>%s</Resource><RequestId>%s</RequestId></Error>'
            % (code, xml_escape(message), xml_escape(resource), uuid.uuid4().hex[:16].upper()))
    return body.encode()


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class ETagCache:
    """md5 ETags of files, keyed by (path, dev, ino, size, mtime_ns)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cache = {}

    def get(self, path, st):
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self.lock:
            if key in self.cache:
                return self.cache[key]
        h = hashlib.md5()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
        etag = '"%s"' % h.hexdigest()
        with self.lock:
            if len(self.cache) > 100000:
                self.cache.clear()
            self.cache[key] = etag
        return etag


# ---------------------------------------------------------------------------
# SigV4 verification with botocore

_botocore = None


def load_botocore():
    global _botocore
    if _botocore is None:
        try:
            import botocore.auth  # noqa: F401  (python3-botocore)
        except ImportError:
            # Debian's awscli (v2) vendors botocore as awscli.botocore and
            # aliases it to 'botocore' once awscli is imported.
            import awscli  # noqa: F401
            import botocore.auth  # noqa: F401
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        _botocore = botocore
    return _botocore


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$")


def s3_canonical_path(raw_path):
    # S3 decodes the path and encodes it again, each byte but unreserved
    # characters and '/', with no other normalisation.
    return urllib.parse.quote(urllib.parse.unquote(raw_path), safe="/~")


def s3_canonical_query(raw_query):
    # S3 decodes every name and value and encodes it again (RFC 3986
    # unreserved characters left alone); botocore sorts the pairs.
    pairs = []
    if raw_query:
        for pair in raw_query.split("&"):
            k, _, v = pair.partition("=")
            pairs.append("%s=%s" % (
                urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~"),
                urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")))
    return "&".join(pairs)


def carries_credentials(headers, raw_query):
    """Does the request carry any credential: an Authorization header, a
    session token, or a presigned query (X-Amz-Credential, X-Amz-Signature,
    or the SigV2 Signature/AWSAccessKeyId)?"""
    if headers.get("Authorization") or headers.get("X-Amz-Security-Token"):
        return True
    names = {k.lower() for k, _ in urllib.parse.parse_qsl(raw_query, keep_blank_values=True)}
    return bool(names & {"x-amz-credential", "x-amz-signature", "x-amz-security-token",
                         "signature", "awsaccesskeyid"})


def sigv4_verify(method, raw_path, raw_query, headers, body, access_key, secret_key):
    """Returns (ok, http_status, s3_code, message)."""
    bc = load_botocore()
    auth = headers.get("Authorization")
    if not auth:
        return False, 403, "AccessDenied", "request is not signed"
    m = AUTH_RE.match(auth.strip())
    if not m:
        return False, 400, "AuthorizationHeaderMalformed", "malformed Authorization header"
    cred, signed, signature = m.group(1), m.group(2), m.group(3).lower()
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return False, 400, "AuthorizationHeaderMalformed", "malformed credential scope %r" % cred
    ak, scope_date, region, service, _ = parts
    if ak != access_key:
        return False, 403, "InvalidAccessKeyId", "unknown access key"
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        d = headers.get("Date")
        if not d:
            return False, 403, "AccessDenied", "no x-amz-date or date header"
        try:
            amz_date = email.utils.parsedate_to_datetime(d).strftime("%Y%m%dT%H%M%SZ")
        except (TypeError, ValueError):
            return False, 403, "AccessDenied", "bad date header"
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return False, 403, "AccessDenied", "bad x-amz-date %r" % amz_date
    if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 900:
        return False, 403, "RequestTimeTooSkewed", "request time too skewed"
    if scope_date != amz_date[:8]:
        return False, 403, "SignatureDoesNotMatch", "credential scope date differs from x-amz-date"
    signed_names = signed.lower().split(";")
    unsigned = sorted({k.lower() for k in headers.keys()
                       if k.lower().startswith("x-amz-")} - set(signed_names))
    if unsigned:
        return False, 403, "AccessDenied", \
            "There were headers present in the request which were not signed: " + \
            ", ".join(unsigned)
    if "host" not in signed_names:
        return False, 403, "SignatureDoesNotMatch", "host is not a signed header"
    if service == "s3":
        sha = headers.get("X-Amz-Content-SHA256")
        if sha is None:
            return False, 400, "InvalidRequest", \
                "Missing required header for this request: x-amz-content-sha256"
        if re.match(r"^[0-9a-fA-F]{64}$", sha) and hashlib.sha256(body or b"").hexdigest() != sha.lower():
            return False, 400, "XAmzContentSHA256Mismatch", \
                "The provided 'x-amz-content-sha256' header does not match what was computed."
    url = "http://%s%s" % (headers.get("Host", "localhost"), s3_canonical_path(raw_path))
    q = s3_canonical_query(raw_query)
    if q:
        url += "?" + q
    req = bc.awsrequest.AWSRequest(method=method, url=url, data=body or b"")
    for name in signed_names:
        vals = headers.get_all(name)
        if vals is None:
            return False, 403, "SignatureDoesNotMatch", "signed header %r is missing" % name
        for v in vals:
            req.headers[name] = v
    creds = bc.credentials.Credentials(ak, secret_key)
    signer_cls = bc.auth.S3SigV4Auth if service == "s3" else bc.auth.SigV4Auth
    signer = signer_cls(creds, service, region)
    req.context["timestamp"] = amz_date
    canonical = signer.canonical_request(req)
    sts = signer.string_to_sign(req, canonical)
    expect = signer.signature(sts, req)
    if signer.signed_headers(signer.headers_to_sign(req)) != ";".join(sorted(signed_names)):
        return False, 403, "SignatureDoesNotMatch", "SignedHeaders not in canonical form"
    if not hmac.compare_digest(expect, signature):
        log.info("sigv4 mismatch: canonical request was:\n%s", canonical)
        return False, 403, "SignatureDoesNotMatch", \
            "The request signature we calculated does not match the signature you provided."
    return True, 200, "", ""


# ---------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultsrv/1"
    timeout = 300

    # quiet the default stderr logging; we log to our own file
    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.client_address[0], *args)

    def do_GET(self):
        self.dispatch()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    # -- plumbing ---------------------------------------------------------

    @property
    def st(self):
        return self.server.state

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            out = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise Abort("eof in chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                out.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(out)
        n = int(self.headers.get("Content-Length") or 0)
        if n <= 0:
            return b""
        data = self.rfile.read(n)
        if len(data) != n:
            raise Abort("short request body")
        return data

    def send_simple(self, status, body=b"", ctype="text/plain", extra=(), close=False):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        return len(body) if self.command != "HEAD" else 0

    def send_json(self, status, obj):
        return self.send_simple(status, (json.dumps(obj, indent=1) + "\n").encode(),
                                "application/json")

    def rst(self):
        """Cut the connection with a TCP RST."""
        try:
            time.sleep(0.05)  # let what was sent reach the peer first
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def fin(self):
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # -- dispatch ---------------------------------------------------------

    def dispatch(self):
        u = urllib.parse.urlsplit(self.path)
        raw_path, raw_query = u.path or "/", u.query
        if raw_path.startswith("/__"):
            return self.control(raw_path, raw_query)
        gen = self.st.gen
        self._sent = 0
        entry = {
            "t": round(time.time(), 3), "method": self.command, "path": raw_path,
            "query": raw_query, "range": self.headers.get("Range"),
            "if_match": self.headers.get("If-Match"), "status": 0, "fault": None,
            "bytes": 0, "credentials": carries_credentials(self.headers, raw_query),
        }
        try:
            try:
                body = self.read_body()
            except (ValueError, Abort):
                entry["status"] = 400
                self.send_simple(400, b"bad request body\n", close=True)
                return
            entry["bytes_in"] = len(body)
            if self.server.sigv4:
                ok, status, code, msg = sigv4_verify(
                    self.command, raw_path, raw_query, self.headers, body,
                    self.server.access_key, self.server.secret_key)
                with self.st.lock:
                    if gen != self.st.gen:
                        pass
                    elif ok:
                        self.st.sigv4["good"] += 1
                    elif not self.headers.get("Authorization"):
                        self.st.sigv4["unsigned"] += 1
                    else:
                        self.st.sigv4["bad"] += 1
                if not ok:
                    log.info("sigv4 %s %s: %s %s", self.command, self.path, code, msg)
                    entry["status"] = status
                    entry["sigv4"] = code
                    entry["bytes"] = self.send_simple(
                        status, s3_error(code, msg, raw_path), "application/xml")
                    return
            fault = self.st.take(self.command, raw_path, bool(self.headers.get("Range")))
            if fault and STATUS_MODES.match(fault["mode"]):
                entry["fault"] = fault["mode"]
                self.st.count_fault(fault["mode"], gen)
                entry["status"] = int(fault["mode"])
                entry["bytes"] = self.fault_status(fault, raw_path)
                return
            if fault and fault["mode"] == "replace" and not self.server.root:
                fault = None  # replace needs --serve (refused at POST time)
            if fault:
                entry["fault"] = fault["mode"]
                self.st.count_fault(fault["mode"], gen)
            if self.server.root:
                self.serve(raw_path, entry, fault)
            else:
                self.proxy(body, entry, fault)
        except Abort as e:
            log.info("%s %s: connection cut: %s", self.command, self.path, e)
            entry["bytes"] = self._sent
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
            log.info("%s %s: peer went away: %s", self.command, self.path, e)
            entry["bytes"] = self._sent
            self.close_connection = True
        finally:
            log.info("%s %s %s range=%s if-match=%s fault=%s bytes=%d",
                     self.command, self.path, entry["status"], entry["range"],
                     entry["if_match"], entry["fault"], entry["bytes"])
            self.st.record(entry, gen)

    # -- control API ------------------------------------------------------

    def control(self, path, query):
        try:
            body = self.read_body()
        except (ValueError, Abort):
            return self.send_simple(400, b"bad body\n", close=True)
        qs = urllib.parse.parse_qs(query)
        if path == "/__fault" and self.command == "POST":
            try:
                spec = json.loads(body.decode() or "null")
                rules = spec if isinstance(spec, list) else [spec]
                for r in rules:
                    if isinstance(r, dict) and r.get("mode") == "replace" and not self.server.root:
                        raise ValueError("mode replace needs --serve")
                ids = [self.st.add_rule(r) for r in rules]
            except (ValueError, TypeError) as e:
                return self.send_json(400, {"ok": False, "error": str(e)})
            log.info("fault rules added: %s", body.decode(errors="replace"))
            return self.send_json(200, {"ok": True, "ids": ids})
        if path == "/__fault" and self.command == "DELETE":
            with self.st.lock:
                self.st.rules = []
            return self.send_json(200, {"ok": True})
        if path == "/__faults" and self.command in ("GET", "HEAD"):
            with self.st.lock:
                rules = json.loads(json.dumps(self.st.rules))
            return self.send_json(200, rules)
        if path == "/__stats" and self.command in ("GET", "HEAD"):
            return self.send_json(200, self.st.snapshot(qs.get("log", ["0"])[0] not in ("0", "")))
        if path == "/__reset" and self.command == "POST":
            with self.st.lock:
                self.st.rules = []
                self.st.reset_stats()
                self.st.gen += 1
            self.st.wake.set()
            time.sleep(0.01)
            self.st.wake = threading.Event()
            log.info("reset")
            return self.send_json(200, {"ok": True})
        return self.send_json(404, {"ok": False, "error": "no such control endpoint"})

    # -- faults -----------------------------------------------------------

    def fault_status(self, fault, raw_path):
        status = int(fault["mode"])
        extra = []
        if "retry_after" in fault:
            extra.append(("Retry-After", str(fault["retry_after"])))
        codes = {503: "SlowDown", 429: "TooManyRequests", 500: "InternalError",
                 408: "RequestTimeout", 403: "AccessDenied", 404: "NoSuchKey",
                 400: "BadRequest", 502: "BadGateway", 504: "GatewayTimeout"}
        if "body" in fault:
            body, ctype = str(fault["body"]).encode(), "text/plain"
        else:
            body = s3_error(codes.get(status, "Error%d" % status),
                            "fault injected by faultsrv", raw_path)
            ctype = "application/xml"
        return self.send_simple(status, body, ctype, extra, close=bool(fault.get("close")))

    def emit(self, status, headers, length, chunks, fault, sendfile=None, proxied=False):
        """Send a response of `length` body bytes from the iterator `chunks`,
        applying a body fault. Returns the number of body bytes sent."""
        mode = fault["mode"] if fault and fault["mode"] in BODY_MODES else None
        has_body = self.command != "HEAD" and length > 0 and status not in (204, 304)
        if mode in ("reset", "truncate", "badlength", "stall") and not has_body:
            # Nothing to cut: drop the connection without an answer.
            if mode == "reset":
                self.rst()
            else:
                self.fin()
            raise Abort("%s of a response without a body" % mode)
        announced = length
        limit = length
        if mode in ("reset", "truncate", "stall"):
            limit = int(fault.get("bytes", length // 2))
            limit = max(0, min(limit, length - 1))
        elif mode == "badlength":
            if fault.get("announce", "larger") == "smaller":
                delta = int(fault.get("delta", max(1, length // 2)))
                announced = max(0, length - delta)
            else:
                announced = length + int(fault.get("delta", 1024))
        if proxied:  # upstream's Date and Server are in headers
            self.log_request(status)
            self.send_response_only(status)
        else:
            self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        if self.command == "HEAD" or status in (204, 304):
            return 0
        rate = float(fault.get("rate", 65536)) if mode == "slow" else 0
        if mode is None and sendfile is not None:
            f, off = sendfile
            self.wfile.flush()
            sent = self.connection.sendfile(f, off, length)
            if sent != length:
                raise Abort("sendfile sent %d of %d" % (sent, length))
            return sent
        sent = 0
        rest = b""  # what a cut left of the current chunk
        t0 = time.monotonic()
        for chunk in chunks:
            if sent + len(chunk) > limit:
                chunk, rest = chunk[:limit - sent], chunk[limit - sent:]
            if rate > 0:
                piece = max(1, int(rate / 20))
                for i in range(0, len(chunk), piece):
                    self.wfile.write(chunk[i:i + piece])
                    sent += len(chunk[i:i + piece])
                    self._sent = sent
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            else:
                self.wfile.write(chunk)
                sent += len(chunk)
                self._sent = sent
            if rest:
                break
        self.wfile.flush()
        if mode == "reset":
            self.rst()
            raise Abort("reset after %d of %d bytes" % (sent, length))
        if mode == "truncate":
            self.fin()
            raise Abort("truncated after %d of %d bytes" % (sent, length))
        if mode == "badlength":
            self.fin()
            raise Abort("sent %d bytes, announced %d" % (sent, announced))
        if mode == "stall":
            self.st.wake.wait(float(fault.get("seconds", 30)))
            if fault.get("then", "close") == "continue":
                self.wfile.write(rest)
                sent += len(rest)
                for chunk in chunks:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                return sent
            self.fin()
            raise Abort("stalled after %d of %d bytes, then closed" % (sent, length))
        if sent != length:
            raise Abort("body ended after %d of %d bytes" % (sent, length))
        return sent

    # -- serve mode -------------------------------------------------------

    def local_path(self, raw_path):
        rel = urllib.parse.unquote(raw_path).lstrip("/")
        root = self.server.root
        full = os.path.realpath(os.path.join(root, rel))
        if full != root and not full.startswith(root + os.sep):
            return None
        return full

    def serve(self, raw_path, entry, fault):
        if self.command not in ("GET", "HEAD"):
            entry["status"] = 405
            entry["bytes"] = self.send_simple(405, b"method not allowed\n",
                                              extra=[("Allow", "GET, HEAD")])
            return
        full = self.local_path(raw_path)
        if full is None or not os.path.exists(full):
            entry["status"] = 404
            entry["bytes"] = self.send_simple(404, b"not found\n")
            return
        if os.path.isdir(full):
            if not raw_path.endswith("/"):
                entry["status"] = 301
                entry["bytes"] = self.send_simple(
                    301, b"moved\n", extra=[("Location", raw_path + "/")])
                return
            body = self.listing(full)
            entry["status"] = 200
            entry["bytes"] = self.emit(200, [("Content-Type", "application/json")],
                                       len(body), iter([body]), fault)
            return
        try:
            f = open(full, "rb")
        except OSError:
            entry["status"] = 403
            entry["bytes"] = self.send_simple(403, b"forbidden\n")
            return
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = self.server.etags.get(full, st)
            base = [("ETag", etag), ("Last-Modified", http_date(st.st_mtime)),
                    ("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]
            im = self.headers.get("If-Match")
            if im is not None and im.strip() != "*" and \
                    etag not in [t.strip() for t in im.split(",")]:
                entry["status"] = 412
                entry["bytes"] = self.send_simple(412, b"precondition failed\n",
                                                  extra=[("ETag", etag)])
                return
            inm = self.headers.get("If-None-Match")
            if inm is not None and (inm.strip() == "*" or
                                    etag in [t.strip() for t in inm.split(",")]):
                entry["status"] = 304
                self.send_response(304)
                for k, v in base:
                    self.send_header(k, v)
                self.end_headers()
                return
            start, end = 0, size - 1
            status = 200
            rng = self.headers.get("Range")
            if rng is not None and self.headers.get("If-Range") not in (None, etag):
                rng = None  # If-Range does not match: whole object
            if rng is not None:
                r = parse_range(rng, size)
                if r == "unsatisfiable":
                    entry["status"] = 416
                    entry["bytes"] = self.send_simple(
                        416, b"range not satisfiable\n",
                        extra=[("Content-Range", "bytes */%d" % size)])
                    return
                if r is not None:
                    start, end = r
                    status = 206
                    base.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
            length = end - start + 1 if size else 0
            entry["status"] = status

            def chunks():
                f.seek(start)
                left = length
                while left > 0:
                    b = f.read(min(CHUNK, left))
                    if not b:
                        return
                    left -= len(b)
                    yield b

            try:
                entry["bytes"] = self.emit(status, base, length, chunks(), fault,
                                           sendfile=(f, start))
            finally:
                if fault and fault["mode"] == "replace":
                    self.replace(full)

    def replace(self, full):
        """Give the object new content of the same size (every byte XOR 0x5a),
        written to a temporary name and renamed over it: new ETag, new mtime."""
        tmp = "%s.faultsrv-replace.%d" % (full, threading.get_ident())
        with open(full, "rb") as src, open(tmp, "wb") as dst:
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                dst.write(b.translate(XOR_5A))
        st = os.stat(full)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.utime(tmp, ns=(st.st_atime_ns, max(st.st_mtime_ns + 1_000_000_000, time.time_ns())))
        os.rename(tmp, full)
        with self.st.lock:
            self.st.replaced += 1  # (a replace always follows a counted request)
        log.info("replaced %s", full)

    def listing(self, full):
        dirs, files = [], []
        for e in os.scandir(full):
            if e.name.startswith(".") or ".faultsrv-replace." in e.name:
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            if e.is_dir():
                dirs.append((e.name, st))
            else:
                files.append((e.name, st))
        rows = []
        for name, st in sorted(dirs):
            rows.append('{ "name":%s, "type":"directory", "mtime":"%s" }'
                        % (json.dumps(name), http_date(st.st_mtime)))
        for name, st in sorted(files):
            rows.append('{ "name":%s, "type":"file", "mtime":"%s", "size":%d }'
                        % (json.dumps(name), http_date(st.st_mtime), st.st_size))
        return ("[\r\n" + ",\r\n".join(rows) + "\r\n]").encode()

    # -- upstream mode ----------------------------------------------------

    def upstream_conn(self, fresh=False):
        c = getattr(self, "_up", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            u = self.server.upstream
            c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300)
            self._up = c
        return c

    def proxy(self, body, entry, fault):
        headers = []
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            headers.append((k, v))
        if body or self.command in ("PUT", "POST", "PATCH") or "Content-Length" in self.headers:
            headers.append(("Content-Length", str(len(body))))
        path = self.server.upstream_prefix + self.path
        resp = None
        for attempt in (0, 1):
            c = self.upstream_conn(fresh=attempt > 0)
            try:
                c.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    c.putheader(k, v)
                c.endheaders(body if body else None)
                resp = c.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError, http.client.CannotSendRequest,
                    http.client.BadStatusLine) as e:
                if attempt == 0:
                    continue
                log.warning("upstream: %s", e)
            except OSError as e:
                log.warning("upstream: %s", e)
                break
        if resp is None:
            entry["status"] = 502
            entry["bytes"] = self.send_simple(502, b"upstream unreachable\n")
            return
        rheaders = []
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                continue
            rheaders.append((k, v))
        entry["status"] = resp.status
        length = resp.length
        if self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            cl = resp.getheader("Content-Length")
            resp.read()
            self.log_request(resp.status)
            self.send_response_only(resp.status)
            for k, v in rheaders:
                self.send_header(k, v)
            if cl is not None:
                self.send_header("Content-Length", cl)
            self.end_headers()
            return
        if length is None:
            data = resp.read()
            length = len(data)
            chunks = iter([data])
        else:
            def chunks_gen():
                while True:
                    b = resp.read(CHUNK)
                    if not b:
                        return
                    yield b
            chunks = chunks_gen()
        try:
            entry["bytes"] = self.emit(resp.status, rheaders, length, chunks, fault, proxied=True)
        finally:
            if not resp.isclosed():
                # the body was not read to its end: this connection is spent
                self.upstream_conn(fresh=True)


def parse_range(value, size):
    """A single 'bytes=' range -> (start, end) inclusive, 'unsatisfiable', or
    None to ignore the header (malformed or several ranges: serve it whole)."""
    m = re.match(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", value)
    if not m:
        return None
    a, b = m.group(1), m.group(2)
    if a == "" and b == "":
        return None
    if a == "":
        n = int(b)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1)
    start = int(a)
    if b != "" and int(b) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    end = size - 1 if b == "" else min(int(b), size - 1)
    return (start, end)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        log.exception("error while handling a request from %s", client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--serve", metavar="DIR", help="serve the files under DIR")
    g.add_argument("--upstream", metavar="URL", help="reverse proxy to URL (http://host:port)")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--log", help="log file (default: stderr)")
    ap.add_argument("--verbose", action="store_true", help="debug logging")
    ap.add_argument("--sigv4-check", action="store_true",
                    help="verify every request's AWS SigV4 signature with botocore")
    ap.add_argument("--access-key", default=os.environ.get("FAULTSRV_ACCESS_KEY", "S3RVER"))
    ap.add_argument("--secret-key", default=os.environ.get("FAULTSRV_SECRET_KEY", "S3RVER"))
    a = ap.parse_args()

    logging.basicConfig(
        filename=a.log, level=logging.DEBUG if a.verbose else logging.INFO,
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    if a.sigv4_check:
        try:
            load_botocore()
        except ImportError as e:
            sys.exit("faultsrv: --sigv4-check needs botocore (Debian package awscli): %s" % e)

    srv = Server((a.bind, a.port), Handler)
    srv.state = State()
    srv.etags = ETagCache()
    srv.sigv4 = a.sigv4_check
    srv.access_key, srv.secret_key = a.access_key, a.secret_key
    srv.root = os.path.realpath(a.serve) if a.serve else None
    if srv.root and not os.path.isdir(srv.root):
        sys.exit("faultsrv: --serve %s: not a directory" % a.serve)
    srv.upstream = None
    srv.upstream_prefix = ""
    if a.upstream:
        u = urllib.parse.urlsplit(a.upstream)
        if u.scheme != "http" or not u.hostname:
            sys.exit("faultsrv: --upstream needs an http://host:port URL")
        srv.upstream = u
        srv.upstream_prefix = u.path.rstrip("/")
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    log.info("listening on %s:%d, %s%s", a.bind, port,
             "serving %s" % srv.root if srv.root else "upstream %s" % a.upstream,
             ", checking SigV4" if a.sigv4_check else "")
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
