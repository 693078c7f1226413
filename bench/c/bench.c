/*
 * C face benchmark driver: one scenario per run, prints one JSON line.
 *
 *   bench SCENARIO N SIZE
 *     batch   : eb_publish_batch of 1,000 items, repeated until N events        -> {"rate"}
 *     threads : 4 threads calling eb_publish concurrently, N events in all      -> {"rate"}
 *     serial  : eb_publish awaited one at a time, N events                      -> {"rate","p50_ms","p99_ms"}
 *   SIZE 0 = the sample photo.uploaded data (~320 B on the wire), else data padded to SIZE bytes.
 *
 * bench/c/run.sh builds it and compares with redis-benchmark (see there).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_bus.h"

#define BATCH 1000
#define THREADS 4

static eb_client *client;
static const char *data_json;
static long per_thread;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void check(const char *what, eb_status rc) {
  if (rc != EB_OK) {
    fprintf(stderr, "bench: %s: %s: %s\n", what, eb_strerror(rc), eb_last_error());
    exit(1);
  }
}

/* The sample photo.uploaded data, padded (as the Rust driver does) to `size` bytes. */
static char *make_data(size_t size) {
  static const char base[] =
      "{\"photoId\":\"photo-123\",\"userId\":\"user-456\",\"filename\":\"vacation.jpg\",\"size\":"
      "1024000,\"mimeType\":\"image/jpeg\",\"uploadedAt\":\"2026-11-27T04:00:00.000Z\"";
  size_t blen = sizeof base - 1, pad = size > blen + 2 ? size - blen - 2 : 0;
  char *s = malloc(blen + pad + 32);
  if (!s) abort();
  if (pad > 12) {
    size_t x = pad - 9, off;
    memcpy(s, base, blen);
    off = blen;
    memcpy(s + off, ",\"pad\":\"", 8);
    off += 8;
    memset(s + off, 'x', x);
    off += x;
    memcpy(s + off, "\"}", 3);
  } else {
    memcpy(s, base, blen);
    memcpy(s + blen, "}", 2);
  }
  return s;
}

static void *thread_main(void *arg) {
  (void)arg;
  for (long i = 0; i < per_thread; i++) {
    check("eb_publish", eb_publish(client, "photo.uploaded", data_json, NULL, NULL));
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *scenario = argc > 1 ? argv[1] : "batch";
  long n = argc > 2 ? atol(argv[2]) : 100000;
  size_t size = argc > 3 ? (size_t)atol(argv[3]) : 0;
  const char *url = getenv("REDIS_URL");
  char config[512];
  if (!url || !*url) url = "redis://127.0.0.1:6379";
  snprintf(config, sizeof config,
           "{\"serviceName\":\"bench-c\",\"redis\":{\"url\":\"%s\",\"publishTimeout\":60000},"
           "\"logLevel\":\"error\"}",
           url);
  char *data = make_data(size);
  data_json = data;
  check("eb_client_new", eb_client_new(config, &client));
  check("eb_connect", eb_connect(client));

  /* Warm-up. */
  for (int i = 0; i < 100; i++) check("eb_publish", eb_publish(client, "photo.uploaded", data, NULL, NULL));

  if (strcmp(scenario, "batch") == 0) {
    size_t dlen = strlen(data), item_len = dlen + 40;
    char *items = malloc(item_len * BATCH + 8), *p = items;
    if (!items) abort();
    *p++ = '[';
    for (int i = 0; i < BATCH; i++) {
      if (i) *p++ = ',';
      p += sprintf(p, "{\"type\":\"photo.uploaded\",\"data\":%s}", data);
    }
    *p++ = ']';
    *p = '\0';
    long batches = (n + BATCH - 1) / BATCH;
    double t0 = now_s();
    for (long b = 0; b < batches; b++) {
      char *results = NULL;
      check("eb_publish_batch", eb_publish_batch(client, items, &results));
      eb_string_free(results);
    }
    double dt = now_s() - t0;
    printf("{\"scenario\":\"batch\",\"n\":%ld,\"rate\":%.1f}\n", batches * BATCH, (double)(batches * BATCH) / dt);
    free(items);
  } else if (strcmp(scenario, "threads") == 0) {
    pthread_t th[THREADS];
    per_thread = n / THREADS;
    double t0 = now_s();
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, thread_main, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    printf("{\"scenario\":\"threads\",\"n\":%ld,\"rate\":%.1f}\n", per_thread * THREADS,
           (double)(per_thread * THREADS) / dt);
  } else if (strcmp(scenario, "serial") == 0) {
    double *lat = malloc(sizeof(double) * (size_t)n);
    if (!lat) abort();
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
      double a = now_s();
      check("eb_publish", eb_publish(client, "photo.uploaded", data, NULL, NULL));
      lat[i] = (now_s() - a) * 1e3;
    }
    double dt = now_s() - t0;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("{\"scenario\":\"serial\",\"n\":%ld,\"rate\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f}\n", n,
           (double)n / dt, lat[(size_t)((double)(n - 1) * 0.50 + 0.5)], lat[(size_t)((double)(n - 1) * 0.99 + 0.5)],
           lat[n - 1]);
    free(lat);
  } else {
    fprintf(stderr, "bench: unknown scenario %s (batch, threads, serial)\n", scenario);
    return 2;
  }
  eb_client_free(client);
  eb_shutdown();
  free(data);
  return 0;
}
