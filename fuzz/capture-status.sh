#!/usr/bin/env bash
# Copies real /proc/PID/status and /proc/PID/stat files as the seed corpus of the
# ParseStatus / ParseStatStart fuzzer: init, a kernel thread, this shell, a zombie, a
# thread, and processes that renamed themselves to awkward names (newline, backslash,
# ')' and spaces, 15 bytes, UTF-8).
#   bash fuzz/capture-status.sh OUTDIR
set -euo pipefail
out=${1:?usage: capture-status.sh OUTDIR}
mkdir -p "$out"
for f in status stat; do
  cp /proc/1/$f "$out/init.$f"
  cp /proc/2/$f "$out/kthread.$f" 2>/dev/null || true
  cp /proc/$$/$f "$out/shell.$f"
done
# A zombie: the child exits, the parent does not reap it yet.
python3 - "$out" <<'PY'
import ctypes, os, sys, threading, time
out = sys.argv[1]
libc = ctypes.CDLL(None)
pid = os.fork()
if pid == 0:
    os._exit(3)
time.sleep(0.2)
for f in ('status', 'stat'):
    open(os.path.join(out, 'zombie.' + f), 'wb').write(open('/proc/%d/%s' % (pid, f), 'rb').read())
os.waitpid(pid, 0)
for tag, name in (('newline', b'a\nb'), ('backslash', b'back\\slash'), ('long', b'fifteen-bytes-x'),
                  ('spaces', b' Uid: 0 0 0 0'), ('paren', b'x) R 1 2 3 4 5'),
                  ('utf8', '\u00e9\u2603'.encode())):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc.prctl(15, ctypes.c_char_p(name), 0, 0, 0)
        os.write(w, b'x')
        time.sleep(2)
        os._exit(0)
    os.read(r, 1)
    for f in ('status', 'stat'):
        open(os.path.join(out, tag + '.' + f), 'wb').write(open('/proc/%d/%s' % (pid, f), 'rb').read())
    os.kill(pid, 9)
    os.waitpid(pid, 0)
t = threading.Thread(target=time.sleep, args=(0.5,))
t.start()
tid = [x for x in os.listdir('/proc/self/task') if int(x) != os.getpid()][0]
for f in ('status', 'stat'):
    open(os.path.join(out, 'thread.' + f), 'wb').write(open('/proc/self/task/%s/%s' % (tid, f), 'rb').read())
t.join()
PY
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
  setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'cat /proc/self/status' >"$out/nobody.status"
fi
ls "$out" | wc -l
