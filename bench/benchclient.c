/* benchclient: the benchmark's socket clients, in one process.
 *
 *   benchclient -s SOCKET -k K [-S STALLED] -d OUTDIR
 *   benchclient -t PORT -a PASSWORD [-1] -k K [-S STALLED] -d OUTDIR
 *
 * Connects K reading clients and S stalled clients (connected, never read until SIGUSR1)
 * to the daemon's Unix socket, or to its TCP port on 127.0.0.1 (each sends the password at
 * once, as the seed's client does, then an empty request line for the batched stream; with
 * -1 nothing more, as the seed's client, which gets a line per write), prints `ready` on stdout, then reads every reading client's
 * NDJSON stream. Each line is reduced on the fly to a compact record (the judge needs only
 * these fields), tagged with the CLOCK_REALTIME time at which the read() that completed it
 * returned:
 *   f <child_pid> <parent_pid> <time> <recv_us>
 *   e <pid> <time> <recv_us> <argv JSON> <missing JSON or ->
 *   x <pid> <exit_code> <code> <time> <recv_us>
 *   l <count> <source> <time> <recv_us>
 * Only forks whose parent is the watched pid (given on stdin as `watch PID`, answered `ok`)
 * are kept, with the exec and exit of those children (and any exec whose argv starts with
 * "pmbench-", in case its fork was missed); other processes' events are only counted.
 * When every reading client has seen the watched pid's exit it prints `quiet`. SIGUSR1
 * starts reading the stalled clients (printing `drained` once they too saw that exit, or
 * after 3 s without data); SIGTERM writes OUTDIR/summary.json and exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define MAXPID (1 << 22)

typedef struct {
  int fd, stalled, reading, eof, saw_end;
  long long reads, multi; /* read() calls that returned data, and those holding more than one line */
  FILE *out;
  char *buf;
  size_t len, cap;
  long long lines, bytes, bad, other, lost_lines, lost_count, first_us, last_us;
  unsigned char *ours; /* pid bitmap: children of the watched pid being followed */
} conn_t;

static volatile sig_atomic_t got_term, got_usr1;
static void on_sig(int s) { if (s == SIGTERM || s == SIGINT) got_term = 1; else got_usr1 = 1; }
static long watch_pid = -1;

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* the value after "key": in line (keys cannot occur inside JSON strings, whose quotes are escaped) */
static const char *field(const char *line, const char *end, const char *key) {
  size_t kl = strlen(key);
  const char *p = memmem(line, end - line, key, kl);
  return p ? p + kl : NULL;
}
static long num(const char *p) { return p ? strtol(p, NULL, 10) : -999999; }
/* a JSON string value (p at the opening quote): copy without quotes */
static void str(const char *p, const char *end, char *dst, size_t cap) {
  size_t n = 0;
  if (p && p < end && *p == '"') {
    p++;
    while (p < end && *p != '"' && n + 1 < cap) dst[n++] = *p++;
  }
  dst[n] = 0;
}
/* a JSON array value (p at '['): its extent, honouring strings */
static const char *arr_end(const char *p, const char *end) {
  int depth = 0, in = 0;
  for (; p < end; p++) {
    if (in) { if (*p == '\\') p++; else if (*p == '"') in = 0; continue; }
    if (*p == '"') in = 1;
    else if (*p == '[') depth++;
    else if (*p == ']' && --depth == 0) return p + 1;
  }
  return NULL;
}
static inline int bit(unsigned char *m, long pid) { return pid > 0 && pid < MAXPID && (m[pid >> 3] >> (pid & 7)) & 1; }
static inline void setbit(unsigned char *m, long pid, int v) {
  if (pid <= 0 || pid >= MAXPID) return;
  if (v) m[pid >> 3] |= 1 << (pid & 7); else m[pid >> 3] &= ~(1 << (pid & 7));
}

