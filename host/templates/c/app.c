/* {{name}}: an mcp-registry plugin. It echoes its input's `message` through the `echo` tool
 * of the registry's `everything` server, in a session that is closed before `run` returns. */
#include <stdlib.h>
#include <string.h>

#include "mcp_registry_guest.h"

void exports_orchestrator_describe(orchestrator_string_t *ret) {
  mrg_return(ret,
             "{\"name\": \"{{name}}\", \"description\": \"Echoes a message through the everything "
             "server\", \"inputSchema\": {\"type\": \"object\", \"properties\": {\"message\": "
             "{\"type\": \"string\"}}, \"required\": [\"message\"]}, \"requires\": {\"servers\": "
             "[\"everything\"], \"tools\": [\"everything__echo\"]}}");
}

bool exports_orchestrator_run(orchestrator_string_t *input, orchestrator_string_t *ret,
                              orchestrator_string_t *err) {
  char *args = mrg_cstr(input);
  orchestrator_string_free(input);
  char *message = mrg_json_string(mrg_json_get(args, "message"));
  free(args);
  if (!message) {
    mrg_return(err, "input.message must be a string");
    return false;
  }

  mrg_buf call_args = {0};
  mrg_buf_raw(&call_args, "{\"message\": ");
  mrg_buf_string(&call_args, message);
  mrg_buf_raw(&call_args, "}");
  free(message);

  const char *servers[] = {"everything"};
  mrg_session session;
  mrg_result result;
  mrg_error error;
  bool ok = mrg_session_open(servers, 1, &session, &error);
  if (ok) {
    ok = mrg_session_call(session, "everything__echo", call_args.data, &result, &error);
    mrg_session_close(session);
  }
  free(call_args.data);
  if (!ok) {
    char *text = mrg_error_text(&error);
    mcp_registry_plugin_types_error_free(&error);
    mrg_return(err, text);
    free(text);
    return false;
  }

  char *echoed = mrg_result_text(&result);
  mcp_registry_plugin_types_call_result_free(&result);
  mrg_buf out = {0};
  mrg_buf_raw(&out, "{\"echoed\": ");
  mrg_buf_string(&out, echoed);
  mrg_buf_raw(&out, "}");
  free(echoed);
  mrg_return(ret, out.data);
  free(out.data);
  return true;
}
