/* Example plugin in C: the fan-out of examples/fanout, on the C guest SDK.
 *
 * Input: {"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"} (all optional), plus
 * "mode": "temporary" (counter calls in temporary mode) or "errors" (report error kinds).
 * Build: `scripts/build-guests.sh c` (wit-bindgen c, clang for wasm32-wasi, then
 * `mcp-registry componentize`; docs/authoring.md walks through it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_registry_guest.h"

#define MAX_SERVERS 8

void exports_orchestrator_describe(orchestrator_string_t *ret) {
  mrg_return(ret,
             "{\"name\": \"c-fanout\", \"description\": \"Open a session on several servers and "
             "call them concurrently (C)\", \"inputSchema\": {\"type\": \"object\", "
             "\"properties\": {\"servers\": {\"type\": \"array\", \"items\": {\"type\": "
             "\"string\"}}, \"rounds\": {\"type\": \"integer\"}, \"message\": {\"type\": "
             "\"string\"}, \"mode\": {\"type\": \"string\", \"enum\": [\"fanout\", "
             "\"temporary\", \"errors\"]}}}, \"requires\": {\"servers\": [\"alpha\", "
             "\"beta\"], \"tools\": []}}");
}

/* Fails `run` with the error's text. */
static bool fail(orchestrator_string_t *err, mrg_error *e) {
  char *text = mrg_error_text(e);
  mcp_registry_plugin_types_error_free(e);
  mrg_return(err, text);
  free(text);
  return false;
}

/* A finished call's text, or NULL (the error in `e`). */
static char *text_of(bool ok, mrg_result *r) {
  if (!ok) return NULL;
  char *text = mrg_result_text(r);
  mcp_registry_plugin_types_call_result_free(r);
  return text;
}

/* The kind of error a call gives ("ok" if it succeeds). */
static const char *kind_of(bool ok, mrg_result *r, mrg_error *e) {
  if (ok) {
    mcp_registry_plugin_types_call_result_free(r);
    return "ok";
  }
  const char *kind = mrg_error_kind(e);
  mcp_registry_plugin_types_error_free(e);
  return kind;
}

static bool errors(const char *server, orchestrator_string_t *ret, orchestrator_string_t *err) {
  mrg_session s;
  mrg_result r;
  mrg_error e;
  if (!mrg_session_open(&server, 1, &s, &e)) return fail(err, &e);
  char echo[128], nope[128], failing[128];
  snprintf(echo, sizeof echo, "%s__echo", server);
  snprintf(nope, sizeof nope, "%s__nope", server);
  snprintf(failing, sizeof failing, "%s__fail", server);
  const char *array_args = kind_of(mrg_session_call(s, echo, "[1]", &r, &e), &r, &e);
  const char *unknown_tool = kind_of(mrg_session_call(s, nope, NULL, &r, &e), &r, &e);
  const char *unknown_server = kind_of(mrg_call_tool("nosuch__echo", NULL, &r, &e), &r, &e);
  const char *bad_name = kind_of(mrg_session_call(s, "echo", NULL, &r, &e), &r, &e);
  bool ok = mrg_session_call(s, failing, "{\"message\": \"m\"}", &r, &e);
  mrg_session_close(s);
  if (!ok) return fail(err, &e);
  bool tool_error = r.is_error;
  mcp_registry_plugin_types_call_result_free(&r);

  mrg_buf out = {0};
  mrg_buf_raw(&out, "{\"array_args\": ");
  mrg_buf_string(&out, array_args);
  mrg_buf_raw(&out, ", \"unknown_tool\": ");
  mrg_buf_string(&out, unknown_tool);
  mrg_buf_raw(&out, ", \"unknown_server\": ");
  mrg_buf_string(&out, unknown_server);
  mrg_buf_raw(&out, ", \"bad_name\": ");
  mrg_buf_string(&out, bad_name);
  mrg_buf_raw(&out, tool_error ? ", \"tool_error\": true}" : ", \"tool_error\": false}");
  mrg_return(ret, out.data);
  free(out.data);
  return true;
}

static bool temporary(const char *server, long long rounds, orchestrator_string_t *ret,
                      orchestrator_string_t *err) {
  char counter[128];
  snprintf(counter, sizeof counter, "%s__counter", server);
  mrg_buf out = {0};
  mrg_buf_raw(&out, "{\"counters\": [");
  for (long long i = 0; i < rounds; i++) {
    mrg_result r;
    mrg_error e;
    char *text = text_of(mrg_call_tool(counter, NULL, &r, &e), &r);
    if (!text) {
      free(out.data);
      return fail(err, &e);
    }
    if (i) mrg_buf_raw(&out, ", ");
    mrg_buf_int(&out, atoll(text));
    free(text);
  }
  mrg_buf_raw(&out, "]}");
  mrg_return(ret, out.data);
  free(out.data);
  return true;
}

/* Starts `tool` on every server at once, then collects the texts in order. */
static bool fan_out(mrg_session s, const char *const *names, size_t n, const char *tool,
                    const char *arguments, char **texts, mrg_error *e) {
  mrg_call calls[MAX_SERVERS];
  size_t started = 0;
  bool ok = true;
  for (; started < n; started++) {
    char name[128];
    snprintf(name, sizeof name, "%s__%s", names[started], tool);
    if (!mrg_session_start(s, name, arguments, &calls[started], e)) {
      ok = false;
      break;
    }
  }
  for (size_t i = 0; i < started; i++) {
    mrg_result r;
    mrg_error call_error;
    texts[i] = text_of(mrg_wait(calls[i], &r, &call_error), &r);
    if (!texts[i]) {
      if (ok) *e = call_error;
      else mcp_registry_plugin_types_error_free(&call_error);
      ok = false;
    }
  }
  return ok;
}

