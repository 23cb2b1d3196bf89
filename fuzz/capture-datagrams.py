#!/usr/bin/env python3
"""Captures real proc connector datagrams from the kernel, as the fuzzer's seed corpus.

Run as root (or with CAP_NET_ADMIN) in the host's namespaces:
    python3 fuzz/capture-datagrams.py OUTDIR [COUNT] [PER_KIND]
Opens a NETLINK_CONNECTOR socket, joins CN_IDX_PROC, sends PROC_CN_MCAST_LISTEN, runs a
little process churn (fork, exec, exit, comm, uid/gid, sid, ptrace, threads, signals,
core dumps) and receives COUNT datagrams. Each is written byte for byte, unedited, to
OUTDIR/<kind>-NNNN; with PER_KIND only that many of each kind (and size) are kept.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
KINDS = {0: 'ack', 1: 'fork', 2: 'exec', 4: 'uid', 0x40: 'gid', 0x80: 'sid', 0x100: 'ptrace',
         0x200: 'comm', 0x40000000: 'coredump', 0x80000000: 'exit'}


def request(op, seq):
    cn = struct.pack('=IIIIHH', CN_IDX_PROC, CN_VAL_PROC, seq, 0, 4, 0) + struct.pack('=I', op)
    nl = struct.pack('=IHHII', 16 + len(cn), NLMSG_DONE, 0, seq, os.getpid())
    return nl + cn


def churn(stop):
    """Process activity of every kind the connector reports."""
    py = sys.executable
    cmds = [
        ['true'],
        ['sh', '-c', 'exit 3'],
        ['sh', '-c', 'kill -9 $$'],
        ['sh', '-c', 'sleep 0.01 & wait'],
        ['setsid', 'true'],
        [py, '-c', 'import ctypes; ctypes.CDLL(None).prctl(15, b"renamed-comm", 0, 0, 0)'],
        [py, '-c', 'import threading; t=[threading.Thread(target=lambda: None) for _ in range(4)]; '
                   '[x.start() for x in t]; [x.join() for x in t]'],
        ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'true'],
        [py, '-c', 'import os; os.setgid(65534); os.setuid(65534)'],
        ['sh', '-c', 'ulimit -c 0; kill -SEGV $$'],
        ['strace', '-o', '/dev/null', 'true'],
    ]
    i = 0
    while not stop.is_set():
        try:
            subprocess.run(cmds[i % len(cmds)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.SubprocessError):
            pass
        i += 1
        time.sleep(0.005)


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: capture-datagrams.py OUTDIR [COUNT] [PER_KIND]')
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    per_kind = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.makedirs(out, exist_ok=True)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((0, CN_IDX_PROC))
    s.sendto(request(PROC_CN_MCAST_LISTEN, 1), (0, 0))
    s.settimeout(5)
    stop = threading.Event()
    t = threading.Thread(target=churn, args=(stop,), daemon=True)
    t.start()
    seen = {}
    kept = 0
    try:
        for n in range(count):
            data, (pid, _groups) = s.recvfrom(65536)
            if pid != 0:
                continue
            what = struct.unpack_from('=I', data, 36)[0] if len(data) >= 40 else None
            kind = KINDS.get(what, 'other')
            key = (kind, len(data))
            seen[key] = seen.get(key, 0) + 1
            if per_kind and seen[key] > per_kind:
                continue
            with open(os.path.join(out, '%s-%04d' % (kind, n)), 'wb') as f:
                f.write(data)
            kept += 1
    finally:
        stop.set()
        s.sendto(request(PROC_CN_MCAST_IGNORE, 2), (0, 0))
        s.close()
    print('%d datagrams kept; seen (kind, bytes): %s' % (
        kept, ', '.join('%s/%d: %d' % (k[0], k[1], v) for k, v in sorted(seen.items()))))


if __name__ == '__main__':
    main()
