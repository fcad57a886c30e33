#!/usr/bin/env python3
"""Benchmark helper clients for tools/bench/run (raw sockets, HTTP/1.1, standard library only).

  sse_client.py ttfb    --port P --body JSON [--key K] --duration S
      One keep-alive connection, requests one after another: time to the response headers, to the
      first SSE `data:` event and to the end of the response. Prints one RESULT line (µs).
  sse_client.py slow    --port P --key K --streams N --tokens T --inter-token-ms MS [--pids PIDS]
      Opens N streams at once (each `[[mock: tokens=T inter_token_ms=MS]]`), reads them all with
      epoll, checks every stream got T content chunks and [DONE] with no gap longer than
      --max-gap-ms, and samples VmRSS of PIDS (comma list) every 0.25 s. Prints one RESULT line.
  sse_client.py startup --port P --log FILE -- COMMAND...
      Execs COMMAND, polls 127.0.0.1:P every 1 ms until a TCP connect succeeds (services listen only
      once ready), waits --idle-s, reads VmRSS, sends SIGTERM and waits. Prints one RESULT line.
Not a test; figures only. Exit status 0 unless the client itself fails.
"""
import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time


def pct(sorted_vals, q):
    if not sorted_vals:
        return 0
    return sorted_vals[min(len(sorted_vals) - 1, int(q * (len(sorted_vals) - 1) + 0.5))]


def request_bytes(port, body, key):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    return (head + "\r\n").encode() + body