static void on_line(conn_t *c, const char *l, const char *e, long long t) {
  c->lines++;
  if (!c->first_us) c->first_us = t;
  c->last_us = t;
  if (e - l < 12 || memcmp(l, "{\"event\":\"", 10) != 0) { c->bad++; return; }
  const char *k = l + 10;
  char tm[40];
  str(field(l, e, "\"time\":"), e, tm, sizeof tm);
  if (!tm[0]) strcpy(tm, "-");
  if (!strncmp(k, "fork\"", 5)) {
    long child = num(field(l, e, "\"child_pid\":")), parent = num(field(l, e, "\"parent_pid\":"));
    if (parent == watch_pid && watch_pid > 0) {
      setbit(c->ours, child, 1);
      fprintf(c->out, "f %ld %ld %s %lld\n", child, parent, tm, t);
    } else c->other++;
  } else if (!strncmp(k, "exec\"", 5)) {
    long pid = num(field(l, e, "\"pid\":"));
    const char *a = field(l, e, "\"argv\":");
    const char *ae = a && *a == '[' ? arr_end(a, e) : NULL;
    int named = a && ae && ae - a > 10 && !memcmp(a, "[\"pmbench-", 10);
    if (bit(c->ours, pid) || named) {
      const char *m = field(l, e, "\"missing\":");
      const char *me = m && *m == '[' ? arr_end(m, e) : NULL;
      fprintf(c->out, "e %ld %s %lld %.*s %.*s\n", pid, tm, t, ae ? (int)(ae - a) : 2, ae ? a : "[]",
              me ? (int)(me - m) : 1, me ? m : "-");
      if (named) setbit(c->ours, pid, 1);
    } else c->other++;
  } else if (!strncmp(k, "exit\"", 5)) {
    long pid = num(field(l, e, "\"pid\":"));
    if (pid == watch_pid && watch_pid > 0) c->saw_end = 1;
    if (bit(c->ours, pid)) {
      const char *cp = field(l, e, "\"code\":");
      char code[24];
      if (!cp) strcpy(code, "?");
      else if (*cp == 'n') strcpy(code, "null");
      else snprintf(code, sizeof code, "%ld", num(cp));
      fprintf(c->out, "x %ld %ld %s %s %lld\n", pid, num(field(l, e, "\"exit_code\":")), code, tm, t);
      setbit(c->ours, pid, 0);
    } else c->other++;
  } else if (!strncmp(k, "lost\"", 5)) {
    char src[32];
    str(field(l, e, "\"source\":"), e, src, sizeof src);
    long cnt = num(field(l, e, "\"count\":"));
    c->lost_lines++;
    c->lost_count += cnt > 0 ? cnt : 0;
    fprintf(c->out, "l %ld %s %s %lld\n", cnt, src[0] ? src : "?", tm, t);
  } else c->other++;
}

