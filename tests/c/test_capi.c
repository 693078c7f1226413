/*
 * Tests of the C API against a real Redis (REDIS_URL or 127.0.0.1:6379), every channel unique
 * to the run. Built with -Wall -Wextra -Werror as C and as C++, run under valgrind by
 * scripts/test-c.sh. Ends with "N passed, M failed".
 */
#include <pthread.h>

#include "harness.h"

/* ----------------------------------------------------------------------------------------- */
/* A handler context that records what it saw. */

typedef struct recorder {
  pthread_mutex_t mu;
  int calls;        /* handler calls (attempts) */
  int drops;        /* drop(ctx) calls */
  int fail_first;   /* return failure for the first N calls */
  int slow_first_ms; /* the first call sleeps this long */
  int overlap;      /* set if two calls of one subscription ran at once */
  int running;
  char last_id[64];
  char last_type[128];
  char last_data[512];
  char last_channel[256];
  char last_pattern[256];
  int had_pattern;
  int json_ok;
  int meta_ok;
  /* re-entrancy test */
  eb_client *client;
  char self_id[64];
  char forward_type[128];
  int forward_status;
  int unsub_status;
  int disconnect_status;
} recorder;

static void rec_init(recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  r->forward_status = 1;
  r->unsub_status = 1;
  r->disconnect_status = 1;
}

static void rec_destroy(recorder *r) { pthread_mutex_destroy(&r->mu); }

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src != NULL ? src : "");
}

static int on_event(const eb_event *ev, void *ctx) {
  recorder *r = (recorder *)ctx;
  if (__atomic_fetch_add(&r->running, 1, __ATOMIC_SEQ_CST) != 0) r->overlap = 1;
  pthread_mutex_lock(&r->mu);
  copy_str(r->last_id, sizeof r->last_id, ev->id);
  copy_str(r->last_type, sizeof r->last_type, ev->type);
  copy_str(r->last_data, sizeof r->last_data, ev->data_json);
  copy_str(r->last_channel, sizeof r->last_channel, ev->channel);
  r->had_pattern = ev->pattern != NULL;
  copy_str(r->last_pattern, sizeof r->last_pattern, ev->pattern);
  r->json_ok = ev->json != NULL && strstr(ev->json, "\"channel\":") != NULL &&
               strstr(ev->json, ev->id) != NULL;
  r->meta_ok = ev->metadata_json != NULL && strstr(ev->metadata_json, "\"source\":\"c-tests\"");
  pthread_mutex_unlock(&r->mu);
  int n = __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
  h_sleep_ms(n == 1 && r->slow_first_ms > 0 ? r->slow_first_ms : 1);
  __atomic_fetch_sub(&r->running, 1, __ATOMIC_SEQ_CST);
  return n <= r->fail_first ? 1 : 0;
}

static void on_drop(void *ctx) {
  recorder *r = (recorder *)ctx;
  __atomic_fetch_add(&r->drops, 1, __ATOMIC_SEQ_CST);
}

static eb_handler rec_handler(void) {
  eb_handler h;
  h.call = on_event;
  h.drop = on_drop;
  return h;
}

/* ----------------------------------------------------------------------------------------- */

static void test_lifecycle(void) {
  eb_client *c = NULL;
  bool up = true;
  char *json = NULL;
  CHECK_OK(eb_client_new(h_config(), &c));
  CHECK(c != NULL);
  CHECK_OK(eb_is_connected(c, &up));
  CHECK(!up);
  CHECK_OK(eb_connect(c));
  CHECK_OK(eb_connect(c)); /* second connect is a no-op */
  CHECK_OK(eb_is_connected(c, &up));
  CHECK(up);
  CHECK_OK(eb_health_check(c, &json));
  CHECK(json != NULL && strstr(json, "\"status\":\"healthy\"") != NULL);
  eb_string_free(json);
  json = NULL;
  CHECK_OK(eb_get_stats(c, &json));
  CHECK(json != NULL && strstr(json, "\"eventsPublished\":0") != NULL);
  eb_string_free(json);
  CHECK_OK(eb_disconnect(c));
  CHECK_OK(eb_disconnect(c)); /* idempotent */
  CHECK_OK(eb_is_connected(c, &up));
  CHECK(!up);
  CHECK_OK(eb_connect(c)); /* reconnect after disconnect */
  CHECK_OK(eb_client_free(c));
  CHECK(strlen(eb_version()) > 0);
}

