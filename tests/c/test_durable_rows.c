/*
 * Durable delivery rows through the C API, against real Redis: a member away while 500
 * persistent events are published gets all 500 once each; two groups each get every event; a
 * plain subscriber still gets persistent events live; a member SIGKILLed mid-work (a child
 * process: this program re-executed as `member`) has its pending entries finished by another
 * member and XPENDING ends at 0; Redis SIGKILLed and restarted with AOF (a private
 * redis-server, `--appendonly yes --appendfsync always`) delivers every acknowledged persistent
 * publish; maxLen and ttl trim the stream and entries trimmed before the group read them are
 * counted (`eventsTrimmedUnread`) and reported (an `error` state event, code EVENTS_TRIMMED).
 *
 * The shared rows use REDIS_URL or 127.0.0.1:6379 (event types unique to the run, their
 * streams deleted at the end); XLEN / XPENDING / DEL go through redis-cli. Built and run by
 * scripts/test-c.sh; needs redis-server and redis-cli on PATH.
 *
 *   test_durable_rows                               # the tests
 *   test_durable_rows member <url> <type> <group>   # the child of the SIGKILL row
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "harness.h"

extern char **environ;

static const char *self_path; /* argv[0]: the member child is this program */

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* ---- ids seen: a growing list of event ids with how often each came ---------------------- */

typedef struct id_count {
  char id[40];
  int n;
} id_count;

typedef struct seen_set {
  pthread_mutex_t mu;
  id_count *items;
  int len, cap;
  int calls;    /* handler calls (atomic) */
  int distinct; /* distinct ids (atomic) */
  int attempt_max_of_first; /* for the SIGKILL row: attempt of `watch` when it came */
  char watch[40];
} seen_set;

static void seen_init(seen_set *s) {
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
}

static void seen_destroy(seen_set *s) {
  free(s->items);
  pthread_mutex_destroy(&s->mu);
}

/* Counts `id`; returns its count after. Caller holds s->mu. */
static int seen_add_locked(seen_set *s, const char *id) {
  int i;
  for (i = 0; i < s->len; i++) {
    if (strcmp(s->items[i].id, id) == 0) return ++s->items[i].n;
  }
  if (s->len == s->cap) {
    int cap = s->cap == 0 ? 256 : s->cap * 2;
    id_count *items = (id_count *)realloc(s->items, (size_t)cap * sizeof *items);
    if (items == NULL) return -1;
    s->items = items;
    s->cap = cap;
  }
  copy_str(s->items[s->len].id, sizeof s->items[s->len].id, id);
  s->items[s->len].n = 1;
  s->len++;
  __atomic_add_fetch(&s->distinct, 1, __ATOMIC_SEQ_CST);
  return 1;
}

