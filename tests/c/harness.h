/* Minimal test harness for the C API tests (C99 and C++17). */
#ifndef EB_TEST_HARNESS_H
#define EB_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_bus.h"

static int h_failed_checks = 0;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "    %s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, eb_last_error());                                                     \
      h_failed_checks++;                                                                   \
    }                                                                                      \
  } while (0)

#define CHECK_STATUS(expr, expected)                                                       \
  do {                                                                                     \
    int h_rc_ = (int)(expr);                                                               \
    if (h_rc_ != (int)(expected)) {                                                        \
      fprintf(stderr, "    %s:%d: %s returned %d (%s), expected %s (last error: %s)\n",    \
              __FILE__, __LINE__, #expr, h_rc_, eb_strerror(h_rc_), #expected,             \
              eb_last_error());                                                            \
      h_failed_checks++;                                                                   \
    }                                                                                      \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, EB_OK)

typedef void (*h_test_fn)(void);

static int h_passed = 0, h_failed = 0;

static void h_run(const char *name, h_test_fn fn) {
  int before = h_failed_checks;
  fn();
  if (h_failed_checks == before) {
    h_passed++;
    printf("ok   - %s\n", name);
  } else {
    h_failed++;
    printf("FAIL - %s\n", name);
  }
  fflush(stdout);
}

#define RUN(fn) h_run(#fn, fn)

static int h_summary(void) {
  printf("%d passed, %d failed\n", h_passed, h_failed);
  return h_failed == 0 ? 0 : 1;
}

static long h_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void h_sleep_ms(long ms) { usleep((useconds_t)(ms * 1000)); }

/* Poll until *value >= target or timeout_ms passes; returns the last value seen. */
static int h_wait_at_least(const int *value, int target, long timeout_ms) {
  long deadline = h_now_ms() + timeout_ms;
  int v;
  while ((v = __atomic_load_n(value, __ATOMIC_SEQ_CST)) < target && h_now_ms() < deadline) {
    h_sleep_ms(5);
  }
  return v;
}

/* A name unique to this run: prefix.<pid>.<ms>.<n>. */
static void h_unique(char *buf, size_t size, const char *prefix) {
  static int n = 0;
  snprintf(buf, size, "%s.%d.%ld.%d", prefix, (int)getpid(), h_now_ms(), n++);
}

/* REDIS_URL, or the default local server. */
static inline const char *h_redis_url(void) {
  const char *url = getenv("REDIS_URL");
  return url != NULL && url[0] != '\0' ? url : "redis://127.0.0.1:6379";
}

/* Log lines of expected failures would clutter the output: count them, print none. */
static int h_quiet_lines = 0;
static inline void h_quiet_log(eb_log_level level, const char *line, void *ctx) {
  (void)level;
  (void)line;
  (void)ctx;
  __atomic_fetch_add(&h_quiet_lines, 1, __ATOMIC_SEQ_CST);
}

/* The test config: REDIS_URL or 127.0.0.1:6379, quiet logs. */
static const char *h_config(void) {
  static char buf[512];
  snprintf(buf, sizeof buf,
           "{\"serviceName\":\"c-tests\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"error\"}",
           h_redis_url());
  return buf;
}

/* A new connected client (NULL on failure, with the failure counted). */
static eb_client *h_connected_client(void) {
  eb_client *c = NULL;
  CHECK_OK(eb_client_new(h_config(), &c));
  if (c == NULL) return NULL;
  CHECK_OK(eb_connect(c));
  return c;
}

#endif
