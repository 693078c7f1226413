/* Just enough JSON scanning for the C example programs (the notifier, the cross-language
 * participant and the C tests): find a key's raw value in an object, skip values. Not a
 * parser: no validation, keys compared as raw text. The library hands events over as JSON
 * text, so these programs only need to cut values out of it. */
#ifndef EVENT_BUS_EXAMPLES_JSON_SCAN_H
#define EVENT_BUS_EXAMPLES_JSON_SCAN_H

#include <string.h>

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/* p at '"'; returns the position after the closing quote (or NULL if unterminated). */
static const char *skip_string(const char *p) {
  for (p++; *p; p++) {
    if (*p == '\\') {
      if (!*++p) return NULL;
    } else if (*p == '"') {
      return p + 1;
    }
  }
  return NULL;
}

/* Returns the position just after the JSON value starting at p (after whitespace), or NULL. */
static const char *skip_value(const char *p) {
  p = skip_ws(p);
  if (*p == '"') return skip_string(p);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (*p) {
      if (*p == '"') {
        if (!(p = skip_string(p))) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (*p && !strchr(",]} \t\r\n", *p)) p++; /* number, true, false, null */
  return p;
}

/* In the object at p, the value of `key` (start; *end set after it), or NULL. Keys are compared
 * as raw text (the plan's keys are plain ASCII). */
static const char *obj_get(const char *p, const char *key, const char **end) {
  size_t klen = strlen(key);
  p = skip_ws(p);
  if (*p != '{') return NULL;
  p = skip_ws(p + 1);
  while (*p == '"') {
    const char *kend = skip_string(p);
    if (!kend) return NULL;
    int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
    p = skip_ws(kend);
    if (*p != ':') return NULL;
    const char *v = skip_ws(p + 1);
    const char *vend = skip_value(v);
    if (!vend) return NULL;
    if (match) {
      *end = vend;
      return v;
    }
    p = skip_ws(vend);
    if (*p == ',') p = skip_ws(p + 1);
  }
  return NULL;
}

#endif
