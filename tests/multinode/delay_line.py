#!/usr/bin/python3
"""Delay (and optional loss) on one fake host's link, in user space: this kernel
has no netem qdisc, so frames take a detour through this process.

usage: delay_line.py PORT BRIDGE DELAY_MS [LOSS_PCT]

PORT is the bridge-side veth of a host (vtdm2). While this runs, PORT moves onto a
private bridge dl<host> with a tap; a second tap joins BRIDGE; frames are copied
between the taps DELAY_MS later (each way, so the round trip grows by twice that),
and LOSS_PCT of them are dropped. SIGTERM puts PORT back onto BRIDGE. Standard
library only; needs root and /dev/net/tun.
"""
import collections
import fcntl
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000


def ip(*args, check=True):
    subprocess.run(("ip",) + args, check=check)


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    port, bridge = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) / 1000.0
    loss = float(sys.argv[4]) / 100.0 if len(sys.argv) > 4 else 0.0
    host = port[1:]  # vtdm2 -> tdm2
    private, inner, outer = "dl" + host, "ti" + host, "to" + host
    taps = {open_tap(inner): None, open_tap(outer): None}
    a, b = list(taps)
    peer = {a: b, b: a}
    queue = {a: collections.deque(), b: collections.deque()}  # (due, frame) to send to peer
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        ip("link", "add", private, "type", "bridge")
        ip("link", "set", inner, "master", private, "up")
        ip("link", "set", private, "up")
        ip("link", "set", outer, "master", bridge, "up")
        ip("link", "set", port, "master", private)  # from here on, frames pass through us
        while not stopping:
            now = time.monotonic()
            wait = None
            for src, q in queue.items():
                while q and q[0][0] <= now:
                    try:
                        os.write(peer[src], q.popleft()[1])
                    except OSError:
                        pass  # a full tap queue drops the frame, as a wire would
                if q:
                    wait = q[0][0] - now if wait is None else min(wait, q[0][0] - now)
            try:
                ready, _, _ = select.select([a, b], [], [], wait)
            except InterruptedError:
                continue
            arrived = time.monotonic()
            for src in ready:
                while True:
                    try:
                        frame = os.read(src, 65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    if loss == 0 or random.random() >= loss:
                        queue[src].append((arrived + delay, frame))
    finally:
        ip("link", "set", port, "master", bridge, check=False)
        ip("link", "del", private, check=False)


if __name__ == "__main__":
    main()
