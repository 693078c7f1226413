/*
 * Rooms over Socket.IO from C, against the test hub (tests/fixtures/socketio-hub/hub.js, on the
 * npm socket.io server, started here as a child process per test): join/leave/members, room
 * events reaching exactly the members and once per subscription, the hub killed and restarted
 * on the same port, a wrong token, an unreachable hub, no client config, bad arguments.
 * Needs Redis (REDIS_URL or 127.0.0.1:6379), node and the hub's node_modules. Built with
 * -Wall -Wextra -Werror as C and as C++, run under valgrind by scripts/test-c.sh (the hub child
 * is not traced). Every room, type and service name is unique to the run.
 * Ends with "N passed, M failed".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "../../examples/c/json_scan.h"
#include "harness.h"

/* Generous bounds for things that must happen (valgrind and two shared cores are slow);
 * reaching one is a failure, never a measurement. */
#define WAIT_MS 60000L
#define HUB_TOKEN "c-hub-secret"

/* ----------------------------------------------------------------------------------------- */
/* JSON: the raw text of the value at a dotted path ("checks.socketio.status" -> "\"pass\"") */

static const char *jget(const char *json, const char *path, char *buf, size_t size) {
  const char *p = json, *end = NULL;
  char key[64];
  buf[0] = '\0';
  while (p != NULL && *path) {
    size_t n = strcspn(path, ".");
    if (n >= sizeof key) return buf;
    memcpy(key, path, n);
    key[n] = '\0';
    path += n;
    if (*path == '.') path++;
    p = obj_get(p, key, &end);
  }
  if (p != NULL && end != NULL) {
    size_t n = (size_t)(end - p);
    if (n >= size) n = size - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
  }
  return buf;
}

/* ----------------------------------------------------------------------------------------- */
/* The test hub as a child process */

typedef struct hub {
  pid_t pid;
  int stdin_fd; /* our end of its stdin (it exits when that closes) */
  int stdout_fd;
  int port;
} hub;

/* Where the hubs' stderr goes: EB_HUB_LOG (appended), else ours. */
static const char *hub_log(void) {
  const char *s = getenv("EB_HUB_LOG");
  return s != NULL && s[0] != '\0' ? s : NULL;
}

static const char *hub_script(void) {
  const char *s = getenv("EB_HUB_SCRIPT");
  return s != NULL && s[0] != '\0' ? s : "tests/fixtures/socketio-hub/hub.js";
}

/* Start the hub on `port` (0: any) and wait for its `READY <port>` line. 1 on success. */
static int hub_start(hub *h, int port) {
  int in[2], out[2], rc;
  char port_arg[16], line[64];
  size_t len = 0;
  long deadline;
  posix_spawn_file_actions_t fa;
  const char *argv[] = {"node",      hub_script(), "--port", port_arg,
                        "--token",   HUB_TOKEN,    "--redis", h_redis_url(),
                        NULL};
  memset(h, 0, sizeof *h);
  h->stdin_fd = h->stdout_fd = -1;
  snprintf(port_arg, sizeof port_arg, "%d", port);
  if (pipe2(in, O_CLOEXEC) != 0) return 0;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return 0;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (hub_log() != NULL) {
    posix_spawn_file_actions_addopen(&fa, 2, hub_log(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  rc = posix_spawnp(&h->pid, "node", &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  h->stdin_fd = in[1];
  h->stdout_fd = out[0];
  if (rc != 0) {
    fprintf(stderr, "    cannot run node %s: %s\n", hub_script(), strerror(rc));
    h->pid = 0;
    return 0;
  }
  deadline = h_now_ms() + WAIT_MS;
  while (len + 1 < sizeof line) {
    struct pollfd pfd;
    char ch;
    ssize_t n;
    pfd.fd = h->stdout_fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, 100) <= 0) {
      if (h_now_ms() > deadline) break;
      continue;
    }
    n = read(h->stdout_fd, &ch, 1);
    if (n <= 0) break;
    if (ch == '\n') break;
    line[len++] = ch;
  }
  line[len] = '\0';
  if (sscanf(line, "READY %d", &h->port) != 1 || h->port <= 0) {
    fprintf(stderr, "    the hub did not start: \"%s\" (its log: %s)\n", line,
            hub_log() != NULL ? hub_log() : "stderr");
    return 0;
  }
  return 1;
}

/* Kill the hub (SIGKILL, as a crash) and reap it. */
static void hub_kill(hub *h) {
  if (h->pid > 0) {
    int st;
    kill(h->pid, SIGKILL);
    while (waitpid(h->pid, &st, 0) < 0 && errno == EINTR) {
    }
    h->pid = 0;
  }
  if (h->stdin_fd >= 0) close(h->stdin_fd);
  if (h->stdout_fd >= 0) close(h->stdout_fd);
  h->stdin_fd = h->stdout_fd = -1;
}

/* GET `path` from the hub's HTTP side; the body (malloc'd, caller frees) or NULL. */
static char *hub_get(const hub *h, const char *path) {
  struct sockaddr_in a;
  char req[256], *buf, *body, *out;
  size_t len = 0, cap = 1 << 16;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)h->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
    close(fd);
    return NULL;
  }
  buf = (char *)malloc(cap);
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    if (len + 1 >= cap) break;
  }
  close(fd);
  buf[len] = '\0';
  body = strstr(buf, "\r\n\r\n");
  out = body != NULL ? strdup(body + 4) : NULL;
  free(buf);
  return out;
}