static void test_publish(void) {
  eb_client *c = h_connected_client();
  char type[128], room[128], user[128];
  eb_publish_result res;
  char *results = NULL;
  char batch[1024];
  recorder rr;
  rec_init(&rr);
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.pub");
  h_unique(room, sizeof room, "room");
  h_unique(user, sizeof user, "user");

  memset(&res, 0x7f, sizeof res);
  CHECK_OK(eb_publish(c, type, "{\"photoId\":\"p1\",\"n\":[1,2,3]}", NULL, &res));
  CHECK(res.success);
  CHECK(res.status == EB_OK);
  CHECK(strlen(res.event_id) == 36);
  CHECK(strlen(res.published_at) == 24 && res.published_at[23] == 'Z');
  CHECK(res.delivered_to == 0); /* unique channel: nobody listens */
  CHECK_OK(eb_publish(c, type, "\"text\"", "{\"traceId\":\"t-1\",\"correlationId\":\"c-1\"}", NULL));

  /* room, user and broadcast channels, seen by a subscriber on each channel */
  {
    char room_ch[160], user_ch[160];
    snprintf(room_ch, sizeof room_ch, "room:%s", room);
    snprintf(user_ch, sizeof user_ch, "user:%s", user);
    CHECK_OK(eb_subscribe(c, room_ch, NULL, rec_handler(), &rr, NULL));
    CHECK_OK(eb_publish_to_room(c, room, type, "{\"a\":1}", NULL, &res));
    CHECK(res.success && res.delivered_to >= 1);
    CHECK(h_wait_at_least(&rr.calls, 1, 10000) == 1);
    pthread_mutex_lock(&rr.mu);
    CHECK(strcmp(rr.last_channel, room_ch) == 0);
    CHECK(strcmp(rr.last_data, "{\"a\":1}") == 0);
    CHECK(strcmp(rr.last_id, res.event_id) == 0);
    CHECK(!rr.had_pattern);
    pthread_mutex_unlock(&rr.mu);
    CHECK_OK(eb_subscribe(c, user_ch, NULL, rec_handler(), &rr, NULL));
    CHECK_OK(eb_publish_to_user(c, user, type, "{\"b\":2}", NULL, &res));
    CHECK(res.success && res.delivered_to >= 1);
    CHECK(h_wait_at_least(&rr.calls, 2, 10000) == 2);
    pthread_mutex_lock(&rr.mu);
    CHECK(strcmp(rr.last_channel, user_ch) == 0);
    pthread_mutex_unlock(&rr.mu);
    /* broadcast goes to the shared "broadcast" channel: only check it was accepted */
    CHECK_OK(eb_broadcast(c, type, "{\"c\":3}", NULL, &res));
    CHECK(res.success);
  }

  /* a batch: two good items and one invalid type, results in order */
  snprintf(batch, sizeof batch,
           "[{\"type\":\"%s\",\"data\":{\"i\":1}},{\"type\":\"bad type!\",\"data\":1},"
           "{\"type\":\"%s\",\"data\":[2],\"options\":{\"room\":\"%s\"}}]",
           type, type, room);
  CHECK_STATUS(eb_publish_batch(c, batch, &results), EB_ERR_VALIDATION);
  CHECK(results != NULL);
  if (results != NULL) {
    const char *first = strstr(results, "\"success\":true");
    const char *second = first ? strstr(first + 1, "\"success\":false") : NULL;
    const char *third = second ? strstr(second + 1, "\"success\":true") : NULL;
    CHECK(first != NULL && second != NULL && third != NULL);
    CHECK(strstr(results, "VALIDATION_ERROR") != NULL);
  }
  eb_string_free(results);
  CHECK(h_wait_at_least(&rr.calls, 3, 10000) == 3); /* the room item of the batch */

  /* validation failures fill the result too */
  CHECK_STATUS(eb_publish(c, "bad type!", "1", NULL, &res), EB_ERR_VALIDATION);
  CHECK(!res.success && res.status == EB_ERR_VALIDATION);
  CHECK(strlen(res.event_id) == 36);
  CHECK_STATUS(eb_publish(c, type, "null", NULL, &res), EB_ERR_VALIDATION);

  CHECK_OK(eb_client_free(c));
  CHECK(rr.drops == 2); /* both subscriptions released by free */
  rec_destroy(&rr);
}