class Response:
    """Incremental HTTP/1.1 response parser (Content-Length or chunked) that splits SSE events."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.headers_done = False
        self.chunked = False
        self.remaining = None  # bytes left of the body (content-length) or of the current chunk
        self.body_tail = b""   # undelivered SSE bytes
        self.events = []       # complete SSE event payloads (after "data: ")
        self.done = False
        self.in_chunk_trailer = False

    def feed(self, data):
        self.buf += data
        if not self.headers_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ")[1])
            length = None
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
                elif name == "content-length":
                    length = int(value.strip())
            self.buf = self.buf[end + 4:]
            self.headers_done = True
            if not self.chunked:
                self.remaining = length if length is not None else 0
        if self.chunked:
            self._feed_chunked()
        else:
            take = self.buf[:self.remaining]
            self.buf = self.buf[len(take):]
            self.remaining -= len(take)
            self._body(take)
            if self.remaining == 0:
                self.done = True

    def _feed_chunked(self):
        while True:
            if self.remaining is None or self.remaining == 0:
                if self.remaining == 0:  # CRLF after a chunk's data
                    if len(self.buf) < 2:
                        return
                    self.buf = self.buf[2:]
                    self.remaining = None
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return
                size = int(self.buf[:nl].split(b";")[0], 16)
                if size == 0:
                    # last chunk: wait for the (empty) trailer's CRLF
                    if len(self.buf) < nl + 4:
                        return
                    self.buf = self.buf[nl + 4:]
                    self.done = True
                    return
                self.buf = self.buf[nl + 2:]
                self.remaining = size
            take = self.buf[:self.remaining]
            if not take:
                return
            self.buf = self.buf[len(take):]
            self.remaining -= len(take)
            self._body(take)

    def _body(self, data):
        self.body_tail += data
        while True:
            end = self.body_tail.find(b"\n\n")
            if end < 0:
                return
            event = self.body_tail[:end]
            self.body_tail = self.body_tail[end + 2:]
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self.events.append(line[5:].strip())


def content_chunks(events):
    n = 0
    for e in events:
        if e == b"[DONE]":
            continue
        try:
            obj = json.loads(e)
        except ValueError:
            continue
        for choice in obj.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                n += 1
    return n


def cmd_ttfb(a):
    body = a.body.encode()
    req = request_bytes(a.port, body, a.key)
    sock = None
    heads, firsts, totals, errors, events = [], [], [], 0, 0
    deadline = time.perf_counter() + a.duration
    while time.perf_counter() < deadline:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", a.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter_ns()
        sock.sendall(req)
        r = Response()
        t_head = t_first = None
        while not r.done:
            data = sock.recv(65536)
            if not data:
                break
            r.feed(data)
            now = time.perf_counter_ns()
            if t_head is None and r.headers_done:
                t_head = now
            if t_first is None and r.events:
                t_first = now
        t_end = time.perf_counter_ns()
        if not r.done or r.status != 200 or t_first is None:
            errors += 1
            sock.close()
            sock = None
            continue
        heads.append((t_head - t0) // 1000)
        firsts.append((t_first - t0) // 1000)
        totals.append((t_end - t0) // 1000)
        events = len(r.events)
    for v in (heads, firsts, totals):
        v.sort()
    print(f"RESULT requests={len(totals)} errors={errors} events={events} "
          f"head_p50_us={pct(heads, .5)} first_p50_us={pct(firsts, .5)} "
          f"first_p90_us={pct(firsts, .9)} first_p99_us={pct(firsts, .99)} "
          f"total_p50_us={pct(totals, .5)} total_p99_us={pct(totals, .99)}")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_slow(a):
    pids = [p for p in a.pids.split(",") if p] if a.pids else []
    ep = select.epoll()
    streams = {}
    body = json.dumps({
        "model": a.model, "stream": True,
        "messages": [{"role": "user", "content":
                      f"Slow stream. [[mock: tokens={a.tokens} inter_token_ms={a.inter_token_ms}]]"}],
    }).encode()
    req = request_bytes(a.port, body, a.key)
    t_start = time.monotonic()
    for i in range(a.streams):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", a.port))  # blocking connect: loopback, fast
        s.sendall(req)
        s.setblocking(False)
        streams[s.fileno()] = {"sock": s, "r": Response(), "last": time.monotonic(), "gap": 0.0,
                               "n_events": 0, "eof": False}
        ep.register(s.fileno(), select.EPOLLIN)
    opened = time.monotonic() - t_start
    peak = {p: rss_kb(p) for p in pids}
    next_sample = time.monotonic()
    open_fds = set(streams)
    deadline = time.monotonic() + a.timeout
    while open_fds and time.monotonic() < deadline:
        for fd, _ in ep.poll(0.05):
            st = streams[fd]
            try:
                data = st["sock"].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                st["eof"] = True
            else:
                st["r"].feed(data)
            if len(st["r"].events) > st["n_events"]:
                # A gap only counts once the stream has started: the first chunk's wait is TTFT.
                if st["n_events"] > 0:
                    st["gap"] = max(st["gap"], now - st["last"])
                st["n_events"] = len(st["r"].events)
                st["last"] = now
            if st["r"].done or st["eof"]:
                ep.unregister(fd)
                open_fds.discard(fd)
                st["end"] = now
                st["sock"].close()
        now = time.monotonic()
        if now >= next_sample:
            for p in pids:
                peak[p] = max(peak[p], rss_kb(p))
            next_sample = now + 0.25
    held = time.monotonic() - t_start
    complete = starved = short = 0
    max_gap = 0.0
    for st in streams.values():
        r = st["r"]
        ok = r.done and r.status == 200 and r.events and r.events[-1] == b"[DONE]"
        n = content_chunks(r.events) if ok else 0
        if ok and n == a.tokens:
            complete += 1
        else:
            short += 1
        max_gap = max(max_gap, st["gap"])
        if st["gap"] * 1000 > a.max_gap_ms or not ok:
            starved += 1
    peaks = ",".join(f"{p}:{peak[p]}" for p in pids)
    print(f"RESULT streams={a.streams} complete={complete} incomplete={short} starved={starved} "
          f"max_gap_ms={max_gap * 1000:.0f} open_s={opened:.2f} held_s={held:.1f} peak_rss_kb={peaks}")


def cmd_startup(a):
    log = open(a.log, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(a.command, stdout=log, stderr=subprocess.STDOUT)
    ready = None
    while time.perf_counter() - t0 < 10:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", a.port), timeout=0.1).close()
            ready = time.perf_counter() - t0
            break
        except OSError:
            time.sleep(0.001)
    idle = 0
    if ready is not None:
        time.sleep(a.idle_s)
        idle = rss_kb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    ready_ms = f"{ready * 1000:.1f}" if ready is not None else "-1"
    print(f"RESULT ready_ms={ready_ms} idle_rss_kb={idle} exit={rc}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("ttfb")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--body", required=True)
    t.add_argument("--key", default="")
    t.add_argument("--duration", type=float, default=3)
    s = sub.add_parser("slow")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--key", default="")
    s.add_argument("--model", default="gpt-4o-mini")
    s.add_argument("--streams", type=int, default=1000)
    s.add_argument("--tokens", type=int, default=400)
    s.add_argument("--inter-token-ms", type=int, default=50)
    s.add_argument("--max-gap-ms", type=float, default=1000)
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--pids", default="")
    u = sub.add_parser("startup")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--log", required=True)
    u.add_argument("--idle-s", type=float, default=1.0)
    u.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.cmd == "startup":
        if a.command and a.command[0] == "--":
            a.command = a.command[1:]
    {"ttfb": cmd_ttfb, "slow": cmd_slow, "startup": cmd_startup}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
