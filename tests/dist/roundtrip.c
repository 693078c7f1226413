/*
 * One publish/subscribe round trip through a C library from a dist/c tarball (built and run by
 * scripts/check-dist.sh, for the build machine and under qemu-user). Prints one line, exits 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_bus.h"

static atomic_int received = 0;

static int on_event(const eb_event *ev, void *ctx) {
  (void)ctx;
  if (strcmp(ev->data_json, "{\"n\":1}") == 0) atomic_store(&received, 1);
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "roundtrip: %s: %s\n", what, eb_last_error());
  return 1;
}

int main(void) {
  const char *url = getenv("REDIS_URL");
  char config[512], channel[128];
  snprintf(config, sizeof config, "{\"serviceName\":\"dist-check\",\"redis\":{\"url\":\"%s\"}}",
           url ? url : "redis://127.0.0.1:6379");
  snprintf(channel, sizeof channel, "dist.check.c.%ld", (long)getpid());
  eb_client *bus = NULL;
  if (eb_client_new(config, &bus) != EB_OK) return fail("eb_client_new");
  if (eb_connect(bus) != EB_OK) return fail("eb_connect");
  eb_handler h = {.call = on_event, .drop = NULL};
  if (eb_subscribe(bus, channel, NULL, h, NULL, NULL) != EB_OK) return fail("eb_subscribe");
  eb_publish_result result;
  if (eb_publish(bus, channel, "{\"n\":1}", NULL, &result) != EB_OK) return fail("eb_publish");
  for (int i = 0; i < 3000 && !atomic_load(&received); i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  int ok = atomic_load(&received);
  eb_client_free(bus);
  eb_shutdown();
  if (!ok) {
    fprintf(stderr, "roundtrip: no event on %s within 30 s\n", channel);
    return 1;
  }
  printf("roundtrip ok: C, libevent_bus %s\n", eb_version());
  return 0;
}