static void test_subscribe_callback_ctx(void) {
  eb_client *c = h_connected_client();
  char base[128], pattern[160], type[200];
  char *sub_id = NULL;
  recorder r;
  int i;
  rec_init(&r);
  if (c == NULL) return;
  h_unique(base, sizeof base, "ctest.sub");
  snprintf(pattern, sizeof pattern, "%s.*", base);
  snprintf(type, sizeof type, "%s.created", base);
  CHECK_OK(eb_subscribe(c, pattern, "{\"timeout\":5000}", rec_handler(), &r, &sub_id));
  CHECK(sub_id != NULL && strlen(sub_id) == 36);
  for (i = 0; i < 3; i++) {
    char data[64];
    snprintf(data, sizeof data, "{\"seq\":%d,\"text\":\"h\\u00e9llo \\u2713\"}", i);
    CHECK_OK(eb_publish(c, type, data, NULL, NULL));
  }
  CHECK(h_wait_at_least(&r.calls, 3, 10000) == 3);
  pthread_mutex_lock(&r.mu);
  CHECK(strcmp(r.last_type, type) == 0);
  CHECK(strcmp(r.last_channel, type) == 0);
  CHECK(r.had_pattern && strcmp(r.last_pattern, pattern) == 0);
  CHECK(strstr(r.last_data, "\"seq\":2") != NULL); /* in order: the last one is seq 2 */
  CHECK(r.json_ok);
  CHECK(r.meta_ok);
  CHECK(!r.overlap);
  pthread_mutex_unlock(&r.mu);
  {
    char *stats = NULL;
    CHECK_OK(eb_get_stats(c, &stats));
    CHECK(stats != NULL && strstr(stats, "\"activeSubscriptions\":1") != NULL);
    eb_string_free(stats);
  }
  CHECK_OK(eb_unsubscribe(c, sub_id));
  eb_string_free(sub_id);
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1);
  rec_destroy(&r);
}

/* eb_metrics: Prometheus text with the subscription's series, counts that follow the events,
 * and a bad argument refused. */
static void test_metrics(void) {
  eb_client *c = h_connected_client();
  char type[128], line[512];
  char *sub_id = NULL, *text = NULL;
  recorder r;
  rec_init(&r);
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.metrics");
  CHECK_OK(eb_subscribe(c, type, NULL, rec_handler(), &r, &sub_id));
  CHECK_OK(eb_publish(c, type, "1", NULL, NULL));
  CHECK_OK(eb_publish(c, type, "2", NULL, NULL));
  CHECK(h_wait_at_least(&r.calls, 2, 10000) == 2);
  /* the delivered counter is bumped once the handler returned: wait for it */
  {
    int tries;
    snprintf(line, sizeof line,
             "eventbus_subscription_delivered_total{service=\"c-tests\",transport=\"single\","
             "subscription=\"%s\",pattern=\"%s\"} 2\n",
             sub_id, type);
    for (tries = 0; tries < 500; tries++) {
      CHECK_OK(eb_metrics(c, &text));
      if (text != NULL && strstr(text, line) != NULL) break;
      eb_string_free(text);
      text = NULL;
      h_sleep_ms(10);
    }
  }
  CHECK(text != NULL && strstr(text, line) != NULL);
  CHECK(text != NULL && strstr(text, "# TYPE eventbus_publish_duration_seconds histogram\n") != NULL);
  CHECK(text != NULL &&
        strstr(text, "eventbus_publish_duration_seconds_bucket{service=\"c-tests\",transport=\"single\",le=\"+Inf\"} 2\n") != NULL);
  snprintf(line, sizeof line,
           "eventbus_handler_duration_seconds_count{service=\"c-tests\",transport=\"single\","
           "subscription=\"%s\",pattern=\"%s\"} 2\n",
           sub_id, type);
  CHECK(text != NULL && strstr(text, line) != NULL);
  eb_string_free(text);
  text = NULL;
  CHECK_STATUS(eb_metrics(c, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_metrics(NULL, &text), EB_ERR_INVALID_ARGUMENT);
  CHECK(text == NULL);
  CHECK_OK(eb_unsubscribe(c, sub_id));
  eb_string_free(sub_id);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

static void test_unsubscribe_then_drop_once(void) {
  eb_client *c = h_connected_client();
  char type[128];
  char *sub_id = NULL;
  recorder r;
  rec_init(&r);
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.unsub");
  CHECK_OK(eb_subscribe(c, type, NULL, rec_handler(), &r, &sub_id));
  CHECK_OK(eb_publish(c, type, "1", NULL, NULL));
  CHECK(h_wait_at_least(&r.calls, 1, 10000) == 1);
  CHECK(r.drops == 0);
  CHECK_OK(eb_unsubscribe(c, sub_id));
  CHECK(h_wait_at_least(&r.drops, 1, 10000) == 1);
  CHECK_OK(eb_publish(c, type, "2", NULL, NULL));
  h_sleep_ms(200);
  CHECK(r.calls == 1); /* nothing after unsubscribe */
  CHECK_STATUS(eb_unsubscribe(c, sub_id), EB_ERR_NOT_FOUND);
  eb_string_free(sub_id);
  CHECK_OK(eb_disconnect(c));
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1); /* exactly once */
  rec_destroy(&r);
}

static void test_handler_failure_is_retried(void) {
  eb_client *c = h_connected_client();
  char type[128];
  char *stats = NULL;
  recorder r;
  rec_init(&r);
  r.fail_first = 2;
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.retry");
  CHECK_OK(eb_subscribe(c, type, "{\"retryOnError\":true,\"maxRetries\":3,\"retryDelay\":20}",
                        rec_handler(), &r, NULL));
  CHECK_OK(eb_publish(c, type, "{\"x\":1}", NULL, NULL));
  CHECK(h_wait_at_least(&r.calls, 3, 10000) == 3); /* 2 failures, then success */
  h_sleep_ms(200);
  CHECK(r.calls == 3);
  CHECK(!r.overlap);
  CHECK_OK(eb_get_stats(c, &stats));
  CHECK(stats != NULL && strstr(stats, "\"eventsDelivered\":1") != NULL);
  eb_string_free(stats);
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1);
  rec_destroy(&r);
}