/* A port with nothing listening (bound, read, closed). */
static int free_port(void) {
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  int port = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &alen) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

/* ----------------------------------------------------------------------------------------- */
/* Clients */

/* A config with the Socket.IO `client` section for the hub on `port`. */
static const char *hub_config(char *buf, size_t size, const char *service, int port,
                              const char *token, const char *client_extra) {
  snprintf(buf, size,
           "{\"serviceName\":\"%s\",\"redis\":{\"url\":\"%s\"},\"logLevel\":\"error\","
           "\"client\":{\"url\":\"http://127.0.0.1:%d\",\"authToken\":\"%s\","
           "\"reconnectionDelay\":50,\"reconnectionDelayMax\":200,\"timeout\":10000%s}}",
           service, h_redis_url(), port, token, client_extra != NULL ? client_extra : "");
  return buf;
}

/* A new client of the hub, connected (NULL on failure, counted). */
static eb_client *hub_client(const hub *h, const char *service) {
  char cfg[1024];
  eb_client *c = NULL;
  CHECK_OK(eb_client_new(hub_config(cfg, sizeof cfg, service, h->port, HUB_TOKEN, NULL), &c));
  if (c == NULL) return NULL;
  CHECK_OK(eb_connect(c));
  return c;
}

/* The room's members as the JSON text eb_get_room_members gives ("" on failure, counted). */
static void members_of(eb_client *c, const char *room, char *buf, size_t size) {
  char *out = NULL;
  buf[0] = '\0';
  CHECK_OK(eb_get_room_members(c, room, &out));
  if (out != NULL) snprintf(buf, size, "%s", out);
  eb_string_free(out);
}

/* A JSON field of the client's health report or stats (raw text). */
static const char *health_field(eb_client *c, const char *path, char *buf, size_t size) {
  char *json = NULL;
  buf[0] = '\0';
  CHECK_OK(eb_health_check(c, &json));
  if (json != NULL) jget(json, path, buf, size);
  eb_string_free(json);
  return buf;
}

static const char *stats_field(eb_client *c, const char *path, char *buf, size_t size) {
  char *json = NULL;
  buf[0] = '\0';
  CHECK_OK(eb_get_stats(c, &json));
  if (json != NULL) jget(json, path, buf, size);
  eb_string_free(json);
  return buf;
}

#define CHECK_STR(actual, expected)                                                        \
  do {                                                                                     \
    const char *h_a_ = (actual), *h_e_ = (expected);                                       \
    if (strcmp(h_a_, h_e_) != 0) {                                                         \
      fprintf(stderr, "    %s:%d: %s is '%s', expected '%s'\n", __FILE__, __LINE__, #actual, \
              h_a_, h_e_);                                                                 \
      h_failed_checks++;                                                                   \
    }                                                                                      \
  } while (0)

