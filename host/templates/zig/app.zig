//! {{name}}: an mcp-registry plugin. It echoes its input's `message` through the `echo` tool
//! of the registry's `everything` server, in a session that is closed before `run` returns.
//!
//! Zig calls the C bindings that `mcp-registry bindings c` writes (wit-bindgen's C generator),
//! through the C guest SDK
//! (`mcp_registry_guest.h`): no Zig generator for WIT exists, and Zig imports C as it is
//! (`zig translate-c` writes `gen/c.zig` from the header; see README.md).

const std = @import("std");
const c = @import("gen/c.zig");

export fn exports_orchestrator_describe(ret: *c.orchestrator_string_t) void {
    c.mrg_return(ret,
        \\{"name": "{{name}}", "description": "Echoes a message through the everything server",
        \\ "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}},
        \\                 "required": ["message"]},
        \\ "requires": {"servers": ["everything"], "tools": ["everything__echo"]}}
    );
}

export fn exports_orchestrator_run(
    input: *c.orchestrator_string_t,
    ret: *c.orchestrator_string_t,
    err: *c.orchestrator_string_t,
) bool {
    const args = c.mrg_cstr(input);
    c.orchestrator_string_free(input);
    defer std.c.free(args);
    const message = c.mrg_json_string(c.mrg_json_get(args, "message")) orelse {
        c.mrg_return(err, "input.message must be a string");
        return false;
    };
    defer std.c.free(message);

    var call_args = std.mem.zeroes(c.mrg_buf);
    defer std.c.free(call_args.data);
    c.mrg_buf_raw(&call_args, "{\"message\": ");
    c.mrg_buf_string(&call_args, message);
    c.mrg_buf_raw(&call_args, "}");

    var session: c.mrg_session = undefined;
    var result: c.mrg_result = undefined;
    var failure: c.mrg_error = undefined;
    const servers = [_][*c]const u8{"everything"};
    var ok = c.mrg_session_open(&servers, servers.len, &session, &failure);
    if (ok) {
        ok = c.mrg_session_call(session, "everything__echo", call_args.data, &result, &failure);
        c.mrg_session_close(session);
    }
    if (!ok) {
        const text = c.mrg_error_text(&failure);
        defer std.c.free(text);
        c.mcp_registry_plugin_types_error_free(&failure);
        c.mrg_return(err, text);
        return false;
    }

    const echoed = c.mrg_result_text(&result);
    defer std.c.free(echoed);
    c.mcp_registry_plugin_types_call_result_free(&result);
    var out = std.mem.zeroes(c.mrg_buf);
    defer std.c.free(out.data);
    c.mrg_buf_raw(&out, "{\"echoed\": ");
    c.mrg_buf_string(&out, echoed);
    c.mrg_buf_raw(&out, "}");
    c.mrg_return(ret, out.data);
    return true;
}
