/* The helpers of mcp_registry_guest.h. Allocation failure aborts (as the bindings' own
 * allocator does): a plugin has no way to report it that the host would not see as a trap. */
#include "mcp_registry_guest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *must(void *p) {
  if (!p) abort();
  return p;
}

orchestrator_string_t mrg_view(const char *s) {
  orchestrator_string_t out = {(uint8_t *)s, s ? strlen(s) : 0};
  return out;
}

void mrg_return(orchestrator_string_t *out, const char *s) {
  orchestrator_string_dup(out, s);
}

char *mrg_cstr(const orchestrator_string_t *s) {
  char *out = must(malloc(s->len + 1));
  memcpy(out, s->ptr, s->len);
  out[s->len] = 0;
  return out;
}

const char *mrg_error_kind(const mrg_error *e) {
  switch (e->tag) {
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_NOT_FOUND: return "not-found";
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_DENIED: return "denied";
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_INVALID_INPUT: return "invalid-input";
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_SERVER_FAILED: return "server-failed";
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_TIMEOUT: return "timeout";
    case MCP_REGISTRY_PLUGIN_TYPES_ERROR_LIMIT_EXCEEDED: return "limit-exceeded";
    default: return "unknown";
  }
}

char *mrg_error_text(const mrg_error *e) {
  const char *kind = mrg_error_kind(e);
  /* Every case of the variant carries a string at the same place. */
  const orchestrator_string_t *m = &e->val.not_found;
  size_t n = strlen(kind) + 2 + m->len + 1;
  char *out = must(malloc(n));
  snprintf(out, n, "%s: %.*s", kind, (int)m->len, (const char *)m->ptr);
  return out;
}

bool mrg_call_tool(const char *name, const char *arguments, mrg_result *ret, mrg_error *err) {
  orchestrator_string_t n = mrg_view(name), a = mrg_view(arguments ? arguments : "{}");
  return mcp_registry_plugin_registry_call_tool(&n, &a, ret, err);
}

bool mrg_session_open(const char *const *servers, size_t count, mrg_session *ret,
                      mrg_error *err) {
  orchestrator_string_t *names = must(calloc(count ? count : 1, sizeof *names));
  for (size_t i = 0; i < count; i++) names[i] = mrg_view(servers[i]);
  orchestrator_list_string_t list = {names, count};
  bool ok = mcp_registry_plugin_registry_static_session_open(&list, ret, err);
  free(names);
  return ok;
}

bool mrg_session_call(mrg_session session, const char *name, const char *arguments,
                      mrg_result *ret, mrg_error *err) {
  orchestrator_string_t n = mrg_view(name), a = mrg_view(arguments ? arguments : "{}");
  return mcp_registry_plugin_registry_method_session_call_tool(
      mcp_registry_plugin_registry_borrow_session(session), &n, &a, ret, err);
}

bool mrg_session_start(mrg_session session, const char *name, const char *arguments,
                       mrg_call *ret, mrg_error *err) {
  orchestrator_string_t n = mrg_view(name), a = mrg_view(arguments ? arguments : "{}");
  return mcp_registry_plugin_registry_method_session_start_call(
      mcp_registry_plugin_registry_borrow_session(session), &n, &a, ret, err);
}

bool mrg_wait(mrg_call call, mrg_result *ret, mrg_error *err) {
  mcp_registry_plugin_registry_borrow_future_call_result_t borrowed =
      mcp_registry_plugin_registry_borrow_future_call_result(call);
  mcp_registry_plugin_registry_own_pollable_t ready =
      mcp_registry_plugin_registry_method_future_call_result_subscribe(borrowed);
  wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
  wasi_io_poll_pollable_drop_own(ready);
  mcp_registry_plugin_registry_result_call_result_error_t outcome;
  bool done = mcp_registry_plugin_registry_method_future_call_result_get(borrowed, &outcome);
  mcp_registry_plugin_registry_future_call_result_drop_own(call);
  if (!done) {
    /* Cannot happen after the pollable was ready; reported rather than trusted. */
    err->tag = MCP_REGISTRY_PLUGIN_TYPES_ERROR_SERVER_FAILED;
    orchestrator_string_dup(&err->val.server_failed, "the call was not finished when ready");
    return false;
  }
  if (outcome.is_err) {
    *err = outcome.val.err;
    return false;
  }
  *ret = outcome.val.ok;
  return true;
}

void mrg_session_close(mrg_session session) {
  mcp_registry_plugin_registry_session_drop_own(session);
}

void mrg_log(mcp_registry_plugin_log_level_t level, const char *message) {
  orchestrator_string_t m = mrg_view(message);
  mcp_registry_plugin_log_log(level, &m);
}

/* ---- JSON reading: a validating skip over one value, and lookups built on it ---- */

#define MRG_JSON_MAX_DEPTH 64

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/* The end of the string starting at the quote `p`, or NULL. */
static const char *skip_string(const char *p) {
  for (p++; *p; p++) {
    if (*p == '"') return p + 1;
    if (*p == '\\' && !*++p) return NULL;
  }
  return NULL;
}

/* The end of the value at `p`, or NULL if there is none (or it nests too deep). */
static const char *skip(const char *p, int depth) {
  p = ws(p);
  if (depth > MRG_JSON_MAX_DEPTH) return NULL;
  if (*p == '"') return skip_string(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        if (*p != '"' || !(p = skip_string(p))) return NULL;
        p = ws(p);
        if (*p++ != ':') return NULL;
      }
      if (!(p = skip(p, depth + 1))) return NULL;
      p = ws(p);
      if (*p == close) return p + 1;
      if (*p++ != ',') return NULL;
      p = ws(p);
    }
  }
  if (!strncmp(p, "true", 4)) return p + 4;
  if (!strncmp(p, "false", 5)) return p + 5;
  if (!strncmp(p, "null", 4)) return p + 4;
  const char *start = p;
  if (*p == '-') p++;
  while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
         *p == '-')
    p++;
  return p > start ? p : NULL;
}

