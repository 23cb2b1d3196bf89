/* The storm's child: exits at once (or, built with -DLIVE_NS, after a nanosleep) with the
 * status given as argv[2]. argv is `<name> <index> <status>`; the index only makes argv
 * distinctive. Built static so that exec costs as little as possible. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
#ifdef LIVE_NS
  struct timespec ts = {LIVE_NS / 1000000000L, LIVE_NS % 1000000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
#endif
  _exit(argc > 2 ? atoi(argv[2]) & 255 : 0);
}
