/* spawnstorm: the benchmark's load generator.
 *
 *   spawnstorm -n N -p P -c CHILD -o PIDFILE [-r RATE] [-w]
 *
 * posix_spawn()s N children of CHILD with argv `<basename(CHILD)> <index> <status>`
 * (status = index % 256), keeping P in flight (waitpid), at most RATE spawns per second
 * when RATE > 0. Writes `index pid expected_status wait_status` per child to PIDFILE and a
 * JSON summary on stdout. With -w it first prints `pid <PID>` and waits for a line on stdin
 * before starting, so that the observers can be told which pid to watch. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_real(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct { int pid, status, wstatus; } rec_t;

int main(int argc, char **argv) {
  long n = 1000, p = 4;
  double rate = 0;
  const char *child = NULL, *out = NULL;
  int wait_go = 0, opt;
  while ((opt = getopt(argc, argv, "n:p:c:o:r:w")) != -1) {
    switch (opt) {
      case 'n': n = atol(optarg); break;
      case 'p': p = atol(optarg); break;
      case 'c': child = optarg; break;
      case 'o': out = optarg; break;
      case 'r': rate = atof(optarg); break;
      case 'w': wait_go = 1; break;
      default:
        fprintf(stderr, "usage: spawnstorm -n N -p P -c CHILD -o PIDFILE [-r RATE] [-w]\n");
        return 2;
    }
  }
  if (!child || !out || n < 1 || p < 1) {
    fprintf(stderr, "usage: spawnstorm -n N -p P -c CHILD -o PIDFILE [-r RATE] [-w]\n");
    return 2;
  }
  const char *name = strrchr(child, '/') ? strrchr(child, '/') + 1 : child;
  rec_t *recs = calloc(n, sizeof *recs);
  /* pid -> index of the child in flight with that pid */
  long pid_max = 4194304;
  FILE *pm = fopen("/proc/sys/kernel/pid_max", "r");
  if (pm) { if (fscanf(pm, "%ld", &pid_max) != 1) pid_max = 4194304; fclose(pm); }
  long *slot = malloc((pid_max + 1) * sizeof *slot);
  if (!recs || !slot) { perror("malloc"); return 1; }

  if (wait_go) {
    printf("pid %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 1;
  }

  long inflight = 0, spawned = 0, failed = 0, reaped = 0;
  char idx[32], st[16];
  char *cargv[] = {(char *)name, idx, st, NULL};
  double t0 = now_mono(), r0 = now_real();
  for (long i = 0; i < n; i++) {
    if (rate > 0) {
      double due = t0 + i / rate;
      /* reap whatever has exited while waiting for the next slot */
      for (;;) {
        int ws;
        pid_t w = waitpid(-1, &ws, WNOHANG);
        if (w <= 0) break;
        recs[slot[w]].wstatus = ws;
        inflight--, reaped++;
      }
      double d = due - now_mono();
      if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
      }
    }
    while (inflight >= p) {
      int ws;
      pid_t w = waitpid(-1, &ws, 0);
      if (w < 0) { if (errno == EINTR) continue; perror("waitpid"); return 1; }
      recs[slot[w]].wstatus = ws;
      inflight--, reaped++;
    }
    snprintf(idx, sizeof idx, "%ld", i);
    snprintf(st, sizeof st, "%ld", i % 256);
    pid_t pid;
    int rc = posix_spawn(&pid, child, NULL, NULL, cargv, environ);
    if (rc != 0) {
      failed++;
      recs[i].pid = -1;
      continue;
    }
    recs[i].pid = pid;
    recs[i].status = (int)(i % 256);
    recs[i].wstatus = -1;
    slot[pid] = i;
    inflight++, spawned++;
  }
  while (inflight > 0) {
    int ws;
    pid_t w = waitpid(-1, &ws, 0);
    if (w < 0) { if (errno == EINTR) continue; perror("waitpid"); return 1; }
    recs[slot[w]].wstatus = ws;
    inflight--, reaped++;
  }
  double t1 = now_mono(), r1 = now_real();

  FILE *f = fopen(out, "w");
  if (!f) { perror(out); return 1; }
  for (long i = 0; i < n; i++)
    fprintf(f, "%ld %d %d %d\n", i, recs[i].pid, recs[i].status, recs[i].wstatus);
  fclose(f);
  printf("{\"pid\":%d,\"n\":%ld,\"p\":%ld,\"rate\":%g,\"spawned\":%ld,\"failed\":%ld,"
         "\"start\":%.6f,\"end\":%.6f,\"elapsed\":%.6f,\"spawns_per_s\":%.1f}\n",
         (int)getpid(), n, p, rate, spawned, failed, r0, r1, t1 - t0, spawned / (t1 - t0));
  return 0;
}
