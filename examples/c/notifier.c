/*
 * notifier: the C service of the photo pipeline. Subscribes to photo.processing.completed,
 * prints each event, and prints its stats when it stops (Ctrl-C, SIGTERM, or after
 * EB_NOTIFIER_MAX_EVENTS events).
 *
 * Build (after scripts/build-c.sh installed the library under PREFIX):
 *   export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
 *   cc examples/c/notifier.c -o notifier $(pkg-config --cflags --libs event_bus) \
 *      -Wl,-rpath,$PREFIX/lib
 * Run:
 *   REDIS_URL=redis://127.0.0.1:6379 ./notifier [pattern]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event_bus.h"

static volatile sig_atomic_t stop = 0;
static int received = 0; /* written by the handler thread, read by main */

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* Runs on a library thread, one event at a time for this subscription. The event's strings are
 * borrowed: valid only until we return. */
static int on_completed(const eb_event *ev, void *ctx) {
  const char *service = (const char *)ctx;
  printf("[%s] %s on %s: %s\n", service, ev->type, ev->channel, ev->data_json);
  fflush(stdout);
  __atomic_fetch_add(&received, 1, __ATOMIC_SEQ_CST);
  return 0; /* non-zero would count as a failure (and be retried if retryOnError) */
}

static int fail(const char *what, eb_status rc) {
  fprintf(stderr, "notifier: %s failed: %s: %s\n", what, eb_strerror(rc), eb_last_error());
  eb_shutdown();
  return 1;
}

int main(int argc, char **argv) {
  const char *pattern = argc > 1 ? argv[1] : "photo.processing.completed";
  const char *url = getenv("REDIS_URL");
  const char *max_env = getenv("EB_NOTIFIER_MAX_EVENTS");
  int max_events = max_env != NULL ? atoi(max_env) : 0;
  char config[512];
  eb_client *client = NULL;
  char *sub_id = NULL;
  char *stats = NULL;
  eb_handler handler;
  eb_status rc;

  if (url == NULL || url[0] == '\0') url = "redis://127.0.0.1:6379";
  snprintf(config, sizeof config,
           "{\"serviceName\":\"c-notifier\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"warn\"}",
           url);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  if ((rc = eb_client_new(config, &client)) != EB_OK) return fail("eb_client_new", rc);
  if ((rc = eb_connect(client)) != EB_OK) return fail("eb_connect", rc);

  handler.call = on_completed;
  handler.drop = NULL; /* ctx is a static string: nothing to release */
  rc = eb_subscribe(client, pattern, "{\"retryOnError\":false}", handler, (void *)"notifier",
                    &sub_id);
  if (rc != EB_OK) return fail("eb_subscribe", rc);
  printf("notifier: listening on %s (subscription %s)\n", pattern, sub_id);
  fflush(stdout);
  eb_string_free(sub_id); /* we own the id string; eb_disconnect drops the subscription */

  while (!stop && (max_events <= 0 || __atomic_load_n(&received, __ATOMIC_SEQ_CST) < max_events)) {
    usleep(50 * 1000);
  }

  if (eb_get_stats(client, &stats) == EB_OK) {
    printf("notifier stats: %s\n", stats);
    eb_string_free(stats);
  }
  eb_client_free(client); /* disconnects: waits for a running handler, then releases */
  eb_shutdown();          /* stops the library's threads before exit */
  return 0;
}
