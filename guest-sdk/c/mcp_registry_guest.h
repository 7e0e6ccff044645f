/*
 * Write mcp-registry orchestration plugins in C (and in any language that calls C, Zig first).
 *
 * A plugin is a Wasm component of the `orchestrator` world. `wit-bindgen c` writes the raw
 * bindings (`orchestrator.h`, `orchestrator.c`, `orchestrator_component_type.o`) from the
 * host's WIT; this header adds what every plugin otherwise writes again: C strings in and
 * out, error kinds by their WIT names, the text of a tool's result, waiting for a call
 * started with `start-call`, and just enough JSON to read a plugin's input and write its
 * output (the WIT passes JSON as text, and C has no JSON of its own).
 *
 * Ownership follows the bindings: what a function here returns as `char *` is the caller's
 * to free(); a `mrg_view` borrows its C string, which must outlive the call it is passed to.
 */
#ifndef MCP_REGISTRY_GUEST_H
#define MCP_REGISTRY_GUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "orchestrator.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef mcp_registry_plugin_types_error_t mrg_error;
typedef mcp_registry_plugin_types_call_result_t mrg_result;
typedef mcp_registry_plugin_registry_own_session_t mrg_session;
typedef mcp_registry_plugin_registry_own_future_call_result_t mrg_call;

/* ---- strings ---- */

/* A WIT string viewing `s` (not copied). */
orchestrator_string_t mrg_view(const char *s);
/* `s` copied into `out`, for an export's return value (the bindings free it afterwards). */
void mrg_return(orchestrator_string_t *out, const char *s);
/* A NUL-terminated copy of a WIT string. */
char *mrg_cstr(const orchestrator_string_t *s);

/* ---- errors ---- */

/* The WIT name of the error's kind: "not-found", "denied", "invalid-input", ... */
const char *mrg_error_kind(const mrg_error *e);
/* "kind: message"; frees nothing. */
char *mrg_error_text(const mrg_error *e);

/* ---- calls ---- */

/* Temporary mode: `name` is `server__tool`, `arguments` a JSON object (NULL for `{}`). */
bool mrg_call_tool(const char *name, const char *arguments, mrg_result *ret, mrg_error *err);
/* Persistent mode: opens a session on `count` servers; close it with mrg_session_close. */
bool mrg_session_open(const char *const *servers, size_t count, mrg_session *ret,
                      mrg_error *err);
bool mrg_session_call(mrg_session session, const char *name, const char *arguments,
                      mrg_result *ret, mrg_error *err);
/* Starts a call and returns at once; many run concurrently. Finish each with mrg_wait. */
bool mrg_session_start(mrg_session session, const char *name, const char *arguments,
                       mrg_call *ret, mrg_error *err);
/* Blocks until the call is done, then frees it. */
bool mrg_wait(mrg_call call, mrg_result *ret, mrg_error *err);
/* Closes the session's server connections. */
void mrg_session_close(mrg_session session);
/* The text items of a result's `content`, joined with newlines. */
char *mrg_result_text(const mrg_result *r);
/* Writes a line to the host's log (level: MCP_REGISTRY_PLUGIN_LOG_LEVEL_...). */
void mrg_log(mcp_registry_plugin_log_level_t level, const char *message);

/* ---- JSON: reading (every `json` argument is NUL-terminated JSON text) ---- */

/* The value of `key` in the object `json`, or NULL (not an object, or no such key). */
const char *mrg_json_get(const char *json, const char *key);
/* Item `index` of the array `json`, or NULL. */
const char *mrg_json_item(const char *json, size_t index);
/* The string `json` decoded, or NULL if it is not a string. */
char *mrg_json_string(const char *json);
/* The integer `json`; false if it is not one. */
bool mrg_json_int(const char *json, long long *out);
/* `json` starts with `true`. */
bool mrg_json_true(const char *json);
/* The JSON value at `json` copied on its own, or NULL if it is not one. */
char *mrg_json_value(const char *json);

/* ---- JSON: writing ---- */

typedef struct mrg_buf {
  char *data; /* NUL-terminated; the caller's to free() */
  size_t len;
  size_t cap;
} mrg_buf;

void mrg_buf_raw(mrg_buf *b, const char *text);
/* `s` as a quoted, escaped JSON string. */
void mrg_buf_string(mrg_buf *b, const char *s);
void mrg_buf_int(mrg_buf *b, long long n);

#ifdef __cplusplus
}
#endif

#endif
