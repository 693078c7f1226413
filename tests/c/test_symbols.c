/*
 * References every function the header declares (scripts/test-c.sh checks this list against
 * the library's exported eb_* symbols), so a missing or renamed export fails to link.
 */
#include <stdio.h>

#include "event_bus.h"

typedef void (*any_fn)(void);

static const struct {
  const char *name;
  any_fn fn;
} symbols[] = {
    {"eb_broadcast", (any_fn)eb_broadcast},
    {"eb_client_free", (any_fn)eb_client_free},
    {"eb_client_new", (any_fn)eb_client_new},
    {"eb_connect", (any_fn)eb_connect},
    {"eb_dead_letters", (any_fn)eb_dead_letters},
    {"eb_disconnect", (any_fn)eb_disconnect},
    {"eb_get_room_members", (any_fn)eb_get_room_members},
    {"eb_get_stats", (any_fn)eb_get_stats},
    {"eb_health_check", (any_fn)eb_health_check},
    {"eb_is_connected", (any_fn)eb_is_connected},
    {"eb_join_room", (any_fn)eb_join_room},
    {"eb_last_error", (any_fn)eb_last_error},
    {"eb_leave_room", (any_fn)eb_leave_room},
    {"eb_matches_pattern", (any_fn)eb_matches_pattern},
    {"eb_metrics", (any_fn)eb_metrics},
    {"eb_off_state", (any_fn)eb_off_state},
    {"eb_on_state", (any_fn)eb_on_state},
    {"eb_publish", (any_fn)eb_publish},
    {"eb_publish_batch", (any_fn)eb_publish_batch},
    {"eb_publish_to_room", (any_fn)eb_publish_to_room},
    {"eb_publish_to_user", (any_fn)eb_publish_to_user},
    {"eb_purge_dead_letters", (any_fn)eb_purge_dead_letters},
    {"eb_replay_dead_letters", (any_fn)eb_replay_dead_letters},
    {"eb_set_log_callback", (any_fn)eb_set_log_callback},
    {"eb_shutdown", (any_fn)eb_shutdown},
    {"eb_strerror", (any_fn)eb_strerror},
    {"eb_string_free", (any_fn)eb_string_free},
    {"eb_subscribe", (any_fn)eb_subscribe},
    {"eb_unsubscribe", (any_fn)eb_unsubscribe},
    {"eb_version", (any_fn)eb_version},
};

int main(int argc, char **argv) {
  size_t i, n = sizeof symbols / sizeof symbols[0];
  int missing = 0;
  (void)argv;
  for (i = 0; i < n; i++) {
    if (symbols[i].fn == NULL) missing++;
    if (argc > 1) printf("%s\n", symbols[i].name); /* --list: for the export check */
  }
  if (argc == 1) printf("symbols: %zu referenced, %d missing\n", n, missing);
  return missing == 0 ? 0 : 1;
}
