/*
 * Demo "notifier" (C): the C service of the photo pipeline (scripts/demo.sh builds and runs it).
 *
 * Subscribes to photo.processing.completed and demo.shutdown. For each completed event of this
 * demo run (data.run == $DEMO_RUN) prints the photo and its thumbnail count; on demo.shutdown of
 * the run prints its stats and exits. Uses REDIS_URL or redis://127.0.0.1:6379.
 *
 *   cc examples/demo/notifier.c -o notifier $(pkg-config --cflags --libs event_bus)
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_bus.h"

static volatile sig_atomic_t stop_signal = 0;
static int shutdown_seen = 0; /* set by a handler thread, read by main (atomics) */
static const char *demo_run = "demo";

static void on_signal(int sig) {
  (void)sig;
  stop_signal = 1;
}

/* ---- just enough JSON to read a few fields of the event's data ---------------------------- */

#include "../c/json_scan.h"

/* Whether the string field `key` of object `json` is exactly `want` (no escapes compared). */
static int field_is(const char *json, const char *key, const char *want) {
  const char *end, *v = obj_get(json, key, &end);
  size_t n = strlen(want);
  return v && *v == '"' && (size_t)(end - v) == n + 2 && memcmp(v + 1, want, n) == 0;
}

/* Prints the raw text of a field (strings without their quotes), "?" when absent. */
static void print_field(const char *json, const char *key) {
  const char *end, *v = obj_get(json, key, &end);
  if (!v) {
    fputs("?", stdout);
  } else if (*v == '"') {
    fwrite(v + 1, 1, (size_t)(end - v - 2), stdout);
  } else {
    fwrite(v, 1, (size_t)(end - v), stdout);
  }
}

static int array_len(const char *v) {
  int n = 0;
  if (!v || *v != '[') return -1;
  v = skip_ws(v + 1);
  while (*v && *v != ']') {
    if (!(v = skip_value(v))) return -1;
    n++;
    v = skip_ws(v);
    if (*v == ',') v = skip_ws(v + 1);
  }
  return n;
}

/* ---- handlers (library threads; event strings are borrowed until return) ----------------- */

static int on_completed(const eb_event *ev, void *ctx) {
  (void)ctx;
  const char *end;
  if (!field_is(ev->data_json, "run", demo_run)) return 0;
  int thumbs = array_len(obj_get(ev->data_json, "thumbnails", &end));
  fputs("[notifier] photo ", stdout);
  print_field(ev->data_json, "photoId");
  printf(" completed: %d thumbnails\n", thumbs < 0 ? 0 : thumbs);
  fflush(stdout);
  return 0;
}

static int on_shutdown(const eb_event *ev, void *ctx) {
  (void)ctx;
  if (field_is(ev->data_json, "run", demo_run)) __atomic_store_n(&shutdown_seen, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static int fail(const char *what, eb_status rc) {
  fprintf(stderr, "[notifier] %s failed: %s: %s\n", what, eb_strerror(rc), eb_last_error());
  eb_shutdown();
  return 1;
}

int main(void) {
  const char *url = getenv("REDIS_URL");
  const char *run = getenv("DEMO_RUN");
  char config[1024];
  eb_client *client = NULL;
  char *stats = NULL;
  eb_status rc;
  struct timespec tick = {0, 20 * 1000 * 1000};
  int waited_ms = 0;

  if (url == NULL || url[0] == '\0') url = "redis://127.0.0.1:6379";
  if (run != NULL && run[0] != '\0') demo_run = run;
  snprintf(config, sizeof config,
           "{\"serviceName\":\"c-notifier\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"warn\"}", url);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  if ((rc = eb_client_new(config, &client)) != EB_OK) return fail("eb_client_new", rc);
  if ((rc = eb_connect(client)) != EB_OK) return fail("eb_connect", rc);
  eb_handler completed = {on_completed, NULL}, shutdown = {on_shutdown, NULL};
  if ((rc = eb_subscribe(client, "photo.processing.completed", NULL, completed, NULL, NULL)) != EB_OK)
    return fail("eb_subscribe", rc);
  if ((rc = eb_subscribe(client, "demo.shutdown", NULL, shutdown, NULL, NULL)) != EB_OK)
    return fail("eb_subscribe", rc);
  printf("[notifier] ready\n");
  fflush(stdout);

  /* Until demo.shutdown of this run, a signal, or 5 minutes. */
  while (!stop_signal && !__atomic_load_n(&shutdown_seen, __ATOMIC_SEQ_CST) && waited_ms < 300000) {
    nanosleep(&tick, NULL);
    waited_ms += 20;
  }
  if (!__atomic_load_n(&shutdown_seen, __ATOMIC_SEQ_CST) && !stop_signal)
    fprintf(stderr, "[notifier] timed out waiting for demo.shutdown\n");

  if (eb_get_stats(client, &stats) == EB_OK) {
    fputs("[notifier] stats:", stdout);
    static const char *keys[] = {"eventsPublished", "eventsReceived", "eventsDelivered", "eventsFailed",
                                 "averageLatency"};
    static const char *names[] = {"published", "received", "delivered", "failed", "avgLatency"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
      printf(" %s=", names[i]);
      const char *end, *v = obj_get(stats, keys[i], &end);
      if (v && i == 4) printf("%.2fms", strtod(v, NULL));
      else print_field(stats, keys[i]);
      (void)v;
    }
    printf("\n");
    fflush(stdout);
    eb_string_free(stats);
  }
  eb_client_free(client); /* disconnects: waits for running handlers, then releases */
  eb_shutdown();          /* stops the library's threads before exit */
  return 0;
}
