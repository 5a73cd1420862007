"""Relay: one direction-delaying TCP relay, sshfs's ProxyCommand."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time


def relay(host: str, port: int, one_way_ms: float) -> int:
    """Pipe stdin to ``host:port`` and back to stdout, each chunk held ``one_way_ms`` in each direction (a
    ProxyCommand for ssh). Each direction: a reader thread stamps chunks with their due time into a queue, a
    writer thread sends them when due, in order."""
    delay = one_way_ms / 1000.0
    connection = socket.create_connection((host, port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finished = threading.Event()

    def direction(read, write, at_end, ends_relay: bool):
        chunks: queue.SimpleQueue = queue.SimpleQueue()

        def forward():
            try:
                while True:
                    due, data = chunks.get()
                    if data is None:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    view = memoryview(data)
                    while view:
                        view = view[write(view):]
                at_end()
                if ends_relay:
                    finished.set()
            except OSError:
                finished.set()

        threading.Thread(target=forward, daemon=True).start()
        try:
            while True:
                data = read()
                if not data:
                    break
                chunks.put((time.monotonic() + delay, data))
        except OSError:
            pass
        chunks.put((0.0, None))

    threading.Thread(target=direction, daemon=True, args=(
        lambda: os.read(0, 65536), connection.send, lambda: connection.shutdown(socket.SHUT_WR), False)).start()
    threading.Thread(target=direction, daemon=True, args=(
        lambda: connection.recv(65536), lambda view: os.write(1, view), lambda: os.close(1), True)).start()
    finished.wait()
    os._exit(0)