/* The call failed with `status` and exactly `message`. */
#define CHECK_FAILS(expr, status, message)                                                 \
  do {                                                                                     \
    CHECK_STATUS(expr, status);                                                            \
    CHECK_STR(eb_last_error(), message);                                                   \
  } while (0)

/* ----------------------------------------------------------------------------------------- */
/* A handler context counting the events of one type by their data's "n" (0..99) */

#define MAX_SEQ 64

typedef struct recorder {
  pthread_mutex_t mu;
  char type[128]; /* only events of this type are counted */
  int calls;      /* counted calls */
  int per_n[100];
  int seq[MAX_SEQ]; /* n in arrival order */
  int nseq;
  char channel[256];
  int channels_ok; /* every counted call had `channel` == expected_channel */
  char expected_channel[256];
} recorder;

static void rec_init(recorder *r, const char *type, const char *expected_channel) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  snprintf(r->type, sizeof r->type, "%s", type);
  snprintf(r->expected_channel, sizeof r->expected_channel, "%s", expected_channel);
  r->channels_ok = 1;
}

static void rec_destroy(recorder *r) { pthread_mutex_destroy(&r->mu); }

static int rec_count(recorder *r, int n) {
  int v;
  pthread_mutex_lock(&r->mu);
  v = n >= 0 && n < 100 ? r->per_n[n] : 0;
  pthread_mutex_unlock(&r->mu);
  return v;
}

/* Wait until event n was seen (or WAIT_MS); returns how often it was. */
static int rec_wait_n(recorder *r, int n) {
  long deadline = h_now_ms() + WAIT_MS;
  while (rec_count(r, n) < 1 && h_now_ms() < deadline) h_sleep_ms(10);
  return rec_count(r, n);
}

static int on_event(const eb_event *ev, void *ctx) {
  recorder *r = (recorder *)ctx;
  const char *end = NULL, *v;
  int n = -1;
  if (strcmp(ev->type, r->type) != 0) return 0; /* the shared Redis carries other runs' events */
  v = obj_get(ev->data_json, "n", &end);
  if (v != NULL) n = atoi(v);
  pthread_mutex_lock(&r->mu);
  if (n >= 0 && n < 100) r->per_n[n]++;
  if (r->nseq < MAX_SEQ) r->seq[r->nseq++] = n;
  snprintf(r->channel, sizeof r->channel, "%s", ev->channel);
  if (strcmp(ev->channel, r->expected_channel) != 0) r->channels_ok = 0;
  pthread_mutex_unlock(&r->mu);
  __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
  return 0;
}

static eb_handler rec_handler(void) {
  eb_handler h;
  h.call = on_event;
  h.drop = NULL;
  return h;
}

/* State changes of the `socketio` connection. */
typedef struct sio_states {
  int connected;
  int reconnected; /* connected with reconnect:true */
  int disconnected;
  int reconnecting;
} sio_states;

static void on_state(const char *state, const char *event_json, void *ctx) {
  sio_states *s = (sio_states *)ctx;
  char conn[64], rec[16];
  jget(event_json, "connection", conn, sizeof conn);
  if (strcmp(conn, "\"socketio\"") != 0) return;
  if (strcmp(state, "connected") == 0) {
    __atomic_add_fetch(&s->connected, 1, __ATOMIC_SEQ_CST);
    if (strcmp(jget(event_json, "reconnect", rec, sizeof rec), "true") == 0) {
      __atomic_add_fetch(&s->reconnected, 1, __ATOMIC_SEQ_CST);
    }
  } else if (strcmp(state, "disconnected") == 0) {
    __atomic_add_fetch(&s->disconnected, 1, __ATOMIC_SEQ_CST);
  } else if (strcmp(state, "reconnecting") == 0) {
    __atomic_add_fetch(&s->reconnecting, 1, __ATOMIC_SEQ_CST);
  }
}

static void publish_n(eb_client *c, const char *room, const char *type, int n) {
  char data[32];
  eb_publish_result res;
  snprintf(data, sizeof data, "{\"n\":%d}", n);
  CHECK_OK(eb_publish_to_room(c, room, type, data, NULL, &res));
  CHECK(res.success);
}

