/*
 * Durable delivery through the C API, against a real Redis (REDIS_URL or 127.0.0.1:6379),
 * every event type unique to the run: a consumer group consumes persistent events (one type,
 * and a JSON array of types), dead letters are listed, replayed and purged, and a glob such
 * as `[ab]*` stays a (non-durable) pattern. Built and run by scripts/test-c.sh.
 */
#include <pthread.h>

#include "harness.h"

typedef struct durable_rec {
  pthread_mutex_t mu;
  int calls;
  int ok_calls;
  int fail; /* return failure while set (unless the event's id is `heal_id`) */
  char heal_id[64];
  char last_id[64];
  char last_type[128];
  char last_stream_id[64];
  char last_group[128];
  unsigned last_attempt;
  int had_stream_id;
  int json_has_delivery;
  int had_pattern;
} durable_rec;

static void rec_init(durable_rec *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
}

static void rec_destroy(durable_rec *r) { pthread_mutex_destroy(&r->mu); }

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src != NULL ? src : "");
}

static int on_event(const eb_event *ev, void *ctx) {
  durable_rec *r = (durable_rec *)ctx;
  int fail;
  pthread_mutex_lock(&r->mu);
  copy_str(r->last_id, sizeof r->last_id, ev->id);
  copy_str(r->last_type, sizeof r->last_type, ev->type);
  r->had_stream_id = ev->stream_id != NULL;
  copy_str(r->last_stream_id, sizeof r->last_stream_id, ev->stream_id);
  copy_str(r->last_group, sizeof r->last_group, ev->group);
  r->last_attempt = ev->attempt;
  r->json_has_delivery = strstr(ev->json, "\"delivery\":") != NULL;
  r->had_pattern = ev->pattern != NULL;
  fail = r->fail && strcmp(r->heal_id, ev->id) != 0;
  pthread_mutex_unlock(&r->mu);
  __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
  if (fail) return 1;
  __atomic_add_fetch(&r->ok_calls, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static eb_handler handler(void) {
  eb_handler h;
  h.call = on_event;
  h.drop = NULL;
  return h;
}

static const char *PERSISTENT = "{\"persistent\":true}";

/* Publish `n` persistent events of `type`; the id of the last in `last_id` (if not NULL). */
static void publish_persistent(eb_client *c, const char *type, int n, char *last_id) {
  int i;
  for (i = 0; i < n; i++) {
    eb_publish_result res;
    char data[64];
    snprintf(data, sizeof data, "{\"n\":%d}", i);
    CHECK_OK(eb_publish(c, type, data, PERSISTENT, &res));
    CHECK(res.success);
    if (last_id != NULL) copy_str(last_id, 64, res.event_id);
  }
}

/* The number of dead letters of `type` for `group` (-1 on error); the JSON in `json` if given. */
static int dead_count(eb_client *c, const char *type, const char *group, char *json, size_t size) {
  char *out = NULL;
  int n = 0;
  const char *p;
  if (eb_dead_letters(c, type, group, 0, &out) != EB_OK || out == NULL) return -1;
  for (p = out; (p = strstr(p, "\"originalId\"")) != NULL; p++) n++;
  if (json != NULL) copy_str(json, size, out);
  eb_string_free(out);
  return n;
}

static int wait_dead(eb_client *c, const char *type, const char *group, int target) {
  long deadline = h_now_ms() + 30000;
  int n;
  while ((n = dead_count(c, type, group, NULL, 0)) != target && h_now_ms() < deadline) {
    h_sleep_ms(20);
  }
  return n;
}

/* ----------------------------------------------------------------------------------------- */

static void test_group_consumes_persistent_events(void) {
  char type[128], group[128], opts[256], last[64];
  durable_rec r;
  eb_client *c = h_connected_client();
  if (c == NULL) return;
  rec_init(&r);
  h_unique(type, sizeof type, "cdur.group");
  h_unique(group, sizeof group, "g");
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"%s\",\"consumer\":\"c1\"}}", group);
  CHECK_OK(eb_subscribe(c, type, opts, handler(), &r, NULL));
  publish_persistent(c, type, 20, last);
  CHECK(h_wait_at_least(&r.ok_calls, 20, 20000) == 20);
  h_sleep_ms(100); /* nothing more comes: each event once */
  CHECK(__atomic_load_n(&r.calls, __ATOMIC_SEQ_CST) == 20);
  pthread_mutex_lock(&r.mu);
  CHECK(strcmp(r.last_id, last) == 0);
  CHECK(r.had_stream_id);
  CHECK(strchr(r.last_stream_id, '-') != NULL);
  CHECK(strcmp(r.last_group, group) == 0);
  CHECK(r.last_attempt == 1);
  CHECK(r.json_has_delivery);
  CHECK(!r.had_pattern);
  pthread_mutex_unlock(&r.mu);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

static void test_json_array_of_types(void) {
  char t1[128], t2[128], target[300], group[128], opts[256];
  durable_rec r;
  eb_client *c = h_connected_client();
  if (c == NULL) return;
  rec_init(&r);
  h_unique(t1, sizeof t1, "cdur.list1");
  h_unique(t2, sizeof t2, "cdur.list2");
  h_unique(group, sizeof group, "g");
  snprintf(target, sizeof target, "[\"%s\",\"%s\"]", t1, t2);
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"%s\"}}", group);
  CHECK_OK(eb_subscribe(c, target, opts, handler(), &r, NULL));
  publish_persistent(c, t1, 3, NULL);
  publish_persistent(c, t2, 2, NULL);
  CHECK(h_wait_at_least(&r.ok_calls, 5, 20000) == 5);
  /* Without durable, a list of types is refused. */
  CHECK_STATUS(eb_subscribe(c, target, NULL, handler(), &r, NULL), EB_ERR_VALIDATION);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

static void test_dead_letters_listed_replayed_purged(void) {
  char type[128], group[128], opts[512], json[8192], first[64];
  durable_rec r;
  uint64_t n = 99;
  eb_client *c = h_connected_client();
  if (c == NULL) return;
  rec_init(&r);
  r.fail = 1;
  h_unique(type, sizeof type, "cdur.dead");
  h_unique(group, sizeof group, "g");
  snprintf(opts, sizeof opts,
           "{\"retryOnError\":false,\"durable\":{\"group\":\"%s\",\"maxDeliveries\":2,"
           "\"minIdleTime\":100,\"claimInterval\":100}}",
           group);
  CHECK_OK(eb_subscribe(c, type, opts, handler(), &r, NULL));
  publish_persistent(c, type, 1, first);
  publish_persistent(c, type, 1, NULL);
  CHECK(wait_dead(c, type, group, 2) == 2);
  CHECK(dead_count(c, type, group, json, sizeof json) == 2);
  CHECK(strstr(json, first) != NULL);
  CHECK(strstr(json, "\"deliveries\":2") != NULL);
  CHECK(strstr(json, "C handler returned 1") != NULL);
  CHECK(__atomic_load_n(&r.ok_calls, __ATOMIC_SEQ_CST) == 0);

  /* Replay the oldest after the "fix": the group gets it again and handles it. */
  pthread_mutex_lock(&r.mu);
  copy_str(r.heal_id, sizeof r.heal_id, first);
  pthread_mutex_unlock(&r.mu);
  CHECK_OK(eb_replay_dead_letters(c, type, group, 1, &n));
  CHECK(n == 1);
  CHECK(h_wait_at_least(&r.ok_calls, 1, 20000) == 1);
  CHECK(dead_count(c, type, group, json, sizeof json) == 1);
  CHECK(strstr(json, first) == NULL);
  CHECK_OK(eb_purge_dead_letters(c, type, group, &n));
  CHECK(n == 1);
  CHECK(dead_count(c, type, group, NULL, 0) == 0);
  CHECK_OK(eb_replay_dead_letters(c, type, group, 0, &n));
  CHECK(n == 0);

  /* Bad arguments. */
  CHECK_STATUS(eb_dead_letters(c, type, group, 0, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_dead_letters(c, NULL, group, 0, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_purge_dead_letters(NULL, type, group, &n), EB_ERR_INVALID_ARGUMENT);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

static void test_bracket_glob_stays_a_pattern(void) {
  char base[128], pattern[160], channel[160], opts[256];
  durable_rec r;
  eb_client *c = h_connected_client();
  if (c == NULL) return;
  rec_init(&r);
  h_unique(base, sizeof base, "cdur");
  snprintf(pattern, sizeof pattern, "[ab]%s*", base);
  snprintf(channel, sizeof channel, "b%s.x", base);
  CHECK_OK(eb_subscribe(c, pattern, NULL, handler(), &r, NULL));
  CHECK_OK(eb_publish(c, channel, "{\"n\":1}", NULL, NULL));
  CHECK(h_wait_at_least(&r.ok_calls, 1, 10000) == 1);
  pthread_mutex_lock(&r.mu);
  CHECK(r.had_pattern);
  CHECK(!r.had_stream_id);
  CHECK(r.last_attempt == 0);
  CHECK(r.last_group[0] == '\0');
  CHECK(!r.json_has_delivery);
  pthread_mutex_unlock(&r.mu);
  /* A glob with durable is refused: a stream is a key, not a channel pattern. */
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"g\"}}");
  CHECK_STATUS(eb_subscribe(c, "[ab]*", opts, handler(), &r, NULL), EB_ERR_VALIDATION);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

int main(void) {
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  RUN(test_group_consumes_persistent_events);
  RUN(test_json_array_of_types);
  RUN(test_dead_letters_listed_replayed_purged);
  RUN(test_bracket_glob_stays_a_pattern);
  CHECK_OK(eb_shutdown());
  return h_summary();
}