static void consume(conn_t *c, const char *data, size_t n, long long t) {
  c->bytes += n;
  c->reads++;
  const char *nl1 = memchr(data, '\n', n);
  if (nl1 && memchr(nl1 + 1, '\n', data + n - nl1 - 1)) c->multi++;
  if (c->len + n > c->cap) {
    while (c->len + n > c->cap) c->cap = c->cap ? c->cap * 2 : 1 << 20;
    c->buf = realloc(c->buf, c->cap);
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
  char *s = c->buf, *end = c->buf + c->len, *nl;
  while ((nl = memchr(s, '\n', end - s))) {
    on_line(c, s, nl, t);
    s = nl + 1;
  }
  c->len = end - s;
  memmove(c->buf, s, c->len);
}

/* TCP: connects to 127.0.0.1:port, sends the password (and an empty request line unless
 * seed), reads up to and including the answer; what followed it in the same read goes to the
 * stream. Blocking; the socket is left non-blocking. */
static int tcp_client(conn_t *c, int port, const char *password, int seed) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  char line[600];
  int n = snprintf(line, sizeof line, "%s\n%s", password, seed ? "" : "\n");
  if (write(fd, line, n) != n) return -1;
  char got[1 << 12];
  size_t len = 0;
  const char *ok = "Authentication successful.\n";
  for (;;) {
    ssize_t r = read(fd, got + len, sizeof got - len - 1);
    if (r <= 0) return -1;
    len += r;
    got[len] = 0;
    char *at = strstr(got, ok);
    if (at) {
      size_t rest = len - (at + strlen(ok) - got);
      if (rest) consume(c, at + strlen(ok), rest, now_us());
      break;
    }
    if (strstr(got, "Disconnecting") || len + 1 >= sizeof got) return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

int main(int argc, char **argv) {
  const char *sock = NULL, *dir = NULL, *password = NULL;
  int k = 1, S = 0, opt, port = 0, seed = 0;
  while ((opt = getopt(argc, argv, "s:t:a:1k:S:d:")) != -1) {
    if (opt == 's') sock = optarg;
    else if (opt == 't') port = atoi(optarg);
    else if (opt == 'a') password = optarg;
    else if (opt == '1') seed = 1;
    else if (opt == 'k') k = atoi(optarg);
    else if (opt == 'S') S = atoi(optarg);
    else if (opt == 'd') dir = optarg;
    else return 2;
  }
  if ((!sock && !(port > 0 && password)) || !dir || k < 0 || S < 0) {
    fprintf(stderr, "usage: benchclient {-s SOCKET | -t PORT -a PASSWORD [-1]} -k K [-S S] -d DIR\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_sig;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  int n = k + S, ep = epoll_create1(0);
  conn_t *cs = calloc(n, sizeof *cs);
  for (int i = 0; i < n; i++) {
    conn_t *c = &cs[i];
    c->stalled = i >= k;
    c->reading = !c->stalled;
    c->ours = calloc(MAXPID / 8, 1);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%d.txt", dir, c->stalled ? "s" : "c", c->stalled ? i - k : i);
    c->out = fopen(path, "w");
    if (!c->out) { perror(path); return 1; }
    setvbuf(c->out, NULL, _IOFBF, 1 << 20);
    if (port > 0) {
      c->fd = tcp_client(c, port, password, seed);
      if (c->fd < 0) { fprintf(stderr, "benchclient: tcp client %d: %s\n", i, errno ? strerror(errno) : "refused"); return 1; }
    } else {
      c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      struct sockaddr_un a = {.sun_family = AF_UNIX};
      strncpy(a.sun_path, sock, sizeof a.sun_path - 1);
      int tries = 0;
      while (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno == EAGAIN && tries++ < 1000) { usleep(1000); continue; }
        fprintf(stderr, "benchclient: connect %d: %s\n", i, strerror(errno));
        return 1;
      }
    }
    if (c->reading) {
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
  }
  printf("ready\n");
  fflush(stdout);
  int ctl = 0; /* stdin: `watch PID` */
  fcntl(ctl, F_SETFL, fcntl(ctl, F_GETFL) | O_NONBLOCK);
  struct epoll_event cev = {.events = EPOLLIN, .data.u32 = 0xffffffffu};
  epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &cev);
  static char rbuf[1 << 16];
  int said_quiet = 0, draining = 0, said_drained = 0;
  long long drain_last = 0;
  while (!got_term) {
    if (got_usr1 && !draining) {
      draining = 1;
      drain_last = now_us();
      for (int i = k; i < n; i++) {
        cs[i].reading = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
      }
    }
    struct epoll_event evs[64];
    int m = epoll_wait(ep, evs, 64, 100);
    if (m < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
    for (int j = 0; j < m; j++) {
      uint32_t id = evs[j].data.u32;
      if (id == 0xffffffffu) {
        char line[128];
        ssize_t r = read(ctl, line, sizeof line - 1);
        if (r > 0) {
          line[r] = 0;
          if (sscanf(line, "watch %ld", &watch_pid) == 1) { printf("ok\n"); fflush(stdout); }
        } else if (r == 0) epoll_ctl(ep, EPOLL_CTL_DEL, ctl, NULL);
        continue;
      }
      conn_t *c = &cs[id];
      for (;;) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r > 0) { consume(c, rbuf, r, now_us()); if (c->stalled) drain_last = now_us(); continue; }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          c->eof = 1;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
        break;
      }
    }
    if (!said_quiet && watch_pid > 0) {
      int all = 1;
      for (int i = 0; i < k; i++) if (!cs[i].saw_end && !cs[i].eof) all = 0;
      if (all) { said_quiet = 1; printf("quiet\n"); fflush(stdout); }
    }
    if (draining && !said_drained) {
      int all = 1;
      for (int i = k; i < n; i++) if (!cs[i].saw_end && !cs[i].eof) all = 0;
      if (all || now_us() - drain_last > 3000000) { said_drained = 1; printf("drained\n"); fflush(stdout); }
    }
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "[\n");
  for (int i = 0; i < n; i++) {
    conn_t *c = &cs[i];
    fclose(c->out);
    fprintf(f, "{\"file\":\"%s%d.txt\",\"stalled\":%s,\"eof\":%s,\"saw_end\":%s,\"lines\":%lld,\"bytes\":%lld,"
               "\"bad\":%lld,\"other\":%lld,\"lost_lines\":%lld,\"lost_count\":%lld,\"first_us\":%lld,\"last_us\":%lld,"
               "\"reads\":%lld,\"multi\":%lld}%s\n",
            c->stalled ? "s" : "c", c->stalled ? i - k : i, c->stalled ? "true" : "false", c->eof ? "true" : "false",
            c->saw_end ? "true" : "false", c->lines, c->bytes, c->bad, c->other, c->lost_lines, c->lost_count,
            c->first_us, c->last_us, c->reads, c->multi, i + 1 < n ? "," : "");
  }
  fprintf(f, "]\n");
  fclose(f);
  return 0;
}