#define MAX_ROUNDS 128

/* The fan-out: `rounds` of counter calls on every server at once, one echo each, and each
 * server's pid, in one session. */
static bool fanout(const char *const *names, size_t n, long long rounds, const char *message,
                   orchestrator_string_t *ret, orchestrator_string_t *err) {
  if (rounds < 0 || rounds > MAX_ROUNDS) {
    mrg_return(err, "rounds must be between 0 and 128");
    return false;
  }
  mrg_session s;
  mrg_error e;
  if (!mrg_session_open(names, n, &s, &e)) return fail(err, &e);
  mrg_log(MCP_REGISTRY_PLUGIN_LOG_LEVEL_INFO, "session open");
  long long counts[MAX_SERVERS][MAX_ROUNDS];
  char *texts[MAX_SERVERS];
  bool ok = true;
  for (long long round = 0; ok && round < rounds; round++) {
    ok = fan_out(s, names, n, "counter", NULL, texts, &e);
    for (size_t i = 0; ok && i < n; i++) {
      counts[i][round] = atoll(texts[i]);
      free(texts[i]);
    }
  }
  mrg_buf echo_args = {0}, out = {0};
  mrg_buf_raw(&echo_args, "{\"message\": ");
  mrg_buf_string(&echo_args, message);
  mrg_buf_raw(&echo_args, "}");
  if (ok) ok = fan_out(s, names, n, "echo", echo_args.data, texts, &e);
  free(echo_args.data);
  if (ok) {
    mrg_buf_raw(&out, "{\"servers\": [");
    for (size_t i = 0; i < n; i++) {
      mrg_buf_raw(&out, i ? ", " : "");
      mrg_buf_string(&out, names[i]);
    }
    mrg_buf_raw(&out, "], \"counters\": {");
    for (size_t i = 0; i < n; i++) {
      mrg_buf_raw(&out, i ? ", " : "");
      mrg_buf_string(&out, names[i]);
      mrg_buf_raw(&out, ": [");
      for (long long round = 0; round < rounds; round++) {
        mrg_buf_raw(&out, round ? ", " : "");
        mrg_buf_int(&out, counts[i][round]);
      }
      mrg_buf_raw(&out, "]");
    }
    mrg_buf_raw(&out, "}, \"echoes\": [");
    for (size_t i = 0; i < n; i++) {
      mrg_buf_raw(&out, i ? ", " : "");
      mrg_buf_string(&out, texts[i]);
      free(texts[i]);
    }
    mrg_buf_raw(&out, "], \"pids\": {");
  }
  for (size_t i = 0; ok && i < n; i++) {
    char pid_tool[128];
    mrg_result r;
    snprintf(pid_tool, sizeof pid_tool, "%s__pid", names[i]);
    char *pid = text_of(mrg_session_call(s, pid_tool, NULL, &r, &e), &r);
    ok = pid != NULL;
    if (ok) {
      mrg_buf_raw(&out, i ? ", " : "");
      mrg_buf_string(&out, names[i]);
      mrg_buf_raw(&out, ": ");
      mrg_buf_string(&out, pid);
    }
    free(pid);
  }
  /* The session is closed here, whatever happened above. */
  mrg_session_close(s);
  if (ok) {
    mrg_buf_raw(&out, "}}");
    mrg_return(ret, out.data);
  } else {
    fail(err, &e);
  }
  free(out.data);
  return ok;
}

bool exports_orchestrator_run(orchestrator_string_t *input, orchestrator_string_t *ret,
                              orchestrator_string_t *err) {
  char *args = mrg_cstr(input);
  orchestrator_string_free(input);

  /* The servers: input.servers, or the first two this plugin may use. */
  char *names[MAX_SERVERS];
  size_t n = 0;
  const char *item;
  for (; n < MAX_SERVERS && (item = mrg_json_item(mrg_json_get(args, "servers"), n)); n++)
    if (!(names[n] = mrg_json_string(item))) break; /* not a string: the list ends there */
  orchestrator_list_string_t allowed = {0};
  if (!n) {
    mcp_registry_plugin_registry_servers(&allowed);
    for (; n < 2 && n < allowed.len; n++) names[n] = mrg_cstr(&allowed.ptr[n]);
    orchestrator_list_string_free(&allowed);
  }
  long long rounds = 3;
  mrg_json_int(mrg_json_get(args, "rounds"), &rounds);
  char *mode = mrg_json_string(mrg_json_get(args, "mode"));
  char *message = mrg_json_string(mrg_json_get(args, "message"));
  free(args);

  bool ok;
  if (!n) {
    mrg_return(err, "no servers");
    ok = false;
  } else if (mode && !strcmp(mode, "temporary")) {
    ok = temporary(names[0], rounds, ret, err);
  } else if (mode && !strcmp(mode, "errors")) {
    ok = errors(names[0], ret, err);
  } else {
    ok = fanout((const char *const *)names, n, rounds, message ? message : "hello from c", ret,
                err);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(mode);
  free(message);
  return ok;
}