/* A call that times out is retried, but the retry waits for the timed-out call to return:
 * calls of one subscription never overlap (concurrency 1). */
static void test_timeout_retry_does_not_overlap(void) {
  eb_client *c = h_connected_client();
  char type[128];
  recorder r;
  rec_init(&r);
  r.slow_first_ms = 400;
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.timeout");
  CHECK_OK(eb_subscribe(c, type,
                        "{\"timeout\":100,\"retryOnError\":true,\"maxRetries\":1,\"retryDelay\":10}",
                        rec_handler(), &r, NULL));
  CHECK_OK(eb_publish(c, type, "1", NULL, NULL));
  CHECK(h_wait_at_least(&r.calls, 2, 10000) == 2);
  h_sleep_ms(100);
  CHECK(r.calls == 2);
  CHECK(!r.overlap);
  {
    /* both calls returned after their timeouts: the first sleeps 400 ms past its 100 ms, and
       the retry (started 10 ms after that timeout) waits for the first to return before it
       runs, past its own 100 ms: two late completions in the stats */
    int waited;
    bool late = false;
    for (waited = 0; waited < 10000 && !late; waited += 20) {
      char *stats = NULL;
      CHECK_OK(eb_get_stats(c, &stats));
      late = stats != NULL && strstr(stats, "\"handlersLateCompleted\":2") != NULL;
      eb_string_free(stats);
      if (!late) h_sleep_ms(20);
    }
    CHECK(late);
  }
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1);
  rec_destroy(&r);
}

