/*
 * Cross-language participant: the C face. See run.py for the protocol:
 *
 *   participant FACE RUN PLAN OUT READY GO
 *
 * Connects (CROSS_REDIS, the `redis` config section as JSON text, e.g. a cluster's seeds; else
 * REDIS_URL or redis://127.0.0.1:6379), subscribes every pattern of the plan, writes
 * READY, waits for GO, publishes the face's plan items in order (eb_publish, one at a time, with
 * the plan's own `data` / `options` JSON text), collects every event whose data.run is RUN until
 * it has `expected` of them (or `timeoutMs`), writes them as JSON lines
 * {"channel","id","type","data","metadata"} to OUT, disconnects and exits 0.
 *
 * The plan is read with a minimal JSON scanner (skip a value, find a key in an object): enough
 * to cut out the raw text of each value, which is all the participant needs.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_bus.h"

#include "../../examples/c/json_scan.h"

static char *dup_range(const char *a, const char *b) {
  char *s = malloc((size_t)(b - a) + 1);
  if (!s) abort();
  memcpy(s, a, (size_t)(b - a));
  s[b - a] = '\0';
  return s;
}

/* The contents of a JSON string without its quotes (escapes kept as they are: the plan's
 * patterns and types have none). */
static char *dup_string_raw(const char *v, const char *vend) {
  if (*v != '"' || vend - v < 2) return NULL;
  return dup_range(v + 1, vend - 1);
}

/* ---- growable buffer ----------------------------------------------------------------------- */

typedef struct {
  char *p;
  size_t len, cap;
} buf;

static void buf_put(buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_json_string(buf *b, const char *s) {
  buf_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      buf_put(b, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_put(b, esc, 6);
    } else {
      buf_put(b, (const char *)s, 1);
    }
  }
  buf_put(b, "\"", 1);
}

/* ---- the participant ----------------------------------------------------------------------- */

typedef struct {
  pthread_mutex_t lock;
  const char *run;
  char **lines;
  size_t count, cap;
} collector;

/* Whether data has "run": "<run>" (whitespace around ':' tolerated). */
static int has_run(const char *data, const char *run) {
  size_t rlen = strlen(run);
  const char *p = data;
  while ((p = strstr(p, "\"run\"")) != NULL) {
    const char *q = skip_ws(p + 5);
    p += 5;
    if (*q != ':') continue;
    q = skip_ws(q + 1);
    if (*q == '"' && strncmp(q + 1, run, rlen) == 0 && q[1 + rlen] == '"') return 1;
  }
  return 0;
}

static int on_event(const eb_event *ev, void *ctx) {
  collector *c = (collector *)ctx;
  buf line = {0};
  if (!ev->data_json || !has_run(ev->data_json, c->run)) return 0;
  buf_puts(&line, "{\"channel\":");
  buf_json_string(&line, ev->channel);
  buf_puts(&line, ",\"id\":");
  buf_json_string(&line, ev->id);
  buf_puts(&line, ",\"type\":");
  buf_json_string(&line, ev->type);
  buf_puts(&line, ",\"data\":");
  buf_puts(&line, ev->data_json);
  buf_puts(&line, ",\"metadata\":");
  buf_puts(&line, ev->metadata_json ? ev->metadata_json : "null");
  buf_puts(&line, "}\n");
  pthread_mutex_lock(&c->lock);
  if (c->count == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->lines = realloc(c->lines, c->cap * sizeof *c->lines);
    if (!c->lines) abort();
  }
  c->lines[c->count++] = line.p;
  pthread_mutex_unlock(&c->lock);
  return 0;
}

