/*
 * Soak subscriber, C face (scripts/soak.sh): writes every delivery and every state event (gaps
 * included) to an NDJSON ledger:
 *   {"k":"recv","id":N,"t":ms}  {"k":"state","type":"gap","t":ms,"ev":{...}}
 *   {"k":"ready","t":ms}  {"k":"end","t":ms}
 * SIGTERM: disconnect (queued handlers finish), write `end`, eb_shutdown.
 * With a group, it is a member of that durable group instead of a pub/sub subscriber: it reads
 * the persistent events from the channel's (the event type's) stream and writes the delivery's
 * attempt too: {"k":"recv","id":N,"t":ms,"attempt":A}.
 *   sub <redis-url> <channel> <ledger> [<group> <consumer>]
 */
#include <event_bus.h>

#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&lock);
  vfprintf(out, fmt, ap);
  fputc('\n', out);
  fflush(out);
  pthread_mutex_unlock(&lock);
  va_end(ap);
}

static int on_event(const struct eb_event *ev, void *ctx) {
  (void)ctx;
  const char *p = strstr(ev->data_json, "\"id\":");
  if (!p) {
    line("{\"k\":\"bad\",\"t\":%lld}", now_ms());
    return 0;
  }
  if (ev->group != NULL) {
    line("{\"k\":\"recv\",\"id\":%lld,\"t\":%lld,\"attempt\":%u}", strtoll(p + 5, NULL, 10),
         now_ms(), (unsigned)ev->attempt);
  } else {
    line("{\"k\":\"recv\",\"id\":%lld,\"t\":%lld}", strtoll(p + 5, NULL, 10), now_ms());
  }
  return 0;
}

static void on_state(const char *state, const char *event_json, void *ctx) {
  (void)ctx;
  line("{\"k\":\"state\",\"type\":\"%s\",\"t\":%lld,\"ev\":%s}", state, now_ms(), event_json);
}

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 6) {
    fprintf(stderr, "usage: %s <redis-url> <channel> <ledger> [<group> <consumer>]\n", argv[0]);
    return 2;
  }
  out = fopen(argv[3], "a");
  if (!out) {
    perror(argv[3]);
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  char config[1024];
  snprintf(config, sizeof config,
           "{\"serviceName\":\"%s\",\"logLevel\":\"error\",\"redis\":{\"url\":\"%s\","
           "\"heartbeatInterval\":1000,\"reconnectDelay\":50,\"reconnectDelayMax\":1000,"
           "\"connectTimeout\":2000}}",
           argc == 6 ? "soak-c-dur" : "soak-c-sub", argv[1]);
  struct eb_client *bus = NULL;
  if (eb_client_new(config, &bus) != EB_OK) {
    fprintf(stderr, "eb_client_new: %s\n", eb_last_error());
    return 1;
  }
  if (eb_on_state(bus, on_state, NULL, NULL, NULL) != EB_OK) {
    fprintf(stderr, "eb_on_state: %s\n", eb_last_error());
    return 1;
  }
  while (!stop && eb_connect(bus) != EB_OK) {
    line("{\"k\":\"state\",\"type\":\"connect-failed\",\"t\":%lld}", now_ms());
    usleep(500 * 1000);
  }
  struct eb_handler h = {on_event, NULL};
  /* Durable: reclaim quickly, so that entries a lost connection left pending come back within
   * about minIdleTime + claimInterval. */
  char options[512];
  if (argc == 6) {
    snprintf(options, sizeof options,
             "{\"durable\":{\"group\":\"%s\",\"consumer\":\"%s\",\"minIdleTime\":2000,"
             "\"claimInterval\":500,\"block\":1000,\"count\":50}}",
             argv[4], argv[5]);
  } else {
    snprintf(options, sizeof options, "{\"maxPending\":1000000}");
  }
  if (eb_subscribe(bus, argv[2], options, h, NULL, NULL) != EB_OK) {
    fprintf(stderr, "eb_subscribe: %s\n", eb_last_error());
    return 1;
  }
  line("{\"k\":\"ready\",\"t\":%lld}", now_ms());
  while (!stop) usleep(200 * 1000);
  line("{\"k\":\"stopping\",\"t\":%lld}", now_ms());
  eb_disconnect(bus);
  eb_client_free(bus);
  eb_shutdown();
  line("{\"k\":\"end\",\"t\":%lld}", now_ms());
  fclose(out);
  return 0;
}
