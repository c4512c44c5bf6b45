#!/usr/bin/python3
"""Drives headless Debian Chromium through the DevTools protocol (stdlib only) against the
`ocicert serve` web page: counts the image rows, searches for `beta` through the form, clicks
the first detail link, and prints what it saw as one JSON object.

Usage: browse.py BASE_URL PROFILE_DIR
"""
import base64, json, os, socket, struct, subprocess, sys, time, urllib.request

base, profile = sys.argv[1], sys.argv[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
browser = subprocess.Popen(["chromium", *FLAGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 60
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline or browser.poll() is not None:
            sys.exit("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = int(open(port_file).read().split()[0])
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    path = ws_url.split(str(port), 1)[1]

    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert b" 101 " in response.split(b"\r\n")[0], response

    def recv_exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def send(message):
        payload = json.dumps(message).encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def receive():
        message = b""
        while True:
            first, second = recv_exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", recv_exact(8))[0]
            message += recv_exact(length)
            if first & 0x80:
                return json.loads(message)

    counter = [0]

    class Navigated(Exception):
        """The page navigated (or its JS context was replaced) while a call was in flight."""

    def call(method, **params):
        counter[0] += 1
        send({"id": counter[0], "method": method, "params": params})
        while True:
            reply = receive()
            if reply.get("id") == counter[0]:
                if "error" in reply:
                    message = reply["error"].get("message", "")
                    # Chromium answers a call that races a navigation with these; they mean
                    # "ask again on the new page", not a failure of the page under test.
                    if "navigated or closed" in message or "Cannot find context" in message:
                        raise Navigated(message)
                    sys.exit(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(expression):
        result = call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def act(expression):
        """Runs an expression that starts a navigation: the reply may be lost to it."""
        try:
            evaluate(expression)
        except Navigated:
            pass

    def wait(condition):
        deadline = time.time() + 60
        while True:
            try:
                if evaluate(condition):
                    return
            except Navigated:
                pass
            if time.time() > deadline:
                sys.exit(f"timed out waiting for {condition}")
            time.sleep(0.1)

    seen = {}
    call("Page.enable")
    call("Page.navigate", url=base)
    wait("document.readyState === 'complete' && !!document.querySelector('#images')")
    seen["rows_before"] = evaluate("document.querySelectorAll('tr.image').length")
    seen["certificates_expired"] = evaluate("document.querySelectorAll('#certificates .expired').length")
    # Search through the form, as a person would.
    act("document.querySelector('#q').value = 'beta'; document.querySelector('form').submit(); true")
    wait("location.search.includes('q=beta') && document.readyState === 'complete' && !!document.querySelector('#images')")
    seen["rows_after_search"] = evaluate("document.querySelectorAll('tr.image').length")
    seen["search_text"] = evaluate("document.querySelector('#images').innerText")
    # Click the detail link.
    act("document.querySelector('a.detail').click(); true")
    wait("location.pathname.startsWith('/images/') && document.readyState === 'complete' && !!document.querySelector('#findings')")
    seen["detail_path"] = evaluate("decodeURIComponent(location.pathname)")
    seen["detail_title"] = evaluate("document.querySelector('h1').innerText")
    seen["detail_findings"] = evaluate("document.querySelectorAll('tr.finding').length")
    print(json.dumps(seen))
finally:
    browser.terminate()
    try:
        browser.wait(timeout=10)
    except subprocess.TimeoutExpired:
        browser.kill()
        browser.wait()