static size_t collected(collector *c) {
  pthread_mutex_lock(&c->lock);
  size_t n = c->count;
  pthread_mutex_unlock(&c->lock);
  return n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  buf b = {0};
  char chunk[65536];
  size_t n;
  if (!f) return NULL;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_put(&b, chunk, n);
  fclose(f);
  return b.p;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static int die(const char *what, eb_status rc) {
  fprintf(stderr, "c participant: %s failed: %s: %s\n", what, eb_strerror(rc), eb_last_error());
  eb_shutdown();
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s FACE RUN PLAN OUT READY GO\n", argv[0]);
    return 2;
  }
  const char *face = argv[1], *run = argv[2], *plan_path = argv[3], *out_path = argv[4],
             *ready_path = argv[5], *go_path = argv[6];
  const char *url = getenv("REDIS_URL");
  if (!url || !*url) url = "redis://127.0.0.1:6379";

  char *plan = read_file(plan_path);
  if (!plan) {
    perror(plan_path);
    return 1;
  }
  const char *end, *v, *patterns, *patterns_end, *items;
  long expected = 0, timeout_ms = 30000;
  if ((v = obj_get(plan, "expected", &end))) expected = strtol(v, NULL, 10);
  if ((v = obj_get(plan, "timeoutMs", &end))) timeout_ms = strtol(v, NULL, 10);
  patterns = obj_get(plan, "patterns", &patterns_end);
  v = obj_get(plan, "items", &end);
  items = v ? obj_get(v, face, &end) : NULL;
  if (!patterns || *patterns != '[' || !items || *items != '[') {
    fprintf(stderr, "c participant: plan has no patterns or no items for %s\n", face);
    free(plan);
    return 1;
  }

  collector col = {PTHREAD_MUTEX_INITIALIZER, run, NULL, 0, 0};
  buf config = {0};
  buf_puts(&config, "{\"serviceName\":");
  {
    buf name = {0};
    buf_puts(&name, "xl-");
    buf_puts(&name, face);
    buf_json_string(&config, name.p);
    free(name.p);
  }
  const char *redis = getenv("CROSS_REDIS");
  if (redis && *redis) {
    buf_puts(&config, ",\"redis\":");
    buf_puts(&config, redis);
  } else {
    buf_puts(&config, ",\"redis\":{\"url\":");
    buf_json_string(&config, url);
    buf_puts(&config, "}");
  }
  buf_puts(&config, ",\"logLevel\":\"error\"}");

  eb_client *client = NULL;
  eb_status rc = eb_client_new(config.p, &client);
  free(config.p);
  if (rc != EB_OK) return free(plan), die("eb_client_new", rc);
  if ((rc = eb_connect(client)) != EB_OK) return free(plan), die("eb_connect", rc);

  /* Subscribe each pattern, with subscribeOptions[face] when the plan has them (the durable
   * round's consumer group, see run.py). */
  char *sub_options = NULL;
  {
    const char *so_end, *so = obj_get(plan, "subscribeOptions", &so_end);
    const char *fo_end, *fo = so ? obj_get(so, face, &fo_end) : NULL;
    if (fo) sub_options = dup_range(fo, fo_end);
  }
  const char *p = skip_ws(patterns + 1);
  while (*p == '"') {
    const char *pe = skip_value(p);
    char *pattern = dup_string_raw(p, pe);
    eb_handler h = {on_event, NULL};
    rc = eb_subscribe(client, pattern, sub_options ? sub_options : "{\"retryOnError\":false}", h, &col,
                      NULL);
    free(pattern);
    if (rc != EB_OK) return free(plan), die("eb_subscribe", rc);
    p = skip_ws(pe);
    if (*p == ',') p = skip_ws(p + 1);
  }

  free(sub_options);
  if (write_file(ready_path, "ready") != 0) perror(ready_path);
  while (access(go_path, F_OK) != 0) sleep_ms(20);

  /* Publish the face's items in order, each awaited. */
  p = skip_ws(items + 1);
  while (*p == '{') {
    const char *ie = skip_value(p), *tv, *te, *dv, *de, *ov, *oe;
    if (!ie) break;
    tv = obj_get(p, "type", &te);
    dv = obj_get(p, "data", &de);
    ov = obj_get(p, "options", &oe);
    char *type = tv ? dup_string_raw(tv, te) : NULL;
    char *data = dv ? dup_range(dv, de) : NULL;
    char *options = ov ? dup_range(ov, oe) : NULL;
    eb_publish_result res;
    rc = eb_publish(client, type, data, options, &res);
    free(type);
    free(data);
    free(options);
    if (rc != EB_OK) return free(plan), die("eb_publish", rc);
    p = skip_ws(ie);
    if (*p == ',') p = skip_ws(p + 1);
  }
  free(plan);

  double deadline = now_ms() + (double)timeout_ms;
  while ((long)collected(&col) < expected && now_ms() < deadline) sleep_ms(20);
  sleep_ms(200); /* catch duplicates, if any */

  /* After eb_disconnect no handler runs: the list is ours alone. */
  rc = eb_disconnect(client);
  if (rc != EB_OK) fprintf(stderr, "c participant: eb_disconnect: %s\n", eb_last_error());
  FILE *out = fopen(out_path, "wb");
  if (!out) {
    perror(out_path);
    return 1;
  }
  for (size_t i = 0; i < col.count; i++) {
    fputs(col.lines[i], out);
    free(col.lines[i]);
  }
  free(col.lines);
  fclose(out);
  eb_client_free(client);
  eb_shutdown();
  return 0;
}
