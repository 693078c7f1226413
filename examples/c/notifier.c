/*
 * notifier: the C service of the photo pipeline (scripts/demo.sh runs it beside the Node API
 * service and the Python worker; scripts/test-c.sh checks it receives an event).
 *
 * Subscribes to photo.processing.completed and demo.shutdown. For each completed event prints
 * the photo and its thumbnail count; stops on demo.shutdown, Ctrl-C / SIGTERM, or after
 * EB_NOTIFIER_MAX_EVENTS completed events, and prints its stats. With DEMO_RUN set, only the
 * events of that demo run count (data.run == $DEMO_RUN) and it gives up after 5 minutes
 * without the run's demo.shutdown. Uses REDIS_URL or redis://127.0.0.1:6379, or a Redis
 * Cluster when REDIS_CLUSTER_NODES is set (host:port,... as scripts/redis-topology.sh writes it).
 *
 * Build (after scripts/build-c.sh installed the library under PREFIX):
 *   export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
 *   cc examples/c/notifier.c -o notifier $(pkg-config --cflags --libs event_bus) \
 *      -Wl,-rpath,$PREFIX/lib
 * Run:
 *   REDIS_URL=redis://127.0.0.1:6379 ./notifier
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_bus.h"
#include "json_scan.h"

static volatile sig_atomic_t stop_signal = 0;
/* Written by handler threads, read by main (atomics). */
static int shutdown_seen = 0;
static int received = 0;
/* The demo run whose events count, or NULL for every event. */
static const char *demo_run = NULL;

static void on_signal(int sig) {
  (void)sig;
  stop_signal = 1;
}

/* ---- just enough JSON to read a few fields of the event's data ---------------------------- */

/* Whether the string field `key` of object `json` is exactly `want` (no escapes compared). */
static int field_is(const char *json, const char *key, const char *want) {
  const char *end, *v = obj_get(json, key, &end);
  size_t n = strlen(want);
  return v && *v == '"' && (size_t)(end - v) == n + 2 && memcmp(v + 1, want, n) == 0;
}

/* Whether an event's data belongs to the run this notifier follows. */
static int of_this_run(const char *data_json) {
  return demo_run == NULL || field_is(data_json, "run", demo_run);
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

/* ---- handlers ------------------------------------------------------------------------------
 * They run on library threads, one event at a time per subscription. The event's strings are
 * borrowed: valid only until the handler returns. A non-zero return counts as a failure (and is
 * retried when the subscription has retryOnError). */

static int on_completed(const eb_event *ev, void *ctx) {
  (void)ctx;
  const char *end;
  if (!of_this_run(ev->data_json)) return 0;
  int thumbs = array_len(obj_get(ev->data_json, "thumbnails", &end));
  fputs("[notifier] photo ", stdout);
  print_field(ev->data_json, "photoId");
  printf(" completed: %d thumbnails\n", thumbs < 0 ? 0 : thumbs);
  fflush(stdout);
  __atomic_fetch_add(&received, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static int on_shutdown(const eb_event *ev, void *ctx) {
  (void)ctx;
  if (of_this_run(ev->data_json)) __atomic_store_n(&shutdown_seen, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static int fail(const char *what, eb_status rc) {
  fprintf(stderr, "[notifier] %s failed: %s: %s\n", what, eb_strerror(rc), eb_last_error());
  eb_shutdown();
  return 1;
}

static void print_stats(eb_client *client) {
  static const char *keys[] = {"eventsPublished", "eventsReceived", "eventsDelivered", "eventsFailed",
                               "averageLatency"};
  static const char *names[] = {"published", "received", "delivered", "failed", "avgLatency"};
  char *stats = NULL;
  if (eb_get_stats(client, &stats) != EB_OK) return;
  fputs("[notifier] stats:", stdout);
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const char *end, *v = obj_get(stats, keys[i], &end);
    printf(" %s=", names[i]);
    if (v && i == 4) printf("%.2fms", strtod(v, NULL));
    else print_field(stats, keys[i]);
  }
  printf("\n");
  fflush(stdout);
  eb_string_free(stats); /* strings returned through char ** are ours to free */
}

int main(void) {
  const char *pattern = "photo.processing.completed";
  const char *url = getenv("REDIS_URL");
  const char *run = getenv("DEMO_RUN");
  const char *max_env = getenv("EB_NOTIFIER_MAX_EVENTS");
  int max_events = max_env != NULL ? atoi(max_env) : 0;
  char config[1024];
  eb_client *client = NULL;
  char *sub_id = NULL;
  eb_status rc;
  struct timespec tick = {0, 20 * 1000 * 1000};
  int waited_ms = 0;

  if (url == NULL || url[0] == '\0') url = "redis://127.0.0.1:6379";
  if (run != NULL && run[0] != '\0') demo_run = run;
  const char *cluster = getenv("REDIS_CLUSTER_NODES");
  if (cluster != NULL && cluster[0] != '\0') {
    /* Seeds "redis://a","redis://b",... from "a,b,...". */
    char seeds[768] = "";
    size_t len = 0;
    for (const char *p = cluster; *p != '\0' && len < sizeof seeds;) {
      size_t n = strcspn(p, ",");
      len += (size_t)snprintf(seeds + len, sizeof seeds - len, "%s\"redis://%.*s\"", len ? "," : "", (int)n, p);
      p += n;
      if (*p == ',') p++;
    }
    if (len >= sizeof seeds) {
      fprintf(stderr, "[notifier] REDIS_CLUSTER_NODES is too long\n");
      return 1;
    }
    snprintf(config, sizeof config,
             "{\"serviceName\":\"c-notifier\",\"redis\":{\"cluster\":[%s]},\"logLevel\":\"warn\"}", seeds);
  } else {
    snprintf(config, sizeof config,
             "{\"serviceName\":\"c-notifier\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"warn\"}", url);
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  if ((rc = eb_client_new(config, &client)) != EB_OK) return fail("eb_client_new", rc);
  if ((rc = eb_connect(client)) != EB_OK) return fail("eb_connect", rc);
  /* drop is NULL: the handlers' ctx is NULL, nothing to release. */
  eb_handler completed = {on_completed, NULL}, shutdown = {on_shutdown, NULL};
  if ((rc = eb_subscribe(client, pattern, "{\"retryOnError\":false}", completed, NULL, &sub_id)) != EB_OK)
    return fail("eb_subscribe", rc);
  if ((rc = eb_subscribe(client, "demo.shutdown", NULL, shutdown, NULL, NULL)) != EB_OK)
    return fail("eb_subscribe", rc);
  printf("[notifier] ready: listening on %s (subscription %s)\n", pattern, sub_id);
  fflush(stdout);
  eb_string_free(sub_id); /* we own the id string; eb_disconnect drops the subscription */

  while (!stop_signal && !__atomic_load_n(&shutdown_seen, __ATOMIC_SEQ_CST) &&
         (max_events <= 0 || __atomic_load_n(&received, __ATOMIC_SEQ_CST) < max_events) &&
         (demo_run == NULL || waited_ms < 300000)) {
    nanosleep(&tick, NULL);
    if (demo_run != NULL) waited_ms += 20;
  }
  if (demo_run != NULL && waited_ms >= 300000)
    fprintf(stderr, "[notifier] timed out waiting for demo.shutdown\n");

  print_stats(client);
  eb_client_free(client); /* disconnects: waits for running handlers, then releases */
  eb_shutdown();          /* stops the library's threads before exit */
  return 0;
}
