/* The C face on a private Redis Cluster (3 masters + 3 replicas) and a private Sentinel setup
 * (master + replica + 3 sentinels), both from scripts/redis-topology.sh: classic cluster
 * pub/sub over all three slot ranges, sharded pub/sub (SHARDNUMSUB on the owner, patterns
 * refused with EB_ERR_UNSUPPORTED), SENTINEL FAILOVER followed by both links, and the
 * EB_ERR_CONFIG of a mixed config.
 *
 * Each topology is started once for this program and stopped at exit, also when a check
 * fails or the program is interrupted (atexit + signal handlers). Admin commands go through
 * redis-cli. Run from the repository root (scripts/test-c.sh does), or set
 * EB_TOPOLOGY_SCRIPT to the script's path. */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

/* Generous bounded waits: the CI machine has 2 loaded cores (and valgrind). */
#define WAIT_MS 60000L
#define MAXN 128

/* ------------------------------------------------------------------------------------------ */
/* Topologies                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct topology {
  char dir[256];
  int running;
  char masters[512];   /* REDIS_CLUSTER_MASTERS */
  char sentinels[512]; /* REDIS_SENTINELS */
  char name[64];       /* REDIS_SENTINEL_NAME */
  char master[64];     /* REDIS_MASTER */
  char replica[64];    /* REDIS_REPLICA */
} topology;

static topology t_cluster, t_sentinel;

static const char *topo_script(void) {
  const char *s = getenv("EB_TOPOLOGY_SCRIPT");
  return s != NULL && s[0] != '\0' ? s : "scripts/redis-topology.sh";
}

static void topo_stop(topology *t) {
  char cmd[1024];
  if (!t->running) return;
  t->running = 0;
  snprintf(cmd, sizeof cmd, "bash '%s' stop '%s' >/dev/null 2>&1; rm -rf '%s'", topo_script(), t->dir,
           t->dir);
  if (system(cmd) != 0) fprintf(stderr, "    stopping %s failed\n", t->dir);
}

static void stop_all(void) {
  topo_stop(&t_cluster);
  topo_stop(&t_sentinel);
}

