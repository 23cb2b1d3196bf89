#!/usr/bin/env python3
"""A minimal proc connector listener, to measure what listening itself costs the host's jobs.

  python3 bench/cn-listener.py read       read and discard every message as it comes
  python3 bench/cn-listener.py sleep      subscribe, never read (the kernel still sends)
  python3 bench/cn-listener.py rest:MS    read everything waiting, then sleep MS, and again

Prints "ready" once subscribed; on SIGTERM prints how many messages it read. Root (or
CAP_NET_ADMIN) unless the kernel admits unprivileged subscribers. See BENCHMARKS.md.
"""
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC, PROC_CN_MCAST_LISTEN = 11, 1, 1, 1
NLMSG_DONE, SO_RCVBUFFORCE = 3, 33

mode = sys.argv[1] if len(sys.argv) > 1 else 'read'
if mode not in ('read', 'sleep') and not mode.startswith('rest:'):
    sys.exit('usage: cn-listener.py read|sleep|rest:MS')
s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
s.bind((os.getpid(), CN_IDX_PROC))
op = struct.pack('I', PROC_CN_MCAST_LISTEN)
cn = struct.pack('IIIIHH', CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
s.send(struct.pack('IHHII', 16 + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)
count = 0


def done(*_):
    sys.stderr.write(f'{count} messages read\n')
    sys.exit(0)


signal.signal(signal.SIGTERM, done)
print('ready', flush=True)
if mode == 'sleep':
    while True:
        time.sleep(1000)
rest = float(mode[5:]) / 1000 if mode.startswith('rest:') else 0
s.setblocking(False)
while True:
    select.select([s], [], [])
    while True:
        try:
            s.recv(65536)
            count += 1
        except BlockingIOError:
            break
    if rest:
        time.sleep(rest)
