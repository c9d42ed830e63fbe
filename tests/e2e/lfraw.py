"""lfraw.py — raw HTTP/1.1 over a socket for hardening tests: bytes the
standard clients refuse to send (NUL and control bytes in the path, invalid
UTF-8, overlong headers, lying Content-Length). Standard library only.

    st, hdrs, body = lfraw.call(url, "POST", "/v1/users", b"{}", {"Authorization": ...})

Returns (status or 0 when the server closed without answering, headers
dict with lower-case names, body bytes). json_of(body) parses or None.
"""
import json
import socket
import ssl
import urllib.parse


def call(url, method, path, body=b"", headers=None, timeout=30, ctx=None):
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port
    if isinstance(path, str):
        path = path.encode("latin-1")
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": "%s:%d" % (host, port), "Connection": "close"}
    if body:
        hdrs["Content-Length"] = str(len(body))
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = method.encode() + b" " + path + b" HTTP/1.1\r\n"
    for k, v in hdrs.items():
        if v is None:
            continue
        if isinstance(v, str):
            v = v.encode("latin-1")
        req += k.encode() + b": " + v + b"\r\n"
    req += b"\r\n" + (body or b"")
    s = socket.create_connection((host, port), timeout=timeout)
    if u.scheme == "https":
        s = (ctx or ssl.create_default_context()).wrap_socket(s, server_hostname=host)
    try:
        try:
            s.sendall(req)
        except OSError:
            pass  # the server may answer (413/431) and close before reading it all
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data:
        return 0, {}, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    h = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        h[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
    if h.get("transfer-encoding", "").lower() == "chunked":
        out, buf = b"", rest
        while buf:
            size_s, _, buf = buf.partition(b"\r\n")
            try:
                size = int(size_s.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out += buf[:size]
            buf = buf[size + 2:]
        rest = out
    return status, h, rest


def json_of(body):
    try:
        return json.loads(body)
    except ValueError:
        return None
