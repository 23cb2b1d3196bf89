"""A procMonitor client in a process of its own, for the storm tests in kernel-e2e.test.js.

    python3 stalled-client.py stall|read /path/to/socket
    python3 stalled-client.py stall|read 127.0.0.1:PORT PASSWORD

Connects (TCP: and completes the password handshake) and prints "connected". With `read`
it then copies every byte it receives to stdout at once, as fast as it comes (a healthy
client that does not depend on how busy the test process is). With `stall` it reads
nothing until a line arrives on stdin, with a receive buffer as small as the kernel allows
(SO_RCVBUF 1024, set before connecting so that a TCP window starts small too; a Unix
stream socket's queue is bounded by the sender's buffer instead); then it copies as `read`
does. Either way it stops when the server closes the connection.
"""
import socket
import sys

RCVBUF = 1024


def main():
    mode, target = sys.argv[1], sys.argv[2]
    family = socket.AF_UNIX if target.startswith('/') else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if mode == 'stall':
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    early = b''
    if family == socket.AF_UNIX:
        s.connect(target)
    else:
        host, port = target.rsplit(':', 1)
        s.connect((host, int(port)))
        got = b''
        while not got.startswith(b'Password: '):
            chunk = s.recv(64)
            if not chunk:
                sys.exit('closed before the prompt: %r' % got)
            got += chunk
        s.sendall(sys.argv[3].encode() + b'\n')
        got = got[len(b'Password: '):]
        while b'\n' not in got:
            chunk = s.recv(64)
            if not chunk:
                sys.exit('closed before the answer: %r' % got)
            got += chunk
        line, early = got.split(b'\n', 1)
        if line != b'Authentication successful.':
            sys.exit('not authenticated: %r' % line)
    out = sys.stdout.buffer
    out.write(b'connected rcvbuf=%d\n' % s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    out.flush()
    if mode == 'stall':
        sys.stdin.readline()  # stalled until told to read
    out.write(early)
    while True:
        try:
            data = s.recv(1 << 20)
        except ConnectionResetError:
            break
        if not data:
            break
        out.write(data)
        out.flush()


main()
