/*
 * The C runner of the conformance test (tests/cross/conformance/conformance.py): runs every case
 * through the C ABI and prints one JSON line per case,
 *   {"name": ..., "outcome": "ok" | CODE, "message": eb_last_error() or null}.
 *
 * Input (the driver writes it): the first line is the client config JSON; then one
 * tab-separated line per case, `name\top\targ...`:
 *   name  config     CONFIG_JSON                 eb_client_new (then freed)
 *   name  subscribe  PATTERN  OPTIONS_JSON       eb_subscribe on the connected client
 *   name  publish    TYPE  DATA_JSON  OPTIONS_JSON   eb_publish on the connected client
 * An empty OPTIONS_JSON field means NULL options. The subscribe and publish cases share one
 * client made from the first line and connected (the memory transport: no Redis needed).
 *
 * CODE is the core's code string of the status (ErrorKind::code in core/src/error.rs), so the
 * three faces' outcomes compare as they are. Exit status: 0 when every case ran (whatever its
 * outcome), 1 when the input or the shared client is unusable.
 *
 *   cc -std=c11 run_c.c -o conformance-c $(pkg-config --cflags --libs event_bus)
 *   ./conformance-c cases.tsv
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_bus.h"

/* The core's code for a status (what Node's err.code and Python's exc.code carry). */
static const char *code_of(eb_status rc) {
  switch (rc) {
    case EB_OK: return "ok";
    case EB_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case EB_ERR_CONFIG: return "CONFIG_ERROR";
    case EB_ERR_VALIDATION: return "VALIDATION_ERROR";
    case EB_ERR_NOT_CONNECTED: return "NOT_CONNECTED";
    case EB_ERR_CONNECTION: return "CONNECTION_ERROR";
    case EB_ERR_TIMEOUT: return "TIMEOUT";
    case EB_ERR_QUEUE_FULL: return "QUEUE_FULL";
    case EB_ERR_OUTCOME_UNKNOWN: return "OUTCOME_UNKNOWN";
    case EB_ERR_PROTOCOL: return "PROTOCOL_ERROR";
    case EB_ERR_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case EB_ERR_CLOSED: return "CLOSED";
    case EB_ERR_HANDLER: return "HANDLER_ERROR";
    case EB_ERR_UNSUPPORTED: return "NOT_SUPPORTED";
    case EB_ERR_INTERNAL: return "INTERNAL_ERROR";
    /* A caught panic is an internal error to the other faces too. */
    case EB_ERR_PANIC: return "INTERNAL_ERROR";
    /* C only (no such subscription or listener); never an outcome of these ops. */
    case EB_ERR_NOT_FOUND: return "NOT_FOUND";
  }
  return "UNKNOWN_STATUS";
}

/* Prints `s` as a JSON string (quotes included). */
static void put_json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': fputs("\\\"", stdout); break;
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      case '\b': fputs("\\b", stdout); break;
      case '\f': fputs("\\f", stdout); break;
      default:
        if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p); /* UTF-8 bytes pass through: the library's messages are UTF-8 */
    }
  }
  putchar('"');
}

static void report(const char *name, eb_status rc) {
  fputs("{\"name\":", stdout);
  put_json_string(name);
  fputs(",\"outcome\":", stdout);
  put_json_string(code_of(rc));
  fputs(",\"message\":", stdout);
  if (rc == EB_OK) fputs("null", stdout);
  else put_json_string(eb_last_error());
  fputs("}\n", stdout);
  fflush(stdout);
}

/* Splits `line` in place at tabs into at most `max` fields; returns how many there were (empty
 * fields count). */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  char *p = line;
  for (;;) {
    if (n == max) return max + 1;
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) return n;
    *tab = '\0';
    p = tab + 1;
  }
}

static const char *opt_field(const char *f) { return f[0] == '\0' ? NULL : f; }

static int noop_handler(const eb_event *ev, void *ctx) {
  (void)ev;
  (void)ctx;
  return 0;
}

/* Runs one case; returns 0, or -1 when the line is malformed. */
static int run_case(eb_client *client, char **f, int n) {
  const char *name = f[0], *op = n > 1 ? f[1] : "";
  eb_status rc;
  if (strcmp(op, "config") == 0 && n == 3) {
    eb_client *c = NULL;
    rc = eb_client_new(f[2], &c);
    report(name, rc);
    if (rc == EB_OK) eb_client_free(c);
  } else if (strcmp(op, "subscribe") == 0 && n == 4) {
    eb_handler h = {noop_handler, NULL};
    char *id = NULL;
    rc = eb_subscribe(client, f[2], opt_field(f[3]), h, NULL, &id);
    report(name, rc);
    if (rc == EB_OK) {
      /* Each case starts from the same client: drop what this one added. */
      eb_unsubscribe(client, id);
      eb_string_free(id);
    }
  } else if (strcmp(op, "publish") == 0 && n == 5) {
    eb_publish_result result;
    rc = eb_publish(client, f[2], f[3], opt_field(f[4]), &result);
    report(name, rc);
  } else {
    fprintf(stderr, "run_c: case %s: unknown op %s or wrong field count %d\n", name, op, n);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASES.tsv\n", argv[0]);
    return 1;
  }
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  eb_client *client = NULL;
  eb_status rc;
  int status = 0;

  if ((len = getline(&line, &cap, in)) <= 0) {
    fprintf(stderr, "run_c: %s is empty (the first line is the client config)\n", argv[1]);
    free(line);
    fclose(in);
    return 1;
  }
  if (line[len - 1] == '\n') line[--len] = '\0';
  if ((rc = eb_client_new(line, &client)) != EB_OK || (rc = eb_connect(client)) != EB_OK) {
    fprintf(stderr, "run_c: the shared client failed: %s: %s\n", eb_strerror(rc), eb_last_error());
    status = 1;
  }

  while (status == 0 && (len = getline(&line, &cap, in)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    if (len == 0) continue;
    char *fields[6];
    int n = split_tabs(line, fields, 5);
    if (run_case(client, fields, n) != 0) status = 1;
  }

  free(line);
  fclose(in);
  eb_client_free(client); /* NULL is a no-op */
  eb_shutdown();
  return status;
}