/* Decodes the string at the quote `p` into `out` (when not NULL); its decoded length, or -1. */
static long decode(const char *p, char *out) {
  long n = 0;
  for (p++; *p && *p != '"'; p++) {
    unsigned c = (unsigned char)*p;
    if (c == '\\') {
      p++;
      switch (*p) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          unsigned cp = 0;
          for (int i = 1; i <= 4; i++) {
            char h = p[i];
            unsigned v = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                         : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                         : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                                : 16;
            if (v == 16) return -1;
            cp = cp << 4 | v;
          }
          p += 4;
          /* A surrogate pair is two escapes. */
          if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
            unsigned lo = (unsigned)strtoul((char[]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
            if (lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            }
          }
          char utf8[4];
          int len = cp < 0x80 ? (utf8[0] = (char)cp, 1)
                    : cp < 0x800
                        ? (utf8[0] = (char)(0xC0 | cp >> 6), utf8[1] = (char)(0x80 | (cp & 0x3F)), 2)
                    : cp < 0x10000
                        ? (utf8[0] = (char)(0xE0 | cp >> 12), utf8[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
                           utf8[2] = (char)(0x80 | (cp & 0x3F)), 3)
                        : (utf8[0] = (char)(0xF0 | cp >> 18), utf8[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
                           utf8[2] = (char)(0x80 | (cp >> 6 & 0x3F)), utf8[3] = (char)(0x80 | (cp & 0x3F)), 4);
          if (out) memcpy(out + n, utf8, (size_t)len);
          n += len;
          continue;
        }
        case 0: return -1;
        default: c = (unsigned char)*p; /* \" \\ \/ */
      }
    }
    if (out) out[n] = (char)c;
    n++;
  }
  return *p == '"' ? n : -1;
}

const char *mrg_json_get(const char *json, const char *key) {
  if (!json || !skip(json, 0)) return NULL;
  const char *p = ws(json);
  if (*p != '{') return NULL;
  p = ws(p + 1);
  size_t want = strlen(key);
  while (*p == '"') {
    long n = decode(p, NULL);
    bool match = false;
    if (n == (long)want) {
      char *k = must(malloc((size_t)n + 1));
      decode(p, k);
      match = !memcmp(k, key, want);
      free(k);
    }
    p = ws(skip_string(p));
    p = ws(p + 1); /* ':' */
    if (match) return p;
    p = ws(skip(p, 0));
    if (*p != ',') return NULL;
    p = ws(p + 1);
  }
  return NULL;
}

const char *mrg_json_item(const char *json, size_t index) {
  if (!json || !skip(json, 0)) return NULL;
  const char *p = ws(json);
  if (*p != '[') return NULL;
  p = ws(p + 1);
  if (*p == ']') return NULL;
  for (size_t i = 0;; i++) {
    if (i == index) return p;
    p = ws(skip(p, 0));
    if (*p != ',') return NULL;
    p = ws(p + 1);
  }
}

char *mrg_json_string(const char *json) {
  if (!json) return NULL;
  const char *p = ws(json);
  if (*p != '"') return NULL;
  long n = decode(p, NULL);
  if (n < 0) return NULL;
  char *out = must(malloc((size_t)n + 1));
  decode(p, out);
  out[n] = 0;
  return out;
}

bool mrg_json_int(const char *json, long long *out) {
  if (!json) return false;
  char *end;
  const char *p = ws(json);
  long long n = strtoll(p, &end, 10);
  if (end == p || *end == '.' || *end == 'e' || *end == 'E') return false;
  *out = n;
  return true;
}

bool mrg_json_true(const char *json) {
  return json && !strncmp(ws(json), "true", 4);
}

char *mrg_json_value(const char *json) {
  if (!json) return NULL;
  const char *start = ws(json), *end = skip(start, 0);
  if (!end) return NULL;
  char *out = must(malloc((size_t)(end - start) + 1));
  memcpy(out, start, (size_t)(end - start));
  out[end - start] = 0;
  return out;
}

char *mrg_result_text(const mrg_result *r) {
  char *content = mrg_cstr(&r->content);
  mrg_buf text = {0};
  const char *item;
  for (size_t i = 0; (item = mrg_json_item(content, i)); i++) {
    char *type = mrg_json_string(mrg_json_get(item, "type"));
    char *t = type && !strcmp(type, "text") ? mrg_json_string(mrg_json_get(item, "text")) : NULL;
    if (t) {
      if (text.len) mrg_buf_raw(&text, "\n");
      mrg_buf_raw(&text, t);
    }
    free(t);
    free(type);
  }
  free(content);
  if (!text.data) mrg_buf_raw(&text, "");
  return text.data;
}

/* ---- JSON writing ---- */

static void reserve(mrg_buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + more + 1) cap *= 2;
  b->data = must(realloc(b->data, cap));
  b->cap = cap;
}

void mrg_buf_raw(mrg_buf *b, const char *text) {
  size_t n = strlen(text);
  reserve(b, n);
  memcpy(b->data + b->len, text, n + 1);
  b->len += n;
}

void mrg_buf_string(mrg_buf *b, const char *s) {
  mrg_buf_raw(b, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c, esc[2] = 0;
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
    } else {
      esc[0] = (char)c, esc[1] = 0;
    }
    mrg_buf_raw(b, esc);
  }
  mrg_buf_raw(b, "\"");
}

void mrg_buf_int(mrg_buf *b, long long n) {
  char text[24];
  snprintf(text, sizeof text, "%lld", n);
  mrg_buf_raw(b, text);
}