static void test_bad_arguments(void) {
  eb_client *c = NULL;
  eb_publish_result res;
  char *out = NULL;
  bool b = false;
  recorder r;
  eb_handler no_call;
  rec_init(&r);
  no_call.call = NULL;
  no_call.drop = on_drop;

  CHECK_STATUS(eb_client_new(NULL, &c), EB_ERR_INVALID_ARGUMENT);
  CHECK(c == NULL);
  CHECK_STATUS(eb_client_new(h_config(), NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_client_new("{not json", &c), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_client_new("{\"serviceName\":\"\xff\xfe\"}", &c), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_client_new("{\"redis\":{}}", &c), EB_ERR_CONFIG);
  CHECK(strstr(eb_last_error(), "serviceName is required") != NULL);
  CHECK(c == NULL);

  CHECK_STATUS(eb_connect(NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_disconnect(NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_is_connected(NULL, &b), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(NULL, "t", "1", NULL, &res), EB_ERR_INVALID_ARGUMENT);
  CHECK(!res.success && res.status == EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_health_check(NULL, &out), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_get_stats(NULL, &out), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_matches_pattern(NULL, "a", &b), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_matches_pattern("a", "a", NULL), EB_ERR_INVALID_ARGUMENT);

  CHECK_OK(eb_client_new(h_config(), &c));
  /* before connect */
  CHECK_STATUS(eb_publish(c, "ctest.x", "1", NULL, &res), EB_ERR_NOT_CONNECTED);
  CHECK(strstr(eb_last_error(), "Not connected to Event Bus") != NULL);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", NULL, rec_handler(), &r, NULL), EB_ERR_NOT_CONNECTED);
  CHECK(r.drops == 1); /* ctx is consumed even on failure */
  CHECK_OK(eb_connect(c));
  CHECK_STATUS(eb_is_connected(c, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, NULL, "1", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, "ctest.x", NULL, NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, "ctest.x", "{oops", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, "ctest.x", "1", "[1,", NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, "ctest.\xc3\x28", "1", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish(c, "ctest.x", "\"\xff\"", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish_to_room(c, NULL, "ctest.x", "1", NULL, NULL),
               EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish_to_user(c, NULL, "ctest.x", "1", NULL, NULL),
               EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_publish_batch(c, "{}", &out), EB_ERR_INVALID_ARGUMENT);
  CHECK(out == NULL);
  CHECK_STATUS(eb_publish_batch(c, "[]", NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", NULL, no_call, &r, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK(r.drops == 2);
  CHECK_STATUS(eb_subscribe(c, NULL, NULL, rec_handler(), &r, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK(r.drops == 3);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", "{\"concurrency\":\"many\"}", rec_handler(), &r, NULL),
               EB_ERR_VALIDATION);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", "{\"concurrency\":", rec_handler(), &r, NULL),
               EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", "{\"concurrency\":0}", rec_handler(), &r, NULL),
               EB_ERR_VALIDATION);
  CHECK_STATUS(eb_subscribe(c, "", NULL, rec_handler(), &r, NULL), EB_ERR_VALIDATION);
  CHECK(r.drops == 7);
  CHECK_STATUS(eb_unsubscribe(c, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_unsubscribe(c, "no-such-id"), EB_ERR_NOT_FOUND);
  CHECK_STATUS(eb_on_state(c, NULL, &r, on_drop, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK(r.drops == 8);
  CHECK_STATUS(eb_off_state(c, 987654), EB_ERR_NOT_FOUND);
  CHECK_STATUS(eb_health_check(c, NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_get_room_members(c, "r", NULL), EB_ERR_INVALID_ARGUMENT);
  /* rooms need the Socket.IO hub: the core's error comes through */
  CHECK_STATUS(eb_join_room(c, "lobby"), EB_ERR_CONNECTION);
  CHECK(strstr(eb_last_error(), "Socket.IO not connected") != NULL);
  CHECK_STATUS(eb_leave_room(c, "lobby"), EB_ERR_CONNECTION);
  CHECK_STATUS(eb_get_room_members(c, "lobby", &out), EB_ERR_CONNECTION);
  CHECK(out == NULL);
  CHECK_STATUS(eb_join_room(c, NULL), EB_ERR_INVALID_ARGUMENT);
  eb_string_free(NULL); /* harmless */
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

static void test_last_error_and_strerror(void) {
  CHECK_STATUS(eb_connect(NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "client is NULL") != NULL);
  CHECK_STATUS(eb_publish(NULL, "a", "1", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  {
    /* the message is per thread and stays until the next failure */
    bool m = false;
    CHECK_OK(eb_matches_pattern("a", "a", &m));
    CHECK(strstr(eb_last_error(), "client is NULL") != NULL);
  }
  CHECK(strcmp(eb_strerror(EB_OK), "EB_OK: success") == 0);
  CHECK(strncmp(eb_strerror(EB_ERR_INVALID_ARGUMENT), "EB_ERR_INVALID_ARGUMENT", 23) == 0);
  CHECK(strncmp(eb_strerror(EB_ERR_NOT_CONNECTED), "EB_ERR_NOT_CONNECTED", 20) == 0);
  CHECK(strncmp(eb_strerror(EB_ERR_PANIC), "EB_ERR_PANIC", 12) == 0);
  CHECK(strcmp(eb_strerror(-999), "unknown status") == 0);
  CHECK(strcmp(eb_strerror(42), "unknown status") == 0);
}

static int other_thread_clean = 0;

static void *other_thread_last_error(void *arg) {
  (void)arg;
  /* a fresh thread has no error yet, whatever the main thread did */
  other_thread_clean = strlen(eb_last_error()) == 0;
  return NULL;
}

static void test_last_error_is_per_thread(void) {
  pthread_t t;
  CHECK_STATUS(eb_connect(NULL), EB_ERR_INVALID_ARGUMENT);
  CHECK(pthread_create(&t, NULL, other_thread_last_error, NULL) == 0);
  pthread_join(t, NULL);
  CHECK(other_thread_clean);
  CHECK(strlen(eb_last_error()) > 0);
}

typedef struct log_capture {
  pthread_mutex_t mu;
  int lines;
  int saw_connected;
  int saw_level_info;
  int drops;
} log_capture;

static void on_log(eb_log_level level, const char *line, void *ctx) {
  log_capture *lc = (log_capture *)ctx;
  pthread_mutex_lock(&lc->mu);
  lc->lines++;
  if (strstr(line, "Successfully connected to Event Bus") != NULL &&
      strstr(line, "[c-tests-log]") != NULL) {
    lc->saw_connected = 1;
    if (level == EB_LOG_INFO && strstr(line, "[INFO ]") != NULL) lc->saw_level_info = 1;
  }
  pthread_mutex_unlock(&lc->mu);
}

static void on_log_drop(void *ctx) {
  log_capture *lc = (log_capture *)ctx;
  __atomic_fetch_add(&lc->drops, 1, __ATOMIC_SEQ_CST);
}

static void test_log_callback(void) {
  log_capture lc;
  eb_client *c = NULL;
  char cfg[600];
  const char *url = getenv("REDIS_URL");
  memset(&lc, 0, sizeof lc);
  pthread_mutex_init(&lc.mu, NULL);
  if (url == NULL || url[0] == '\0') url = "redis://127.0.0.1:6379";
  snprintf(cfg, sizeof cfg,
           "{\"serviceName\":\"c-tests-log\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"info\"}",
           url);
  CHECK_OK(eb_set_log_callback(on_log, &lc, on_log_drop));
  CHECK_OK(eb_client_new(cfg, &c));
  CHECK_OK(eb_connect(c));
  CHECK_OK(eb_client_free(c));
  pthread_mutex_lock(&lc.mu);
  CHECK(lc.lines >= 2);
  CHECK(lc.saw_connected);
  CHECK(lc.saw_level_info);
  pthread_mutex_unlock(&lc.mu);
  CHECK(lc.drops == 0);
  CHECK_OK(eb_set_log_callback(NULL, NULL, NULL)); /* back to stderr; releases ours */
  CHECK(lc.drops == 1);
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  pthread_mutex_destroy(&lc.mu);
}

typedef struct pub_job {
  eb_client *client;
  const char *type;
  int thread_no;
  int ok;
} pub_job;

#define PER_THREAD 25

static void *publisher(void *arg) {
  pub_job *job = (pub_job *)arg;
  int i;
  for (i = 0; i < PER_THREAD; i++) {
    char data[64];
    eb_publish_result res;
    snprintf(data, sizeof data, "{\"thread\":%d,\"i\":%d}", job->thread_no, i);
    if (eb_publish(job->client, job->type, data, NULL, &res) == EB_OK && res.success) job->ok++;
  }
  return NULL;
}

static void test_four_threads_publishing(void) {
  eb_client *c = h_connected_client();
  char type[128];
  pthread_t th[4];
  pub_job jobs[4];
  recorder r;
  int i, total = 0;
  rec_init(&r);
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.threads");
  CHECK_OK(eb_subscribe(c, type, NULL, rec_handler(), &r, NULL));
  for (i = 0; i < 4; i++) {
    jobs[i].client = c;
    jobs[i].type = type;
    jobs[i].thread_no = i;
    jobs[i].ok = 0;
    CHECK(pthread_create(&th[i], NULL, publisher, &jobs[i]) == 0);
  }
  for (i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    total += jobs[i].ok;
  }
  CHECK(total == 4 * PER_THREAD);
  CHECK(h_wait_at_least(&r.calls, 4 * PER_THREAD, 20000) == 4 * PER_THREAD);
  CHECK(!r.overlap);
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1);
  rec_destroy(&r);
}

static void test_use_after_free_refused(void) {
  eb_client *c = h_connected_client();
  eb_publish_result res;
  char *out = NULL;
  bool b = false;
  recorder r;
  rec_init(&r);
  if (c == NULL) return;
  CHECK_OK(eb_client_free(c));
  /* c is dangling now: every call must refuse it without touching it */
  CHECK_STATUS(eb_publish(c, "ctest.x", "1", NULL, &res), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "a freed eb_client") != NULL);
  CHECK_STATUS(eb_connect(c), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_disconnect(c), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_is_connected(c, &b), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_get_stats(c, &out), EB_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(eb_subscribe(c, "ctest.x", NULL, rec_handler(), &r, NULL),
               EB_ERR_INVALID_ARGUMENT);
  CHECK(r.drops == 1);
  /* a pointer that never was a client */
  CHECK_STATUS(eb_connect((eb_client *)&r), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "not an eb_client") != NULL);
  rec_destroy(&r);
}

/* Handles are never reused: a freed handle stays refused after new clients are created (an
   allocator would hand a freed address straight back), and the new ones are not confused with
   it. */
static void test_stale_handle_refused_after_reuse(void) {
  eb_client *old = NULL;
  eb_client *fresh[8] = {NULL};
  bool b = true;
  int i;
  CHECK_OK(eb_client_new(h_config(), &old));
  CHECK_OK(eb_client_free(old));
  for (i = 0; i < 8; i++) {
    CHECK_OK(eb_client_new(h_config(), &fresh[i]));
    CHECK(fresh[i] != old);
  }
  CHECK_STATUS(eb_is_connected(old, &b), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "a freed eb_client") != NULL);
  CHECK_STATUS(eb_client_free(old), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "double free") != NULL);
  for (i = 0; i < 8; i++) {
    CHECK_OK(eb_is_connected(fresh[i], &b));
    CHECK(b == false);
    CHECK_OK(eb_client_free(fresh[i]));
    CHECK_STATUS(eb_client_free(fresh[i]), EB_ERR_INVALID_ARGUMENT);
  }
}

static void test_double_free_harmless(void) {
  eb_client *c = NULL;
  CHECK_OK(eb_client_new(h_config(), &c));
  CHECK_OK(eb_client_free(c));
  CHECK_STATUS(eb_client_free(c), EB_ERR_INVALID_ARGUMENT);
  CHECK(strstr(eb_last_error(), "double free") != NULL);
  CHECK_OK(eb_client_free(NULL));
}

/* A handler that publishes, tries to disconnect (refused) and unsubscribes itself. */
static int reentrant_handler(const eb_event *ev, void *ctx) {
  recorder *r = (recorder *)ctx;
  (void)ev;
  r->forward_status = eb_publish(r->client, r->forward_type, "{\"from\":\"handler\"}", NULL, NULL);
  r->disconnect_status = eb_disconnect(r->client);
  r->unsub_status = eb_unsubscribe(r->client, r->self_id);
  __atomic_fetch_add(&r->calls, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static void test_publish_and_unsubscribe_inside_handler(void) {
  eb_client *c = h_connected_client();
  char type[128];
  char *sub_id = NULL;
  recorder r, fwd;
  eb_handler h;
  rec_init(&r);
  rec_init(&fwd);
  if (c == NULL) return;
  h.call = reentrant_handler;
  h.drop = on_drop;
  h_unique(type, sizeof type, "ctest.reenter");
  h_unique(r.forward_type, sizeof r.forward_type, "ctest.forwarded");
  r.client = c;
  CHECK_OK(eb_subscribe(c, r.forward_type, NULL, rec_handler(), &fwd, NULL));
  CHECK_OK(eb_subscribe(c, type, NULL, h, &r, &sub_id));
  copy_str(r.self_id, sizeof r.self_id, sub_id);
  eb_string_free(sub_id);
  CHECK_OK(eb_publish(c, type, "1", NULL, NULL));
  CHECK(h_wait_at_least(&r.calls, 1, 10000) == 1);
  CHECK(h_wait_at_least(&fwd.calls, 1, 10000) == 1);
  CHECK(r.forward_status == EB_OK);
  CHECK(r.disconnect_status == EB_ERR_INVALID_ARGUMENT);
  CHECK(r.unsub_status == EB_OK);
  CHECK(h_wait_at_least(&r.drops, 1, 10000) == 1);
  CHECK_OK(eb_publish(c, type, "2", NULL, NULL));
  h_sleep_ms(200);
  CHECK(r.calls == 1);
  pthread_mutex_lock(&fwd.mu);
  CHECK(strstr(fwd.last_data, "handler") != NULL);
  pthread_mutex_unlock(&fwd.mu);
  CHECK_OK(eb_client_free(c));
  CHECK(r.drops == 1 && fwd.drops == 1);
  rec_destroy(&r);
  rec_destroy(&fwd);
}

typedef struct state_capture {
  int connected;
  int drops;
  int json_ok;
} state_capture;

static void on_state(const char *state, const char *event_json, void *ctx) {
  state_capture *s = (state_capture *)ctx;
  if (strcmp(state, "connected") == 0) {
    if (strstr(event_json, "\"type\":\"connected\"") != NULL) s->json_ok = 1;
    __atomic_fetch_add(&s->connected, 1, __ATOMIC_SEQ_CST);
  }
}

static void on_state_drop(void *ctx) {
  state_capture *s = (state_capture *)ctx;
  __atomic_fetch_add(&s->drops, 1, __ATOMIC_SEQ_CST);
}

static void test_state_callback(void) {
  eb_client *c = NULL;
  state_capture s1, s2;
  uint64_t id1 = 0, id2 = 0;
  memset(&s1, 0, sizeof s1);
  memset(&s2, 0, sizeof s2);
  CHECK_OK(eb_client_new(h_config(), &c));
  CHECK_OK(eb_on_state(c, on_state, &s1, on_state_drop, &id1));
  CHECK_OK(eb_on_state(c, on_state, &s2, on_state_drop, &id2));
  CHECK(id1 != id2);
  CHECK_OK(eb_connect(c));
  CHECK(h_wait_at_least(&s1.connected, 2, 10000) >= 2); /* publisher + subscriber */
  CHECK(s1.json_ok);
  CHECK_OK(eb_off_state(c, id1));
  CHECK(s1.drops == 1);
  CHECK_STATUS(eb_off_state(c, id1), EB_ERR_NOT_FOUND);
  CHECK_OK(eb_client_free(c));
  CHECK(s2.drops == 1); /* released by free */
  CHECK(s1.drops == 1);
}

static void test_matches_pattern(void) {
  bool m = false;
  CHECK_OK(eb_matches_pattern("photo.*", "photo.processing.started", &m));
  CHECK(m);
  CHECK_OK(eb_matches_pattern("photo.?", "photo.ab", &m));
  CHECK(!m);
  CHECK_OK(eb_matches_pattern("h[^e]llo", "hallo", &m));
  CHECK(m);
  CHECK_OK(eb_matches_pattern("a\\*b", "a*b", &m));
  CHECK(m);
}

static void test_shutdown_frees_live_clients(void) {
  eb_client *c = h_connected_client();
  recorder r;
  char type[128];
  rec_init(&r);
  if (c == NULL) return;
  h_unique(type, sizeof type, "ctest.shutdown");
  CHECK_OK(eb_subscribe(c, type, NULL, rec_handler(), &r, NULL));
  CHECK_OK(eb_shutdown()); /* frees c and its subscription, and the log callback */
  CHECK(r.drops == 1);
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  CHECK_STATUS(eb_publish(c, type, "1", NULL, NULL), EB_ERR_INVALID_ARGUMENT);
  /* the library starts again lazily */
  c = h_connected_client();
  CHECK(c != NULL);
  CHECK_OK(eb_client_free(c));
  rec_destroy(&r);
}

int main(void) {
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  RUN(test_lifecycle);
  RUN(test_publish);
  RUN(test_subscribe_callback_ctx);
  RUN(test_metrics);
  RUN(test_unsubscribe_then_drop_once);
  RUN(test_handler_failure_is_retried);
  RUN(test_timeout_retry_does_not_overlap);
  RUN(test_bad_arguments);
  RUN(test_last_error_and_strerror);
  RUN(test_last_error_is_per_thread);
  RUN(test_log_callback);
  RUN(test_four_threads_publishing);
  RUN(test_use_after_free_refused);
  RUN(test_double_free_harmless);
  RUN(test_stale_handle_refused_after_reuse);
  RUN(test_publish_and_unsubscribe_inside_handler);
  RUN(test_state_callback);
  RUN(test_matches_pattern);
  RUN(test_shutdown_frees_live_clients);
  /* leave nothing behind for valgrind: threads stopped, every client freed */
  CHECK_OK(eb_shutdown());
  return h_summary();
}