static int seen_count(seen_set *s, const char *id) {
  int i, n = 0;
  pthread_mutex_lock(&s->mu);
  for (i = 0; i < s->len; i++) {
    if (strcmp(s->items[i].id, id) == 0) {
      n = s->items[i].n;
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

static int on_seen(const eb_event *ev, void *ctx) {
  seen_set *s = (seen_set *)ctx;
  pthread_mutex_lock(&s->mu);
  seen_add_locked(s, ev->id);
  if (s->watch[0] != '\0' && strcmp(s->watch, ev->id) == 0) {
    s->attempt_max_of_first = (int)ev->attempt;
  }
  pthread_mutex_unlock(&s->mu);
  __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static eb_handler seen_handler(void) {
  eb_handler h;
  h.call = on_seen;
  h.drop = NULL;
  return h;
}

/* ---- publishing ---------------------------------------------------------------------------- */

/* Publishes `n` persistent events of `type`; their ids into ids[0..n) (if not NULL). Returns
 * how many were acknowledged. */
static int publish_persistent(eb_client *c, const char *type, int n, const char *opts,
                              char (*ids)[40]) {
  int i, ok = 0;
  for (i = 0; i < n; i++) {
    eb_publish_result res;
    char data[64];
    snprintf(data, sizeof data, "{\"n\":%d}", i);
    memset(&res, 0, sizeof res);
    CHECK_OK(eb_publish(c, type, data, opts != NULL ? opts : "{\"persistent\":true}", &res));
    CHECK(res.success);
    if (res.success) ok++;
    if (ids != NULL) copy_str(ids[i], sizeof ids[i], res.event_id);
  }
  return ok;
}

/* ---- redis-cli ------------------------------------------------------------------------------ */

/* Runs `redis-cli -u <url> <args>` and returns the integer of its first output line (the
 * reply of XLEN, DEL, or the first element of XPENDING's summary); -1 when there is none. */
static long redis_int(const char *url, const char *args) {
  char cmd[1024], line[256];
  FILE *p;
  long v = -1;
  snprintf(cmd, sizeof cmd, "redis-cli -u '%s' %s 2>/dev/null", url, args);
  p = popen(cmd, "r");
  if (p == NULL) return -1;
  if (fgets(line, sizeof line, p) != NULL) {
    char *end = NULL;
    long x = strtol(line, &end, 10);
    if (end != line) v = x;
  }
  while (fgets(line, sizeof line, p) != NULL) {
  }
  pclose(p);
  return v;
}

static long xlen(const char *url, const char *type) {
  char args[512];
  snprintf(args, sizeof args, "XLEN 'events:{%s}'", type);
  return redis_int(url, args);
}

static long xpending(const char *url, const char *type, const char *group) {
  char args[512];
  snprintf(args, sizeof args, "XPENDING 'events:{%s}' '%s'", type, group);
  return redis_int(url, args);
}

static void drop_streams(const char *url, const char *type) {
  char args[512];
  snprintf(args, sizeof args, "DEL 'events:{%s}' 'events:{%s}:dead'", type, type);
  redis_int(url, args);
}

static long wait_pending(const char *url, const char *type, const char *group, long target,
                         long timeout_ms) {
  long deadline = h_now_ms() + timeout_ms, v;
  while ((v = xpending(url, type, group)) != target && h_now_ms() < deadline) h_sleep_ms(50);
  return v;
}

/* A stats field (an integer) of the client; -1 if absent. */
static long stat_of(eb_client *c, const char *field) {
  char *json = NULL, key[128];
  const char *p;
  long v = -1;
  if (eb_get_stats(c, &json) != EB_OK || json == NULL) return -1;
  snprintf(key, sizeof key, "\"%s\":", field);
  p = strstr(json, key);
  if (p != NULL) v = strtol(p + strlen(key), NULL, 10);
  eb_string_free(json);
  return v;
}

static eb_client *client_for(const char *url, const char *extra) {
  char cfg[1024];
  eb_client *c = NULL;
  snprintf(cfg, sizeof cfg,
           "{\"serviceName\":\"c-durable-rows\",\"logLevel\":\"error\",\"redis\":{\"url\":\"%s\","
           "\"reconnectDelay\":50,\"reconnectDelayMax\":200}%s%s}",
           url, extra != NULL ? "," : "", extra != NULL ? extra : "");
  CHECK_OK(eb_client_new(cfg, &c));
  if (c == NULL) return NULL;
  CHECK_OK(eb_connect(c));
  return c;
}

/* ---- a private redis-server ----------------------------------------------------------------- */

typedef struct private_redis {
  pid_t pid;
  int port;
  char dir[128];
  char url[64];
} private_redis;

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int port = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

static int redis_start(private_redis *r) {
  char port[16];
  char *args[16];
  long deadline;
  posix_spawn_file_actions_t fa;
  int rc;
  snprintf(port, sizeof port, "%d", r->port);
  args[0] = (char *)"redis-server";
  args[1] = (char *)"--port";
  args[2] = port;
  args[3] = (char *)"--bind";
  args[4] = (char *)"127.0.0.1";
  args[5] = (char *)"--save";
  args[6] = (char *)"";
  args[7] = (char *)"--appendonly";
  args[8] = (char *)"yes";
  args[9] = (char *)"--appendfsync";
  args[10] = (char *)"always";
  args[11] = (char *)"--dir";
  args[12] = r->dir;
  args[13] = NULL;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  rc = posix_spawnp(&r->pid, "redis-server", &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r->pid = 0;
    return -1;
  }
  deadline = h_now_ms() + 20000;
  while (h_now_ms() < deadline) {
    char args[32];
    snprintf(args, sizeof args, "DBSIZE");
    if (redis_int(r->url, args) >= 0) return 0;
    h_sleep_ms(50);
  }
  return -1;
}

static void redis_kill(private_redis *r) {
  if (r->pid > 0) {
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
}

/* Starts a private redis-server with AOF (appendfsync always) in its own directory. */
static int redis_private(private_redis *r) {
  memset(r, 0, sizeof *r);
  copy_str(r->dir, sizeof r->dir, "/tmp/eb-c-aof-XXXXXX");
  if (mkdtemp(r->dir) == NULL) return -1;
  r->port = free_port();
  snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
  return r->port > 0 ? redis_start(r) : -1;
}

static void redis_private_stop(private_redis *r) {
  char cmd[256];
  redis_kill(r);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
  if (system(cmd) != 0) fprintf(stderr, "    could not remove %s\n", r->dir);
}

/* ----------------------------------------------------------------------------------------- */

static void test_member_away_gets_all_500_once(void) {
  static char ids[500][40];
  char type[128], group[128], opts[256];
  const char *url = h_redis_url();
  seen_set s;
  char *sub_id = NULL;
  eb_client *pub, *back;
  int i;
  if ((pub = h_connected_client()) == NULL) return;
  seen_init(&s);
  h_unique(type, sizeof type, "cdur.away");
  h_unique(group, sizeof group, "g");
  snprintf(opts, sizeof opts,
           "{\"durable\":{\"group\":\"%s\",\"consumer\":\"m1\",\"count\":50}}", group);
  /* The member joins (the group is created), then goes away. */
  CHECK_OK(eb_subscribe(pub, type, opts, seen_handler(), &s, &sub_id));
  CHECK(sub_id != NULL);
  if (sub_id != NULL) CHECK_OK(eb_unsubscribe(pub, sub_id));
  eb_string_free(sub_id);
  CHECK(publish_persistent(pub, type, 500, NULL, ids) == 500);
  CHECK(xlen(url, type) == 500);
  CHECK(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST) == 0);

  /* Back (another client, the same consumer name): all 500, each once. */
  if ((back = h_connected_client()) != NULL) {
    CHECK_OK(eb_subscribe(back, type, opts, seen_handler(), &s, NULL));
    CHECK(h_wait_at_least(&s.distinct, 500, 60000) == 500);
    CHECK(wait_pending(url, type, group, 0, 20000) == 0);
    CHECK_OK(eb_client_free(back));
  }
  CHECK(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST) == 500);
  for (i = 0; i < 500; i++) {
    if (seen_count(&s, ids[i]) != 1) {
      fprintf(stderr, "    event %d (%s) came %d times\n", i, ids[i], seen_count(&s, ids[i]));
      h_failed_checks++;
      break;
    }
  }
  CHECK(stat_of(pub, "persistentPublished") >= 500);
  CHECK_OK(eb_client_free(pub));
  drop_streams(url, type);
  seen_destroy(&s);
}

static void test_two_groups_each_get_every_event(void) {
  static char ids[100][40];
  char type[128], ga[128], gb[128], opts[256];
  seen_set a, b;
  eb_client *c;
  int i;
  if ((c = h_connected_client()) == NULL) return;
  seen_init(&a);
  seen_init(&b);
  h_unique(type, sizeof type, "cdur.groups");
  h_unique(ga, sizeof ga, "ga");
  h_unique(gb, sizeof gb, "gb");
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"%s\"}}", ga);
  CHECK_OK(eb_subscribe(c, type, opts, seen_handler(), &a, NULL));
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"%s\"}}", gb);
  CHECK_OK(eb_subscribe(c, type, opts, seen_handler(), &b, NULL));
  CHECK(publish_persistent(c, type, 100, NULL, ids) == 100);
  CHECK(h_wait_at_least(&a.distinct, 100, 30000) == 100);
  CHECK(h_wait_at_least(&b.distinct, 100, 30000) == 100);
  for (i = 0; i < 100; i++) {
    CHECK(seen_count(&a, ids[i]) >= 1);
    CHECK(seen_count(&b, ids[i]) >= 1);
  }
  CHECK(wait_pending(h_redis_url(), type, ga, 0, 20000) == 0);
  CHECK(wait_pending(h_redis_url(), type, gb, 0, 20000) == 0);
  CHECK_OK(eb_client_free(c));
  drop_streams(h_redis_url(), type);
  seen_destroy(&a);
  seen_destroy(&b);
}

typedef struct plain_rec {
  pthread_mutex_t mu;
  int calls;
  char id[40];
  int had_stream_id;
  int had_group;
  unsigned attempt;
  int json_has_delivery;
} plain_rec;

static int on_plain(const eb_event *ev, void *ctx) {
  plain_rec *r = (plain_rec *)ctx;
  pthread_mutex_lock(&r->mu);
  copy_str(r->id, sizeof r->id, ev->id);
  r->had_stream_id = ev->stream_id != NULL;
  r->had_group = ev->group != NULL;
  r->attempt = ev->attempt;
  r->json_has_delivery = strstr(ev->json, "\"delivery\":") != NULL;
  pthread_mutex_unlock(&r->mu);
  __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static void test_plain_subscriber_gets_persistent_events_live(void) {
  char type[128], group[128], opts[256], ids[1][40];
  plain_rec plain, durable;
  eb_handler h;
  eb_client *c;
  if ((c = h_connected_client()) == NULL) return;
  memset(&plain, 0, sizeof plain);
  memset(&durable, 0, sizeof durable);
  pthread_mutex_init(&plain.mu, NULL);
  pthread_mutex_init(&durable.mu, NULL);
  h.call = on_plain;
  h.drop = NULL;
  h_unique(type, sizeof type, "cdur.plain");
  h_unique(group, sizeof group, "g");
  snprintf(opts, sizeof opts, "{\"durable\":{\"group\":\"%s\"}}", group);
  CHECK_OK(eb_subscribe(c, type, NULL, h, &plain, NULL));
  CHECK_OK(eb_subscribe(c, type, opts, h, &durable, NULL));
  CHECK(publish_persistent(c, type, 1, NULL, ids) == 1);
  CHECK(h_wait_at_least(&plain.calls, 1, 10000) == 1);
  CHECK(h_wait_at_least(&durable.calls, 1, 10000) == 1);
  h_sleep_ms(100); /* nothing more comes */
  CHECK(__atomic_load_n(&plain.calls, __ATOMIC_SEQ_CST) == 1);
  CHECK(__atomic_load_n(&durable.calls, __ATOMIC_SEQ_CST) == 1);
  pthread_mutex_lock(&plain.mu);
  CHECK(strcmp(plain.id, ids[0]) == 0);
  CHECK(!plain.had_stream_id);
  CHECK(!plain.had_group);
  CHECK(plain.attempt == 0);
  CHECK(!plain.json_has_delivery);
  pthread_mutex_unlock(&plain.mu);
  pthread_mutex_lock(&durable.mu);
  CHECK(strcmp(durable.id, ids[0]) == 0);
  CHECK(durable.had_stream_id);
  CHECK(durable.had_group);
  CHECK(durable.attempt == 1);
  CHECK(durable.json_has_delivery);
  pthread_mutex_unlock(&durable.mu);
  CHECK_OK(eb_client_free(c));
  drop_streams(h_redis_url(), type);
  pthread_mutex_destroy(&plain.mu);
  pthread_mutex_destroy(&durable.mu);
}

/* The child of the SIGKILL row: a member whose handler never finishes (its entry stays
 * pending), consumer `victim`, minIdleTime long. Prints `ready`, then `got <id>` per call. */
static int on_stuck(const eb_event *ev, void *ctx) {
  (void)ctx;
  printf("got %s\n", ev->id);
  fflush(stdout);
  for (;;) pause();
  return 0;
}

static int member_main(const char *url, const char *type, const char *group) {
  char cfg[512], opts[512];
  eb_client *c = NULL;
  eb_handler h;
  snprintf(cfg, sizeof cfg,
           "{\"serviceName\":\"c-durable-member\",\"logLevel\":\"error\",\"redis\":{\"url\":\"%s\"}}",
           url);
  snprintf(opts, sizeof opts,
           "{\"timeout\":600000,\"durable\":{\"group\":\"%s\",\"consumer\":\"victim\","
           "\"minIdleTime\":60000}}",
           group);
  h.call = on_stuck;
  h.drop = NULL;
  if (eb_client_new(cfg, &c) != EB_OK || eb_connect(c) != EB_OK ||
      eb_subscribe(c, type, opts, h, NULL, NULL) != EB_OK) {
    fprintf(stderr, "member: %s\n", eb_last_error());
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
  return 0;
}

/* Reads one line from fd (up to size-1 bytes) within timeout_ms; 0 on success. */
static int read_line(int fd, char *buf, size_t size, long timeout_ms) {
  size_t n = 0;
  long deadline = h_now_ms() + timeout_ms;
  while (n + 1 < size && h_now_ms() < deadline) {
    char ch;
    ssize_t r = read(fd, &ch, 1);
    if (r == 1) {
      if (ch == '\n') {
        buf[n] = '\0';
        return 0;
      }
      buf[n++] = ch;
    } else if (r == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      h_sleep_ms(10);
    } else {
      break;
    }
  }
  buf[n] = '\0';
  return -1;
}

static void test_sigkilled_member_work_finished_by_another(void) {
  static char ids[20][40];
  char type[128], group[128], opts[512], line[256], got_id[40];
  const char *url = h_redis_url();
  int fds[2], status = 0, i;
  long reclaimed;
  pid_t child;
  seen_set s;
  eb_client *pub, *rescuer;
  h_unique(type, sizeof type, "cdur.kill");
  h_unique(group, sizeof group, "g");
  got_id[0] = '\0';
  if (pipe(fds) != 0) {
    CHECK(!"pipe");
    return;
  }
  {
    char *args[6];
    posix_spawn_file_actions_t fa;
    args[0] = (char *)self_path;
    args[1] = (char *)"member";
    args[2] = (char *)url;
    args[3] = type;
    args[4] = group;
    args[5] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    if (posix_spawn(&child, self_path, &fa, NULL, args, environ) != 0) child = 0;
    posix_spawn_file_actions_destroy(&fa);
  }
  close(fds[1]);
  CHECK(child > 0);
  if (child <= 0) {
    close(fds[0]);
    return;
  }
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  CHECK(read_line(fds[0], line, sizeof line, 30000) == 0 && strcmp(line, "ready") == 0);
  if ((pub = h_connected_client()) != NULL) {
    CHECK(publish_persistent(pub, type, 20, NULL, ids) == 20);
    CHECK_OK(eb_client_free(pub));
  }
  CHECK(read_line(fds[0], line, sizeof line, 30000) == 0 && strncmp(line, "got ", 4) == 0);
  copy_str(got_id, sizeof got_id, strncmp(line, "got ", 4) == 0 ? line + 4 : "");
  /* The victim holds its entries (count 10 read, one in its handler) pending. */
  {
    long deadline = h_now_ms() + 10000;
    while (xpending(url, type, group) < 1 && h_now_ms() < deadline) h_sleep_ms(50);
  }
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  close(fds[0]);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  CHECK(xpending(url, type, group) >= 1);

  seen_init(&s);
  copy_str(s.watch, sizeof s.watch, got_id);
  snprintf(opts, sizeof opts,
           "{\"durable\":{\"group\":\"%s\",\"consumer\":\"rescuer\",\"minIdleTime\":300,"
           "\"claimInterval\":100}}",
           group);
  if ((rescuer = h_connected_client()) != NULL) {
    CHECK_OK(eb_subscribe(rescuer, type, opts, seen_handler(), &s, NULL));
    CHECK(h_wait_at_least(&s.distinct, 20, 60000) == 20);
    CHECK(wait_pending(url, type, group, 0, 20000) == 0);
    reclaimed = stat_of(rescuer, "eventsReclaimed");
    CHECK(reclaimed >= 1);
    CHECK_OK(eb_client_free(rescuer));
  }
  for (i = 0; i < 20; i++) CHECK(seen_count(&s, ids[i]) >= 1);
  /* The entry the victim was working on came again: its second delivery at least. */
  CHECK(got_id[0] != '\0' && seen_count(&s, got_id) >= 1);
  pthread_mutex_lock(&s.mu);
  CHECK(s.attempt_max_of_first >= 2);
  pthread_mutex_unlock(&s.mu);
  drop_streams(url, type);
  seen_destroy(&s);
}

/* The AOF row: a publisher thread publishes persistent events while Redis is SIGKILLed and
 * restarted; every acknowledged one is delivered to the group afterwards. */
#define AOF_MAX 20000
typedef struct aof_pub {
  eb_client *c;
  const char *type;
  int stop;  /* atomic */
  int acked; /* atomic */
  int failed;
  char (*ids)[40];
} aof_pub;

static void *aof_publisher(void *arg) {
  aof_pub *p = (aof_pub *)arg;
  int n = 0;
  while (!__atomic_load_n(&p->stop, __ATOMIC_SEQ_CST)) {
    eb_publish_result res;
    char data[64];
    int acked = __atomic_load_n(&p->acked, __ATOMIC_SEQ_CST);
    if (acked >= AOF_MAX) break;
    snprintf(data, sizeof data, "{\"n\":%d}", n++);
    memset(&res, 0, sizeof res);
    if (eb_publish(p->c, p->type, data, "{\"persistent\":true}", &res) == EB_OK && res.success) {
      copy_str(p->ids[acked], sizeof p->ids[acked], res.event_id);
      __atomic_store_n(&p->acked, acked + 1, __ATOMIC_SEQ_CST);
    } else {
      p->failed++;
      h_sleep_ms(20);
    }
  }
  return NULL;
}

static void test_redis_killed_restarted_with_aof_loses_no_acked_publish(void) {
  char type[128], group[128], opts[256];
  private_redis r;
  seen_set s;
  aof_pub p;
  pthread_t th;
  eb_client *first = NULL, *back = NULL;
  char *sub_id = NULL;
  int i, missing = 0, acked;
  if (redis_private(&r) != 0) {
    CHECK(!"a private redis-server with AOF started");
    redis_private_stop(&r);
    return;
  }
  seen_init(&s);
  memset(&p, 0, sizeof p);
  p.ids = (char(*)[40])calloc(AOF_MAX, 40);
  h_unique(type, sizeof type, "cdur.aof");
  h_unique(group, sizeof group, "g");
  snprintf(opts, sizeof opts,
           "{\"durable\":{\"group\":\"%s\",\"consumer\":\"m1\",\"block\":200}}", group);
  p.c = client_for(r.url, NULL);
  first = client_for(r.url, NULL);
  if (p.c == NULL || first == NULL || p.ids == NULL) goto out;
  /* The member joins (the group is created), then goes away until after the restart. */
  CHECK_OK(eb_subscribe(first, type, opts, seen_handler(), &s, &sub_id));
  if (sub_id != NULL) CHECK_OK(eb_unsubscribe(first, sub_id));
  eb_string_free(sub_id);
  p.type = type;
  if (pthread_create(&th, NULL, aof_publisher, &p) != 0) goto out;
  CHECK(h_wait_at_least(&p.acked, 100, 30000) >= 100);
  redis_kill(&r);
  CHECK(redis_start(&r) == 0);
  acked = __atomic_load_n(&p.acked, __ATOMIC_SEQ_CST);
  CHECK(h_wait_at_least(&p.acked, acked + 100, 60000) >= acked + 100);
  __atomic_store_n(&p.stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(th, NULL);
  acked = __atomic_load_n(&p.acked, __ATOMIC_SEQ_CST);

  back = client_for(r.url, NULL);
  if (back == NULL) goto out;
  CHECK_OK(eb_subscribe(back, type, opts, seen_handler(), &s, NULL));
  {
    long deadline = h_now_ms() + 60000;
    while (__atomic_load_n(&s.distinct, __ATOMIC_SEQ_CST) < acked && h_now_ms() < deadline) {
      h_sleep_ms(20);
    }
  }
  for (i = 0; i < acked; i++) {
    if (seen_count(&s, p.ids[i]) == 0) missing++;
  }
  if (missing != 0) {
    fprintf(stderr, "    %d of %d acknowledged publishes not delivered (%d failed)\n", missing,
            acked, p.failed);
  }
  CHECK(missing == 0);
  CHECK(acked >= 200);
out:
  if (back != NULL) CHECK_OK(eb_client_free(back));
  if (first != NULL) CHECK_OK(eb_client_free(first));
  if (p.c != NULL) CHECK_OK(eb_client_free(p.c));
  free(p.ids);
  seen_destroy(&s);
  redis_private_stop(&r);
}

/* ---- trimming -------------------------------------------------------------------------------- */

typedef struct state_rec {
  int trimmed_errors; /* atomic */
} state_rec;

static void on_state(const char *state, const char *json, void *ctx) {
  state_rec *r = (state_rec *)ctx;
  if (strcmp(state, "error") == 0 && strstr(json, "\"code\":\"EVENTS_TRIMMED\"") != NULL) {
    __atomic_add_fetch(&r->trimmed_errors, 1, __ATOMIC_SEQ_CST);
  }
}

static void test_max_len_and_ttl_trim_and_unread_trimmed_are_counted(void) {
  char type[128], t2[128], group[128], opts[256];
  const char *url = h_redis_url();
  state_rec states;
  seen_set s;
  char *sub_id = NULL;
  eb_client *pub, *reader;
  long length, len2, trimmed = -1, deadline;
  eb_publish_result res;
  h_unique(type, sizeof type, "cdur.trim");
  h_unique(t2, sizeof t2, "cdur.ttl");
  h_unique(group, sizeof group, "T");
  memset(&states, 0, sizeof states);
  seen_init(&s);
  pub = client_for(url, "\"durable\":{\"maxLen\":10}");
  reader = client_for(url, NULL);
  if (pub == NULL || reader == NULL) goto out;
  CHECK_OK(eb_on_state(reader, on_state, &states, NULL, NULL));
  snprintf(opts, sizeof opts,
           "{\"durable\":{\"group\":\"%s\",\"consumer\":\"t1\",\"block\":200,"
           "\"claimInterval\":100}}",
           group);
  CHECK_OK(eb_subscribe(reader, type, opts, seen_handler(), &s, &sub_id));
  CHECK(publish_persistent(pub, type, 5, NULL, NULL) == 5);
  CHECK(h_wait_at_least(&s.distinct, 5, 20000) == 5);
  if (sub_id != NULL) CHECK_OK(eb_unsubscribe(reader, sub_id));
  eb_string_free(sub_id);

  /* 200 more while nobody reads: MAXLEN ~ 10 keeps about 10 of them. */
  CHECK(publish_persistent(pub, type, 200, NULL, NULL) == 200);
  length = xlen(url, type);
  CHECK(length > 0 && length < 50);
  CHECK(stat_of(reader, "eventsTrimmedUnread") == 0);
  CHECK(__atomic_load_n(&states.trimmed_errors, __ATOMIC_SEQ_CST) == 0);

  /* Back: what the stream still holds comes; the rest is counted and reported. */
  CHECK_OK(eb_subscribe(reader, type, opts, seen_handler(), &s, NULL));
  CHECK(h_wait_at_least(&s.distinct, (int)(5 + length), 20000) == (int)(5 + length));
  deadline = h_now_ms() + 20000;
  while ((trimmed = stat_of(reader, "eventsTrimmedUnread")) != 200 - length &&
         h_now_ms() < deadline) {
    h_sleep_ms(50);
  }
  if (trimmed != 200 - length) {
    fprintf(stderr, "    eventsTrimmedUnread %ld, expected %ld\n", trimmed, 200 - length);
  }
  CHECK(trimmed == 200 - length);
  CHECK(h_wait_at_least(&states.trimmed_errors, 1, 20000) >= 1);

  /* ttl: entries older than it go with the next persistent publish that has a ttl. */
  CHECK(publish_persistent(pub, t2, 40, NULL, NULL) == 40);
  h_sleep_ms(300);
  CHECK(publish_persistent(pub, t2, 1, "{\"persistent\":true,\"ttl\":100}", NULL) == 1);
  len2 = xlen(url, t2);
  CHECK(len2 >= 1 && len2 < 40);
  CHECK_STATUS(eb_publish(pub, t2, "{\"n\":41}", "{\"persistent\":true,\"ttl\":-1}", &res),
               EB_ERR_VALIDATION);
out:
  if (reader != NULL) CHECK_OK(eb_client_free(reader));
  if (pub != NULL) CHECK_OK(eb_client_free(pub));
  drop_streams(url, type);
  drop_streams(url, t2);
  seen_destroy(&s);
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "member") == 0) return member_main(argv[2], argv[3], argv[4]);
  self_path = argv[0];
  signal(SIGPIPE, SIG_IGN);
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  RUN(test_member_away_gets_all_500_once);
  RUN(test_two_groups_each_get_every_event);
  RUN(test_plain_subscriber_gets_persistent_events_live);
  RUN(test_sigkilled_member_work_finished_by_another);
  RUN(test_redis_killed_restarted_with_aof_loses_no_acked_publish);
  RUN(test_max_len_and_ttl_trim_and_unread_trimmed_are_counted);
  CHECK_OK(eb_shutdown());
  return h_summary();
}
