#!/usr/bin/env python3
"""Captures real taskstats exit datagrams from the kernel, as the taskstats fuzzer's seeds.

Run as root (or with CAP_NET_ADMIN):
    python3 fuzz/capture-taskstats.py OUTDIR [PER_KIND]
Resolves the generic netlink family "TASKSTATS", registers for the exits on every possible
CPU (TASKSTATS_CMD_ATTR_REGISTER_CPUMASK), runs a few single- and multi-threaded processes
and writes PER_KIND datagrams of each kind byte for byte, unedited, to OUTDIR/<kind>-NNNN
(kind: pid, the per-task record alone; tgid, with the thread group's record too).
"""
import os
import socket
import struct
import subprocess
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3
TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK = 4
TASKSTATS_TYPE_AGGR_TGID = 5
NLM_F_REQUEST = 1
NLM_F_ACK = 4


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack('=HH', n, kind) + payload + b'\0' * ((4 - n % 4) % 4)


def message(family, cmd, attrs, seq):
    body = struct.pack('=BBH', cmd, 1, 0) + attrs
    return struct.pack('=IHHII', 16 + len(body), family, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def attrs_of(buf):
    off = 0
    while off + 4 <= len(buf):
        n, kind = struct.unpack_from('=HH', buf, off)
        if n < 4:
            break
        yield kind & 0x3fff, buf[off + 4:off + n]
        off += (n + 3) & ~3


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: capture-taskstats.py OUTDIR [PER_KIND]')
    out = sys.argv[1]
    per_kind = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.makedirs(out, exist_ok=True)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    s.bind((0, 0))
    s.settimeout(5)
    s.send(message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, attr(CTRL_ATTR_FAMILY_NAME, b'TASKSTATS\0'), 1))
    reply = s.recv(65536)
    family = None
    for kind, payload in attrs_of(reply[20:]):
        if kind == CTRL_ATTR_FAMILY_ID:
            family = struct.unpack_from('=H', payload)[0]
    if family is None:
        sys.exit('no TASKSTATS family')
    s.recv(65536)  # the acknowledgement
    cpus = open('/sys/devices/system/cpu/possible').read().strip().encode() + b'\0'
    s.send(message(family, TASKSTATS_CMD_GET, attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus), 2))
    py = sys.executable
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in (
        ['true'],
        ['sh', '-c', 'exit 3'],
        [py, '-c', 'import threading; t=[threading.Thread(target=lambda: None) for _ in range(3)]; '
                   '[x.start() for x in t]; [x.join() for x in t]'],
    )]
    for p in procs:
        p.wait()
    # More threads, while the records are read.
    churn = subprocess.Popen([py, '-c', 'import threading, time\nfor _ in range(50):\n'
                              '    t = threading.Thread(target=lambda: None); t.start(); t.join(); time.sleep(0.01)'])
    kept = 0
    seen = {'pid': 0, 'tgid': 0}
    try:
        while min(seen.values()) < per_kind:
            data = s.recv(65536)
            if len(data) < 20 or struct.unpack_from('=H', data, 4)[0] != family:
                continue  # the registration's acknowledgement
            kinds = [k for k, _ in attrs_of(data[20:])]
            name = 'tgid' if TASKSTATS_TYPE_AGGR_TGID in kinds else 'pid'
            seen[name] += 1
            if seen[name] > per_kind:
                continue
            with open(os.path.join(out, '%s-%04d' % (name, kept)), 'wb') as f:
                f.write(data)
            kept += 1
    except socket.timeout:
        pass
    finally:
        churn.wait()
        s.send(message(family, TASKSTATS_CMD_GET, attr(TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK, cpus), 3))
        s.close()
    print('%d datagrams kept (family %d)' % (kept, family))


if __name__ == '__main__':
    main()