static void on_signal(int sig) {
  stop_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void env_value(const char *line, const char *key, char *out, size_t size) {
  size_t n = strlen(key);
  if (strncmp(line, key, n) == 0 && line[n] == '=') {
    snprintf(out, size, "%s", line + n + 1);
    out[strcspn(out, "\r\n")] = '\0';
  }
}

/* Starts `kind` (cluster | sentinel) in a fresh temp directory; 0 on success. */
static int topo_start(topology *t, const char *kind) {
  char cmd[1024], line[1024], path[320];
  snprintf(t->dir, sizeof t->dir, "%s/event-bus-c-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           kind);
  if (mkdtemp(t->dir) == NULL) return -1;
  t->running = 1; /* from here on, stop_all cleans up whatever the script started */
  snprintf(cmd, sizeof cmd, "bash '%s' start %s '%s' >'%s/start.out' 2>&1", topo_script(), kind, t->dir,
           t->dir);
  if (system(cmd) != 0) {
    snprintf(cmd, sizeof cmd, "cat '%s/start.out' >&2", t->dir);
    if (system(cmd) != 0) { /* nothing more to say */
    }
    return -1;
  }
  snprintf(path, sizeof path, "%s/env", t->dir);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    env_value(line, "REDIS_CLUSTER_MASTERS", t->masters, sizeof t->masters);
    env_value(line, "REDIS_SENTINELS", t->sentinels, sizeof t->sentinels);
    env_value(line, "REDIS_SENTINEL_NAME", t->name, sizeof t->name);
    env_value(line, "REDIS_MASTER", t->master, sizeof t->master);
    env_value(line, "REDIS_REPLICA", t->replica, sizeof t->replica);
  }
  fclose(f);
  return 0;
}

/* The i-th entry of a comma-separated list (into out); 0 when there is one. */
static int list_item(const char *list, int i, char *out, size_t size) {
  const char *p = list;
  for (; i > 0; i--) {
    p = strchr(p, ',');
    if (p == NULL) return -1;
    p++;
  }
  size_t n = strcspn(p, ",");
  if (n == 0 || n >= size) return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

/* `redis-cli -h host -p port ARGS` on addr; its stdout into out (may be NULL); exit status. */
static int cli(const char *addr, char *out, size_t size, const char *fmt, ...) {
  char host[64], args[512], cmd[1024];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL) return -1;
  snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  const char *bin = getenv("REDIS_CLI_BIN");
  snprintf(cmd, sizeof cmd, "timeout 10 %s -h %s -p %s %s 2>/dev/null", bin ? bin : "redis-cli", host,
           colon + 1, args);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return -1;
  size_t len = 0;
  char sink[4096];
  for (;;) {
    char *dst = out != NULL ? out + len : sink;
    size_t room = out != NULL ? size - 1 - len : sizeof sink;
    if (room == 0) break;
    size_t r = fread(dst, 1, room, p);
    if (r == 0) break;
    if (out != NULL) len += r;
  }
  if (out != NULL) out[len] = '\0';
  return pclose(p);
}

static long cli_int_line(const char *addr, int line_no, const char *fmt, const char *arg) {
  char out[4096];
  if (cli(addr, out, sizeof out, fmt, arg) != 0) return -1;
  char *p = out;
  for (int i = 0; i < line_no && p != NULL; i++) {
    p = strchr(p, '\n');
    if (p != NULL) p++;
  }
  return p != NULL && *p != '\0' ? strtol(p, NULL, 10) : -1;
}

/* The master serving `slot` (host:port into out), from CLUSTER NODES on `addr`. */
static int owner_of(const char *addr, long slot, char *out, size_t size) {
  static char nodes[16384];
  if (cli(addr, nodes, sizeof nodes, "CLUSTER NODES") != 0) return -1;
  for (char *line = strtok(nodes, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    char id[64], node[128], flags[128];
    int off = 0;
    if (sscanf(line, "%63s %127s %127s %*s %*s %*s %*s %*s%n", id, node, flags, &off) < 3 || off == 0) continue;
    if (strstr(flags, "master") == NULL || strstr(flags, "fail") != NULL) continue;
    for (char *r = line + off; *r != '\0';) {
      while (*r == ' ') r++;
      if (*r == '\0' || *r == '[') break;
      long a = strtol(r, &r, 10), b = a;
      if (*r == '-') b = strtol(r + 1, &r, 10);
      if (a <= slot && slot <= b) {
        node[strcspn(node, "@")] = '\0';
        snprintf(out, size, "%s", node);
        return 0;
      }
      while (*r != '\0' && *r != ' ') r++;
    }
  }
  return -1;
}

/* One channel `prefix.i` per master's slot range: ch[k] on owner[k], k < 3. */
static int channels_on_every_master(const char *seed, const char *prefix, char ch[3][96], char owner[3][128]) {
  int found = 0;
  for (int i = 0; found < 3 && i < 10000; i++) {
    char name[96], who[128];
    snprintf(name, sizeof name, "%s.%d", prefix, i);
    long slot = cli_int_line(seed, 0, "CLUSTER KEYSLOT %s", name);
    if (slot < 0 || owner_of(seed, slot, who, sizeof who) != 0) return -1;
    int dup = 0;
    for (int k = 0; k < found; k++) dup |= strcmp(owner[k], who) == 0;
    if (dup) continue;
    snprintf(ch[found], sizeof ch[found], "%s", name);
    snprintf(owner[found], sizeof owner[found], "%s", who);
    found++;
  }
  return found == 3 ? 0 : -1;
}

/* Is a connection named `name` on `addr` (CLIENT LIST)? */
static bool named_on(const char *addr, const char *name) {
  static char out[65536];
  char needle[160];
  if (cli(addr, out, sizeof out, "CLIENT LIST") != 0) return false;
  snprintf(needle, sizeof needle, " name=%s ", name);
  return strstr(out, needle) != NULL;
}

/* The master the sentinels name, into out; 0 when one answered. */
static int sentinel_master(const topology *t, char *out, size_t size) {
  for (int i = 0; i < 3; i++) {
    char s[64], reply[256], host[64];
    int port = 0;
    if (list_item(t->sentinels, i, s, sizeof s) != 0) break;
    if (cli(s, reply, sizeof reply, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", t->name) != 0) continue;
    if (sscanf(reply, "%63s %d", host, &port) == 2) {
      snprintf(out, size, "%s:%d", host, port);
      return 0;
    }
  }
  return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* A handler that records (c, n) of every event (`{"c":C,"n":N,...}`)                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct collector {
  int count;      /* atomic; entries below it are written */
  int overflow;   /* atomic: events past MAXN */
  int c[MAXN], n[MAXN];
} collector;

static long json_int(const char *json, const char *key) {
  char k[32];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(json, k);
  return p != NULL ? strtol(p + strlen(k), NULL, 10) : -1;
}

static int collect(const eb_event *event, void *ctx) {
  collector *col = (collector *)ctx;
  int i = __atomic_load_n(&col->count, __ATOMIC_SEQ_CST);
  if (i >= MAXN) {
    __atomic_fetch_add(&col->overflow, 1, __ATOMIC_SEQ_CST);
    return 0;
  }
  col->c[i] = (int)json_int(event->data_json, "c");
  col->n[i] = (int)json_int(event->data_json, "n");
  __atomic_store_n(&col->count, i + 1, __ATOMIC_SEQ_CST); /* one call at a time per subscription */
  return 0;
}

static const eb_handler COLLECT = {collect, NULL};

/* Events with data.p == 1 only: the phase after a failover. */
static int collect_after(const eb_event *event, void *ctx) {
  if (json_int(event->data_json, "p") != 1) return 0;
  return collect(event, ctx);
}

static const eb_handler COLLECT_AFTER = {collect_after, NULL};

/* Every (c, n) with n < per exactly once: of channel `only_c` in order, or (only_c = -1) of
 * each of the `ncs` channels in any order. */
static bool once_each(const collector *col, int ncs, int only_c, int per) {
  int want = only_c >= 0 ? per : ncs * per;
  int got = __atomic_load_n(&col->count, __ATOMIC_SEQ_CST);
  if (got != want || __atomic_load_n(&col->overflow, __ATOMIC_SEQ_CST) != 0) {
    fprintf(stderr, "    got %d events, want %d\n", got, want);
    return false;
  }
  for (int i = 0; i < got; i++) {
    if (only_c >= 0 && (col->c[i] != only_c || col->n[i] != i)) {
      fprintf(stderr, "    event %d is (%d,%d), want (%d,%d)\n", i, col->c[i], col->n[i], only_c, i);
      return false;
    }
    for (int j = 0; j < i; j++) {
      if (col->c[i] == col->c[j] && col->n[i] == col->n[j]) {
        fprintf(stderr, "    (%d,%d) twice\n", col->c[i], col->n[i]);
        return false;
      }
    }
  }
  return true;
}

static void settle(void) { h_sleep_ms(300); } /* nothing more arrives: each event once */

static eb_client *cluster_client(const char *service, bool sharded) {
  char seed[64], cfg[1024];
  eb_client *c = NULL;
  if (list_item(t_cluster.masters, 0, seed, sizeof seed) != 0) return NULL;
  snprintf(cfg, sizeof cfg,
           "{\"serviceName\":\"%s\",\"logLevel\":\"error\",\"redis\":{\"cluster\":[\"redis://%s\"],"
           "\"shardedPubSub\":%s,\"reconnectDelay\":50,\"reconnectDelayMax\":500,\"heartbeatInterval\":1000}}",
           service, seed, sharded ? "true" : "false");
  CHECK_OK(eb_client_new(cfg, &c));
  if (c != NULL) CHECK_OK(eb_connect(c));
  return c;
}

static bool stats_have(const eb_client *c, const char *needle) {
  char *json = NULL;
  bool found = false;
  if (eb_get_stats(c, &json) == EB_OK && json != NULL) found = strstr(json, needle) != NULL;
  if (!found) fprintf(stderr, "    stats lack %s: %s\n", needle, json ? json : "(none)");
  eb_string_free(json);
  return found;
}

/* Publish {"c":k,"n":n} on ch[k] for n < per, round by round over the three channels; each
 * reply must be `delivered_to` receivers unless that is -1. */
static void publish_rounds(eb_client *pub, char ch[3][96], int per, long delivered_to) {
  char data[64];
  for (int n = 0; n < per; n++) {
    for (int k = 0; k < 3; k++) {
      eb_publish_result r;
      snprintf(data, sizeof data, "{\"c\":%d,\"n\":%d}", k, n);
      CHECK_OK(eb_publish(pub, ch[k], data, NULL, &r));
      if (delivered_to >= 0) CHECK((long)r.delivered_to == delivered_to);
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_cluster_classic_all_slot_ranges_each_event_once(void) {
  char seed[64], prefix[64], ch[3][96], owner[3][128], pat[80];
  CHECK(list_item(t_cluster.masters, 0, seed, sizeof seed) == 0);
  h_unique(prefix, sizeof prefix, "cclu");
  CHECK(channels_on_every_master(seed, prefix, ch, owner) == 0);
  eb_client *sub = cluster_client("c-clu-sub", false);
  eb_client *pub = cluster_client("c-clu-pub", false);
  if (sub == NULL || pub == NULL) goto out;
  {
    static collector exact[3], pattern;
    const int per = 20;
    for (int k = 0; k < 3; k++) CHECK_OK(eb_subscribe(sub, ch[k], NULL, COLLECT, &exact[k], NULL));
    snprintf(pat, sizeof pat, "%s.*", prefix);
    CHECK_OK(eb_subscribe(sub, pat, NULL, COLLECT, &pattern, NULL));
    publish_rounds(pub, ch, per, -1);
    CHECK(h_wait_at_least(&pattern.count, 3 * per, WAIT_MS) >= 3 * per);
    for (int k = 0; k < 3; k++) CHECK(h_wait_at_least(&exact[k].count, per, WAIT_MS) >= per);
    settle();
    CHECK(once_each(&pattern, 3, -1, per));
    for (int k = 0; k < 3; k++) CHECK(once_each(&exact[k], 3, k, per));
    CHECK(stats_have(sub, "\"mode\":\"cluster\""));
  }
out:
  CHECK_OK(eb_client_free(sub));
  CHECK_OK(eb_client_free(pub));
}

static void test_cluster_sharded_owner_and_pattern_refused(void) {
  char seed[64], prefix[64], ch[3][96], owner[3][128], pat[80];
  CHECK(list_item(t_cluster.masters, 0, seed, sizeof seed) == 0);
  h_unique(prefix, sizeof prefix, "cshd");
  CHECK(channels_on_every_master(seed, prefix, ch, owner) == 0);
  eb_client *sub = cluster_client("c-shd-sub", true);
  eb_client *pub = cluster_client("c-shd-pub", true);
  if (sub == NULL || pub == NULL) goto out;
  {
    static collector cols[3];
    const int per = 10;
    char *id = NULL;
    snprintf(pat, sizeof pat, "%s.*", prefix);
    CHECK_STATUS(eb_subscribe(sub, pat, NULL, COLLECT, &cols[0], &id), EB_ERR_UNSUPPORTED);
    CHECK(strstr(eb_last_error(), "sharded pub/sub has no patterns") != NULL);
    CHECK(id == NULL);
    for (int k = 0; k < 3; k++) CHECK_OK(eb_subscribe(sub, ch[k], NULL, COLLECT, &cols[k], NULL));
    for (int k = 0; k < 3; k++) {
      for (int m = 0; m < 3; m++) {
        char master[64];
        CHECK(list_item(t_cluster.masters, m, master, sizeof master) == 0);
        long want = strcmp(master, owner[k]) == 0 ? 1 : 0;
        long got = cli_int_line(master, 1, "PUBSUB SHARDNUMSUB %s", ch[k]);
        if (got != want) fprintf(stderr, "    SHARDNUMSUB %s on %s: %ld (owner %s)\n", ch[k], master, got, owner[k]);
        CHECK(got == want);
      }
    }
    CHECK(stats_have(sub, "\"mode\":\"cluster-sharded\""));
    publish_rounds(pub, ch, per, 1);
    for (int k = 0; k < 3; k++) CHECK(h_wait_at_least(&cols[k].count, per, WAIT_MS) >= per);
    settle();
    for (int k = 0; k < 3; k++) CHECK(once_each(&cols[k], 3, k, per));
  }
out:
  CHECK_OK(eb_client_free(sub));
  CHECK_OK(eb_client_free(pub));
}

static void test_mixed_modes_are_a_config_error_naming_both_keys(void) {
  static const struct {
    const char *redis, *k1, *k2;
  } cases[] = {
      {"{\"cluster\":[\"redis://127.0.0.1:7000\"],\"sentinels\":[{\"host\":\"127.0.0.1\"}],\"name\":\"m\"}",
       "redis.cluster", "redis.sentinels"},
      {"{\"url\":\"redis://127.0.0.1:7000\",\"cluster\":[\"redis://127.0.0.1:7000\"]}", "redis.url",
       "redis.cluster"},
      {"{\"url\":\"redis://127.0.0.1:7000\",\"shardedPubSub\":true}", "redis.shardedPubSub", "redis.cluster"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char cfg[512];
    eb_client *c = (eb_client *)1;
    snprintf(cfg, sizeof cfg, "{\"serviceName\":\"c\",\"redis\":%s}", cases[i].redis);
    CHECK_STATUS(eb_client_new(cfg, &c), EB_ERR_CONFIG);
    CHECK(c == NULL);
    CHECK(strstr(eb_last_error(), cases[i].k1) != NULL);
    CHECK(strstr(eb_last_error(), cases[i].k2) != NULL);
  }
}

static int gaps = 0;
static void on_state(const char *state, const char *event_json, void *ctx) {
  (void)event_json;
  (void)ctx;
  if (strcmp(state, "gap") == 0) __atomic_fetch_add(&gaps, 1, __ATOMIC_SEQ_CST);
}

static bool all_on(const char *addr, char names[4][96]) {
  for (int i = 0; i < 4; i++)
    if (!named_on(addr, names[i])) return false;
  return true;
}

static bool none_on(const char *addr, char names[4][96]) {
  for (int i = 0; i < 4; i++)
    if (named_on(addr, names[i])) return false;
  return true;
}

static bool wait_true(bool (*cond)(const char *, char[4][96]), const char *addr, char names[4][96], long ms) {
  long deadline = h_now_ms() + ms;
  while (!cond(addr, names) && h_now_ms() < deadline) h_sleep_ms(100);
  return cond(addr, names);
}

static void test_sentinel_failover_moves_publisher_and_subscriber(void) {
  char cfg[1024], sentinels[512] = "", s0[64], pubsvc[64], subsvc[64], chan[96], pat[96], pch[104];
  char names[4][96], data[64], now[96] = "";
  eb_client *pub = NULL, *sub = NULL;
  for (int i = 0; i < 3; i++) {
    char s[64];
    if (list_item(t_sentinel.sentinels, i, s, sizeof s) != 0) break;
    size_t len = strlen(sentinels);
    snprintf(sentinels + len, sizeof sentinels - len, "%s{\"host\":\"127.0.0.1\",\"port\":%s}", i ? "," : "",
             strrchr(s, ':') + 1);
  }
  h_unique(pubsvc, sizeof pubsvc, "c-sen-pub");
  h_unique(subsvc, sizeof subsvc, "c-sen-sub");
  snprintf(names[0], sizeof names[0], "%s:pub", pubsvc);
  snprintf(names[1], sizeof names[1], "%s:sub", pubsvc);
  snprintf(names[2], sizeof names[2], "%s:pub", subsvc);
  snprintf(names[3], sizeof names[3], "%s:sub", subsvc);
  const char *fmt =
      "{\"serviceName\":\"%s\",\"logLevel\":\"error\",\"redis\":{\"sentinels\":[%s],\"name\":\"%s\","
      "\"reconnectDelay\":50,\"reconnectDelayMax\":500,\"heartbeatInterval\":1000}}";
  snprintf(cfg, sizeof cfg, fmt, pubsvc, sentinels, t_sentinel.name);
  CHECK_OK(eb_client_new(cfg, &pub));
  snprintf(cfg, sizeof cfg, fmt, subsvc, sentinels, t_sentinel.name);
  CHECK_OK(eb_client_new(cfg, &sub));
  if (pub == NULL || sub == NULL) goto out;
  CHECK_OK(eb_connect(pub));
  CHECK_OK(eb_connect(sub));
  CHECK_OK(eb_on_state(sub, on_state, NULL, NULL, NULL));
  {
    static collector exact, pattern;
    const int per = 30;
    eb_publish_result r;
    h_unique(chan, sizeof chan, "csen.chan");
    h_unique(pat, sizeof pat, "csen.pat");
    snprintf(pch, sizeof pch, "%s.x", pat);
    strcat(pat, ".*");
    CHECK_OK(eb_subscribe(sub, chan, NULL, COLLECT_AFTER, &exact, NULL));
    CHECK_OK(eb_subscribe(sub, pat, NULL, COLLECT_AFTER, &pattern, NULL));
    CHECK(all_on(t_sentinel.master, names));
    CHECK_OK(eb_publish(pub, chan, "{\"p\":0}", NULL, &r));
    CHECK(r.delivered_to == 1);

    CHECK(list_item(t_sentinel.sentinels, 0, s0, sizeof s0) == 0);
    CHECK(cli(s0, NULL, 0, "SENTINEL FAILOVER %s", t_sentinel.name) == 0);
    long deadline = h_now_ms() + WAIT_MS;
    while (h_now_ms() < deadline &&
           (sentinel_master(&t_sentinel, now, sizeof now) != 0 || strcmp(now, t_sentinel.replica) != 0)) {
      h_sleep_ms(100);
    }
    CHECK(strcmp(now, t_sentinel.replica) == 0);
    CHECK(wait_true(all_on, t_sentinel.replica, names, WAIT_MS));
    CHECK(wait_true(none_on, t_sentinel.master, names, WAIT_MS));
    deadline = h_now_ms() + WAIT_MS;
    while (h_now_ms() < deadline && cli_int_line(t_sentinel.replica, 1, "PUBSUB NUMSUB %s", chan) != 1) {
      h_sleep_ms(100);
    }
    CHECK(cli_int_line(t_sentinel.replica, 1, "PUBSUB NUMSUB %s", chan) == 1);

    for (int n = 0; n < per; n++) {
      snprintf(data, sizeof data, "{\"p\":1,\"c\":0,\"n\":%d}", n);
      CHECK_OK(eb_publish(pub, chan, data, NULL, &r));
      CHECK(r.delivered_to == 1);
      CHECK_OK(eb_publish(pub, pch, data, NULL, &r));
    }
    CHECK(h_wait_at_least(&exact.count, per, WAIT_MS) >= per);
    CHECK(h_wait_at_least(&pattern.count, per, WAIT_MS) >= per);
    settle();
    CHECK(once_each(&exact, 1, 0, per));
    CHECK(once_each(&pattern, 1, 0, per));
    CHECK(__atomic_load_n(&gaps, __ATOMIC_SEQ_CST) >= 1);
    CHECK(stats_have(sub, "\"mode\":\"sentinel\""));
  }
out:
  CHECK_OK(eb_client_free(pub));
  CHECK_OK(eb_client_free(sub));
}

int main(void) {
  (void)h_connected_client; /* the harness's, unused here */
  atexit(stop_all);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGSEGV, on_signal);
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  RUN(test_mixed_modes_are_a_config_error_naming_both_keys);
  if (topo_start(&t_cluster, "cluster") != 0) {
    fprintf(stderr, "    could not start the cluster\n");
    h_failed++;
  } else {
    RUN(test_cluster_classic_all_slot_ranges_each_event_once);
    RUN(test_cluster_sharded_owner_and_pattern_refused);
  }
  topo_stop(&t_cluster);
  if (topo_start(&t_sentinel, "sentinel") != 0) {
    fprintf(stderr, "    could not start the sentinel setup\n");
    h_failed++;
  } else {
    RUN(test_sentinel_failover_moves_publisher_and_subscriber);
  }
  stop_all();
  CHECK_OK(eb_shutdown());
  return h_summary();
}