/* A handler that asks for a room's members from inside the call. */
typedef struct asker {
  eb_client *client;
  char room[96];
  int status; /* of eb_get_room_members */
  char members[256];
  int done;
} asker;

static int ask_members(const eb_event *ev, void *ctx) {
  asker *a = (asker *)ctx;
  char *out = NULL;
  (void)ev;
  if (__atomic_load_n(&a->done, __ATOMIC_SEQ_CST)) return 0;
  a->status = eb_get_room_members(a->client, a->room, &out);
  snprintf(a->members, sizeof a->members, "%s", out != NULL ? out : "");
  eb_string_free(out);
  __atomic_store_n(&a->done, 1, __ATOMIC_SEQ_CST);
  return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Tests */

static void test_join_leave_members(void) {
  hub h;
  char a_name[96], b_name[96], room[96], expected[256], got[512], v[512];
  eb_client *a, *b;
  if (!hub_start(&h, 0)) {
    CHECK(0);
    hub_kill(&h);
    return;
  }
  h_unique(a_name, sizeof a_name, "c-rooms-a");
  h_unique(b_name, sizeof b_name, "c-rooms-b");
  h_unique(room, sizeof room, "c-room");
  a = hub_client(&h, a_name);
  b = hub_client(&h, b_name);
  if (a == NULL || b == NULL) {
    eb_client_free(a);
    eb_client_free(b);
    hub_kill(&h);
    return;
  }
  CHECK_OK(eb_join_room(a, room));
  CHECK_OK(eb_join_room(b, room));
  /* the hub lists the serviceName of each member, sorted (a's name sorts first) */
  snprintf(expected, sizeof expected, "[\"%s\",\"%s\"]", a_name, b_name);
  members_of(a, room, got, sizeof got);
  CHECK_STR(got, expected);
  members_of(b, room, got, sizeof got);
  CHECK_STR(got, expected);
  /* joining twice is harmless */
  CHECK_OK(eb_join_room(a, room));
  members_of(a, room, got, sizeof got);
  CHECK_STR(got, expected);

  /* health and stats carry the hub connection */
  CHECK_STR(health_field(a, "status", v, sizeof v), "\"healthy\"");
  CHECK_STR(health_field(a, "checks.socketio.status", v, sizeof v), "\"pass\"");
  CHECK_STR(health_field(a, "checks.socketio.details.transport", v, sizeof v), "\"websocket\"");
  snprintf(expected, sizeof expected, "[\"%s\"]", room);
  CHECK_STR(health_field(a, "checks.socketio.details.rooms", v, sizeof v), expected);
  snprintf(expected, sizeof expected, "\"http://127.0.0.1:%d\"", h.port);
  CHECK_STR(health_field(a, "checks.socketio.details.url", v, sizeof v), expected);
  CHECK_STR(stats_field(a, "activeRooms", v, sizeof v), "1");
  CHECK_STR(stats_field(a, "activeConnections", v, sizeof v), "3");

  /* room calls work from inside a handler (here one run for an event the hub forwarded) */
  {
    asker ask;
    eb_handler hd;
    char type[128], *sub_id = NULL;
    memset(&ask, 0, sizeof ask);
    ask.client = b;
    snprintf(ask.room, sizeof ask.room, "%s", room);
    hd.call = ask_members;
    hd.drop = NULL;
    h_unique(type, sizeof type, "crooms.ask");
    CHECK_OK(eb_subscribe(b, type, NULL, hd, &ask, &sub_id));
    publish_n(a, room, type, 0);
    CHECK(h_wait_at_least(&ask.done, 1, WAIT_MS) == 1);
    CHECK_STATUS(ask.status, EB_OK);
    snprintf(expected, sizeof expected, "[\"%s\",\"%s\"]", a_name, b_name);
    CHECK_STR(ask.members, expected);
    CHECK_OK(eb_unsubscribe(b, sub_id)); /* before `ask` goes out of scope */
    eb_string_free(sub_id);
  }

  CHECK_OK(eb_leave_room(a, room));
  snprintf(expected, sizeof expected, "[\"%s\"]", b_name);
  members_of(b, room, got, sizeof got);
  CHECK_STR(got, expected);
  members_of(a, room, got, sizeof got); /* a non-member may ask too */
  CHECK_STR(got, expected);
  CHECK_STR(stats_field(a, "activeRooms", v, sizeof v), "0");
  CHECK_STR(health_field(a, "checks.socketio.details.rooms", v, sizeof v), "[]");
  CHECK_OK(eb_leave_room(b, room));
  members_of(b, room, got, sizeof got);
  CHECK_STR(got, "[]");

  /* after disconnect the room calls fail as without a hub */
  CHECK_OK(eb_disconnect(a));
  CHECK_FAILS(eb_join_room(a, room), EB_ERR_CONNECTION, "Socket.IO not connected");
  {
    char *out = NULL;
    CHECK_FAILS(eb_get_room_members(a, room, &out), EB_ERR_CONNECTION, "Socket.IO not connected");
    CHECK(out == NULL);
  }
  CHECK_OK(eb_client_free(a));
  CHECK_OK(eb_client_free(b));
  hub_kill(&h);
}

static void test_room_events_reach_exactly_the_members_once(void) {
  hub h;
  char room[96], other_room[96], type[128], name[96], room_ch[128];
  eb_client *sender = NULL, *members[2] = {NULL, NULL}, *outsider = NULL;
  recorder by_type[2], star[2], by_channel[2], outside;
  int i, n;
  if (!hub_start(&h, 0)) {
    CHECK(0);
    hub_kill(&h);
    return;
  }
  h_unique(room, sizeof room, "c-room");
  h_unique(other_room, sizeof other_room, "c-room-other");
  h_unique(type, sizeof type, "crooms.sent");
  snprintf(room_ch, sizeof room_ch, "room:%s", room);
  for (i = 0; i < 2; i++) {
    rec_init(&by_type[i], type, type); /* over Socket.IO the channel is the type */
    rec_init(&star[i], type, "");
    rec_init(&by_channel[i], type, room_ch);
  }
  rec_init(&outside, type, type);

  sender = h_connected_client(); /* a plain Redis client: publishing needs no hub */
  for (i = 0; i < 2; i++) {
    h_unique(name, sizeof name, "c-rooms-member");
    members[i] = hub_client(&h, name);
    if (members[i] == NULL) continue;
    CHECK_OK(eb_join_room(members[i], room));
    /* the exact type: only the hub brings it (the Redis channel is room:<room>) */
    CHECK_OK(eb_subscribe(members[i], type, NULL, rec_handler(), &by_type[i], NULL));
    /* `*` matches the Redis channel and the type: still one call per event */
    CHECK_OK(eb_subscribe(members[i], "*", NULL, rec_handler(), &star[i], NULL));
    /* the Redis channel: only Redis brings it */
    CHECK_OK(eb_subscribe(members[i], room_ch, NULL, rec_handler(), &by_channel[i], NULL));
  }
  h_unique(name, sizeof name, "c-rooms-outsider");
  outsider = hub_client(&h, name);
  if (outsider != NULL) {
    CHECK_OK(eb_subscribe(outsider, type, NULL, rec_handler(), &outside, NULL));
    CHECK_OK(eb_join_room(outsider, other_room));
  }
  if (sender == NULL || members[0] == NULL || members[1] == NULL || outsider == NULL) {
    CHECK(0);
    goto out;
  }

  for (n = 0; n < 5; n++) publish_n(sender, room, type, n);
  publish_n(sender, room, type, 90);       /* end marker for the members */
  publish_n(sender, other_room, type, 91); /* end marker for the outsider, after the rest */

  for (i = 0; i < 2; i++) {
    /* the marker came by both ways, so every earlier copy has been dispatched */
    CHECK(rec_wait_n(&by_type[i], 90) == 1);
    CHECK(rec_wait_n(&by_channel[i], 90) == 1);
    CHECK(rec_wait_n(&star[i], 90) >= 1);
    for (n = 0; n < 5; n++) {
      CHECK(rec_count(&by_type[i], n) == 1);
      CHECK(rec_count(&by_channel[i], n) == 1);
      CHECK(rec_count(&star[i], n) == 1); /* by Redis and by Socket.IO: one call */
    }
    pthread_mutex_lock(&by_type[i].mu);
    CHECK(by_type[i].nseq >= 6);
    for (n = 0; n < 5 && n < by_type[i].nseq; n++) CHECK(by_type[i].seq[n] == n); /* in order */
    CHECK(by_type[i].channels_ok);
    pthread_mutex_unlock(&by_type[i].mu);
    CHECK(by_channel[i].channels_ok);
  }
  /* The outsider's marker went through the hub after the room's events: had the hub sent
   * them to the outsider, they would have arrived first. */
  CHECK(rec_wait_n(&outside, 91) == 1);
  for (n = 0; n < 5; n++) CHECK(rec_count(&outside, n) == 0);
  CHECK(rec_count(&outside, 90) == 0);
  CHECK(outside.channels_ok);

out:
  for (i = 0; i < 2; i++) eb_client_free(members[i]);
  eb_client_free(outsider);
  eb_client_free(sender);
  for (i = 0; i < 2; i++) {
    rec_destroy(&by_type[i]);
    rec_destroy(&star[i]);
    rec_destroy(&by_channel[i]);
  }
  rec_destroy(&outside);
  hub_kill(&h);
}

static void test_hub_restart_rejoins_and_receives(void) {
  hub h;
  char name[96], room[96], other[96], type[128], expected[256], v[512];
  eb_client *c = NULL, *sender = NULL;
  recorder got;
  sio_states st;
  uint64_t listener = 0;
  int port, rc = EB_ERR_CONNECTION;
  char *members = NULL;
  long deadline;
  memset(&st, 0, sizeof st);
  if (!hub_start(&h, 0)) {
    CHECK(0);
    hub_kill(&h);
    return;
  }
  port = h.port;
  h_unique(name, sizeof name, "c-rooms-restart");
  h_unique(room, sizeof room, "c-room");
  h_unique(other, sizeof other, "c-room-other");
  h_unique(type, sizeof type, "crooms.restart");
  rec_init(&got, type, type);
  c = hub_client(&h, name);
  sender = h_connected_client();
  if (c == NULL || sender == NULL) goto out;
  CHECK_OK(eb_on_state(c, on_state, &st, NULL, &listener));
  CHECK_OK(eb_join_room(c, room));
  CHECK_OK(eb_subscribe(c, type, NULL, rec_handler(), &got, NULL));
  publish_n(sender, room, type, 0);
  CHECK(rec_wait_n(&got, 0) == 1);

  hub_kill(&h);
  CHECK(h_wait_at_least(&st.disconnected, 1, WAIT_MS) >= 1);
  CHECK_FAILS(eb_join_room(c, other), EB_ERR_CONNECTION, "Socket.IO not connected");
  CHECK_STR(health_field(c, "status", v, sizeof v), "\"degraded\"");
  CHECK_STR(health_field(c, "checks.socketio.status", v, sizeof v), "\"fail\"");
  CHECK(h_wait_at_least(&st.reconnecting, 1, WAIT_MS) >= 1);

  if (!hub_start(&h, port)) { /* the same port */
    CHECK(0);
    goto out;
  }
  CHECK(h.port == port);
  /* Room calls fail until the hub connection is back; the first that succeeds already sees
   * the client rejoined (rooms are rejoined before the connection counts as up). */
  deadline = h_now_ms() + WAIT_MS;
  while (h_now_ms() < deadline) {
    rc = eb_get_room_members(c, room, &members);
    if (rc != EB_ERR_CONNECTION) break;
    h_sleep_ms(20);
  }
  CHECK_OK(rc);
  snprintf(expected, sizeof expected, "[\"%s\"]", name);
  CHECK_STR(members != NULL ? members : "(null)", expected);
  eb_string_free(members);
  CHECK(h_wait_at_least(&st.reconnected, 1, WAIT_MS) >= 1);
  CHECK_STR(health_field(c, "status", v, sizeof v), "\"healthy\"");
  CHECK_STR(health_field(c, "checks.socketio.details.reconnects", v, sizeof v), "1");
  CHECK_STR(stats_field(c, "activeRooms", v, sizeof v), "1");

  publish_n(sender, room, type, 1); /* after the restart: reaches the rejoined client */
  CHECK(rec_wait_n(&got, 1) == 1);
  CHECK(got.channels_ok);
  CHECK(rec_count(&got, 0) == 1);
  CHECK_OK(eb_off_state(c, listener));

out:
  eb_client_free(c);
  eb_client_free(sender);
  rec_destroy(&got);
  hub_kill(&h);
}

static void test_wrong_token(void) {
  hub h;
  char cfg[1024], name[96], v[64];
  eb_client *c = NULL;
  bool connected = true;
  char *state;
  if (!hub_start(&h, 0)) {
    CHECK(0);
    hub_kill(&h);
    return;
  }
  h_unique(name, sizeof name, "c-rooms-bad");
  CHECK_OK(eb_client_new(hub_config(cfg, sizeof cfg, name, h.port, "wrong", NULL), &c));
  CHECK_FAILS(eb_connect(c), EB_ERR_CONNECTION,
              "Socket.IO connection rejected by the hub: invalid token");
  CHECK_OK(eb_is_connected(c, &connected));
  CHECK(!connected);
  CHECK_FAILS(eb_join_room(c, "r"), EB_ERR_CONNECTION, "Socket.IO not connected");
  state = hub_get(&h, "/state");
  CHECK(state != NULL);
  if (state != NULL) {
    CHECK_STR(jget(state, "rejected", v, sizeof v), "1");
    CHECK_STR(jget(state, "sockets", v, sizeof v), "[]");
  }
  free(state);
  CHECK_OK(eb_client_free(c));
  hub_kill(&h);
}

static void test_unreachable_hub(void) {
  char cfg[1024], name[96], v[256];
  eb_client *strict = NULL, *patient = NULL;
  bool connected = false;
  int port = free_port();
  CHECK(port > 0);
  /* reconnection:false -> eb_connect fails */
  h_unique(name, sizeof name, "c-rooms-strict");
  hub_config(cfg, sizeof cfg, name, port, HUB_TOKEN, ",\"reconnection\":false");
  CHECK_OK(eb_client_new(cfg, &strict));
  CHECK_STATUS(eb_connect(strict), EB_ERR_CONNECTION);
  CHECK(strstr(eb_last_error(), "Socket.IO connection to 127.0.0.1") != NULL);
  CHECK_OK(eb_is_connected(strict, &connected));
  CHECK(!connected);
  /* default: Redis works, the hub is retried, rooms wait for it */
  h_unique(name, sizeof name, "c-rooms-patient");
  CHECK_OK(eb_client_new(hub_config(cfg, sizeof cfg, name, port, HUB_TOKEN, NULL), &patient));
  CHECK_OK(eb_connect(patient));
  CHECK_OK(eb_is_connected(patient, &connected));
  CHECK(connected);
  CHECK_STR(health_field(patient, "status", v, sizeof v), "\"degraded\"");
  CHECK_STR(health_field(patient, "checks.socketio.status", v, sizeof v), "\"fail\"");
  CHECK_FAILS(eb_join_room(patient, "r"), EB_ERR_CONNECTION, "Socket.IO not connected");
  CHECK_OK(eb_publish(patient, "crooms.unaffected", "{}", NULL, NULL));
  CHECK_OK(eb_client_free(strict));
  CHECK_OK(eb_client_free(patient));
}

static void test_without_client_config(void) {
  eb_client *c = NULL;
  char *out = NULL, *health = NULL, v[64];
  CHECK_OK(eb_client_new(h_config(), &c));
  /* before eb_connect, and connected: the same error */
  CHECK_FAILS(eb_join_room(c, "lobby"), EB_ERR_CONNECTION, "Socket.IO not connected");
  CHECK_OK(eb_connect(c));
  CHECK_FAILS(eb_join_room(c, "lobby"), EB_ERR_CONNECTION, "Socket.IO not connected");
  CHECK_FAILS(eb_leave_room(c, "lobby"), EB_ERR_CONNECTION, "Socket.IO not connected");
  out = v; /* overwritten with NULL on failure */
  CHECK_FAILS(eb_get_room_members(c, "lobby", &out), EB_ERR_CONNECTION,
              "Socket.IO not connected");
  CHECK(out == NULL);
  CHECK_OK(eb_health_check(c, &health));
  CHECK(health != NULL && strstr(health, "\"socketio\"") == NULL);
  eb_string_free(health);
  CHECK_STR(stats_field(c, "activeRooms", v, sizeof v), "0");
  CHECK_STR(stats_field(c, "activeConnections", v, sizeof v), "2");
  CHECK_OK(eb_client_free(c));
}

static void test_bad_arguments(void) {
  hub h;
  char name[96], dummy = 0;
  char *out;
  eb_client *plain = h_connected_client(), *c = NULL;
  eb_client *clients[2];
  int i;
  if (!hub_start(&h, 0)) {
    CHECK(0);
    hub_kill(&h);
    eb_client_free(plain);
    return;
  }
  h_unique(name, sizeof name, "c-rooms-args");
  c = hub_client(&h, name);
  clients[0] = plain;
  clients[1] = c;
  for (i = 0; i < 2; i++) { /* without and with the hub */
    eb_client *k = clients[i];
    if (k == NULL) continue;
    CHECK_FAILS(eb_join_room(k, NULL), EB_ERR_INVALID_ARGUMENT, "room is NULL");
    CHECK_FAILS(eb_leave_room(k, NULL), EB_ERR_INVALID_ARGUMENT, "room is NULL");
    out = &dummy;
    CHECK_FAILS(eb_get_room_members(k, NULL, &out), EB_ERR_INVALID_ARGUMENT, "room is NULL");
    CHECK(out == NULL);
    CHECK_FAILS(eb_get_room_members(k, "r", NULL), EB_ERR_INVALID_ARGUMENT,
                "members_json_out is NULL");
    CHECK_FAILS(eb_join_room(k, ""), EB_ERR_VALIDATION, "Room name cannot be empty");
    CHECK_FAILS(eb_leave_room(k, ""), EB_ERR_VALIDATION, "Room name cannot be empty");
    out = &dummy;
    CHECK_FAILS(eb_get_room_members(k, "", &out), EB_ERR_VALIDATION, "Room name cannot be empty");
    CHECK(out == NULL);
    CHECK_FAILS(eb_join_room(k, "\xff\xfe"), EB_ERR_INVALID_ARGUMENT, "room is not valid UTF-8");
    CHECK_STATUS(eb_publish_to_room(k, NULL, "crooms.x", "1", NULL, NULL),
                 EB_ERR_INVALID_ARGUMENT);
  }
  CHECK_FAILS(eb_join_room(NULL, "r"), EB_ERR_INVALID_ARGUMENT, "client is NULL");
  CHECK_FAILS(eb_leave_room(NULL, "r"), EB_ERR_INVALID_ARGUMENT, "client is NULL");
  out = &dummy;
  CHECK_FAILS(eb_get_room_members(NULL, "r", &out), EB_ERR_INVALID_ARGUMENT, "client is NULL");
  CHECK(out == NULL);
  if (c != NULL) { /* still usable after all that */
    char room[96], got[256], expected[256];
    h_unique(room, sizeof room, "c-room");
    CHECK_OK(eb_join_room(c, room));
    snprintf(expected, sizeof expected, "[\"%s\"]", name);
    members_of(c, room, got, sizeof got);
    CHECK_STR(got, expected);
  }
  CHECK_OK(eb_client_free(c));
  /* a freed handle is refused, not read */
  CHECK_FAILS(eb_join_room(c, "r"), EB_ERR_INVALID_ARGUMENT,
              "client is a freed eb_client (a stale handle: used after eb_client_free)");
  CHECK_OK(eb_client_free(plain));
  hub_kill(&h);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  CHECK_OK(eb_set_log_callback(h_quiet_log, NULL, NULL));
  RUN(test_without_client_config);
  RUN(test_bad_arguments);
  RUN(test_join_leave_members);
  RUN(test_room_events_reach_exactly_the_members_once);
  RUN(test_hub_restart_rejoins_and_receives);
  RUN(test_wrong_token);
  RUN(test_unreachable_hub);
  /* leave nothing behind for valgrind: threads stopped, every client freed */
  CHECK_OK(eb_shutdown());
  return h_summary();
}
