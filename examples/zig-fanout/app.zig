//! Example plugin in Zig: the fan-out of examples/fanout, on the C bindings of `wit-bindgen c`
//! and the C guest SDK (imported with `zig translate-c`). Build: `scripts/build-guests.sh zig`
//! (docs/authoring.md walks through it).
//!
//! Input: {"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"} (all optional), plus
//! "mode": "temporary" (counter calls in temporary mode) or "errors" (report error kinds).

const std = @import("std");
const c = @import("gen/c.zig");

const max_servers = 8;
const max_rounds = 128;

export fn exports_orchestrator_describe(ret: *c.orchestrator_string_t) void {
    c.mrg_return(ret,
        \\{"name": "zig-fanout",
        \\ "description": "Open a session on several servers and call them concurrently (Zig)",
        \\ "inputSchema": {"type": "object", "properties": {
        \\   "servers": {"type": "array", "items": {"type": "string"}},
        \\   "rounds": {"type": "integer"}, "message": {"type": "string"},
        \\   "mode": {"type": "string", "enum": ["fanout", "temporary", "errors"]}}},
        \\ "requires": {"servers": ["alpha", "beta"], "tools": []}}
    );
}

/// A run's failure: the WIT error, kept until it is reported.
const Failure = struct { err: c.mrg_error };

/// `server__tool` as a C string, in `buf`.
fn toolName(buf: []u8, server: [*c]const u8, tool: []const u8) [*c]const u8 {
    const name = std.mem.printSentinel(buf, "{s}__{s}", .{ std.mem.span(server), tool }, 0) catch
        return "too-long__name";
    return name.ptr;
}

/// The text of a finished call (the caller frees it), or null if it failed.
fn textOf(ok: bool, result: *c.mrg_result) ?[*c]u8 {
    if (!ok) return null;
    defer c.mcp_registry_plugin_types_call_result_free(result);
    return c.mrg_result_text(result);
}

fn kindOf(ok: bool, result: *c.mrg_result, failure: *c.mrg_error) [*c]const u8 {
    if (ok) {
        c.mcp_registry_plugin_types_call_result_free(result);
        return "ok";
    }
    defer c.mcp_registry_plugin_types_error_free(failure);
    return c.mrg_error_kind(failure);
}

fn number(text: [*c]u8) i64 {
    defer std.c.free(text);
    return std.fmt.parseInt(i64, std.mem.span(text), 10) catch -1;
}

fn temporary(server: [*c]const u8, rounds: usize, out: *c.mrg_buf, failure: *Failure) bool {
    var buf: [128]u8 = undefined;
    const counter = toolName(&buf, server, "counter");
    c.mrg_buf_raw(out, "{\"counters\": [");
    for (0..rounds) |i| {
        var result: c.mrg_result = undefined;
        const text = textOf(c.mrg_call_tool(counter, null, &result, &failure.err), &result) orelse
            return false;
        if (i > 0) c.mrg_buf_raw(out, ", ");
        c.mrg_buf_int(out, number(text));
    }
    c.mrg_buf_raw(out, "]}");
    return true;
}

fn errorKinds(server: [*c]const u8, out: *c.mrg_buf, failure: *Failure) bool {
    var session: c.mrg_session = undefined;
    const servers = [_][*c]const u8{server};
    if (!c.mrg_session_open(&servers, 1, &session, &failure.err)) return false;
    defer c.mrg_session_close(session);
    var bufs: [3][128]u8 = undefined;
    var r: c.mrg_result = undefined;
    var e: c.mrg_error = undefined;
    const pairs = [_]struct { []const u8, [*c]const u8 }{
        .{ "array_args", kindOf(c.mrg_session_call(session, toolName(&bufs[0], server, "echo"), "[1]", &r, &e), &r, &e) },
        .{ "unknown_tool", kindOf(c.mrg_session_call(session, toolName(&bufs[1], server, "nope"), null, &r, &e), &r, &e) },
        .{ "unknown_server", kindOf(c.mrg_call_tool("nosuch__echo", null, &r, &e), &r, &e) },
        .{ "bad_name", kindOf(c.mrg_session_call(session, "echo", null, &r, &e), &r, &e) },
    };
    if (!c.mrg_session_call(session, toolName(&bufs[2], server, "fail"), "{\"message\": \"m\"}", &r, &failure.err))
        return false;
    const tool_error = r.is_error;
    c.mcp_registry_plugin_types_call_result_free(&r);
    c.mrg_buf_raw(out, "{");
    for (pairs) |pair| {
        c.mrg_buf_string(out, pair[0].ptr);
        c.mrg_buf_raw(out, ": ");
        c.mrg_buf_string(out, pair[1]);
        c.mrg_buf_raw(out, ", ");
    }
    c.mrg_buf_raw(out, if (tool_error) "\"tool_error\": true}" else "\"tool_error\": false}");
    return true;
}

/// Starts `tool` on every server at once, then waits for each; `texts` gets what they said.
fn all(session: c.mrg_session, names: []const [*c]const u8, tool: []const u8, arguments: [*c]const u8, texts: [][*c]u8, failure: *Failure) bool {
    var calls: [max_servers]c.mrg_call = undefined;
    var started: usize = 0;
    var ok = true;
    while (started < names.len) : (started += 1) {
        var buf: [128]u8 = undefined;
        if (!c.mrg_session_start(session, toolName(&buf, names[started], tool), arguments, &calls[started], &failure.err)) {
            ok = false;
            break;
        }
    }
    for (calls[0..started], 0..) |call, i| {
        var result: c.mrg_result = undefined;
        var e: c.mrg_error = undefined;
        if (c.mrg_wait(call, &result, &e)) {
            texts[i] = c.mrg_result_text(&result);
            c.mcp_registry_plugin_types_call_result_free(&result);
        } else {
            texts[i] = null;
            if (ok) failure.err = e else c.mcp_registry_plugin_types_error_free(&e);
            ok = false;
        }
    }
    if (!ok) for (texts[0..started]) |t| std.c.free(t);
    return ok;
}

fn fanOut(names: []const [*c]const u8, rounds: usize, message: [*c]const u8, out: *c.mrg_buf, failure: *Failure) bool {
    var session: c.mrg_session = undefined;
    if (!c.mrg_session_open(names.ptr, names.len, &session, &failure.err)) return false;
    // The session is closed when fanOut returns, whatever happened.
    defer c.mrg_session_close(session);
    c.mrg_log(c.MCP_REGISTRY_PLUGIN_LOG_LEVEL_INFO, "session open");
    var counts: [max_servers][max_rounds]i64 = undefined;
    var texts: [max_servers][*c]u8 = undefined;
    for (0..rounds) |round| {
        if (!all(session, names, "counter", null, texts[0..names.len], failure)) return false;
        for (0..names.len) |i| counts[i][round] = number(texts[i]);
    }
    var echo_args = std.mem.zeroes(c.mrg_buf);
    defer std.c.free(echo_args.data);
    c.mrg_buf_raw(&echo_args, "{\"message\": ");
    c.mrg_buf_string(&echo_args, message);
    c.mrg_buf_raw(&echo_args, "}");
    if (!all(session, names, "echo", echo_args.data, texts[0..names.len], failure)) return false;

    c.mrg_buf_raw(out, "{\"servers\": [");
    for (names, 0..) |name, i| {
        if (i > 0) c.mrg_buf_raw(out, ", ");
        c.mrg_buf_string(out, name);
    }
    c.mrg_buf_raw(out, "], \"counters\": {");
    for (names, 0..) |name, i| {
        if (i > 0) c.mrg_buf_raw(out, ", ");
        c.mrg_buf_string(out, name);
        c.mrg_buf_raw(out, ": [");
        for (0..rounds) |round| {
            if (round > 0) c.mrg_buf_raw(out, ", ");
            c.mrg_buf_int(out, counts[i][round]);
        }
        c.mrg_buf_raw(out, "]");
    }
    c.mrg_buf_raw(out, "}, \"echoes\": [");
    for (texts[0..names.len], 0..) |text, i| {
        if (i > 0) c.mrg_buf_raw(out, ", ");
        c.mrg_buf_string(out, text);
        std.c.free(text);
    }
    c.mrg_buf_raw(out, "], \"pids\": {");
    for (names, 0..) |name, i| {
        var buf: [128]u8 = undefined;
        var result: c.mrg_result = undefined;
        const pid = textOf(c.mrg_session_call(session, toolName(&buf, name, "pid"), null, &result, &failure.err), &result) orelse
            return false;
        defer std.c.free(pid);
        if (i > 0) c.mrg_buf_raw(out, ", ");
        c.mrg_buf_string(out, name);
        c.mrg_buf_raw(out, ": ");
        c.mrg_buf_string(out, pid);
    }
    c.mrg_buf_raw(out, "}}");
    return true;
}

export fn exports_orchestrator_run(
    input: *c.orchestrator_string_t,
    ret: *c.orchestrator_string_t,
    err: *c.orchestrator_string_t,
) bool {
    const args = c.mrg_cstr(input);
    c.orchestrator_string_free(input);
    defer std.c.free(args);

    // The servers: input.servers, or the first two this plugin may use.
    var names: [max_servers][*c]u8 = undefined;
    var n: usize = 0;
    defer for (names[0..n]) |name| std.c.free(name);
    while (n < max_servers) : (n += 1) {
        const item = c.mrg_json_item(c.mrg_json_get(args, "servers"), n) orelse break;
        names[n] = c.mrg_json_string(item) orelse break;
    }
    if (n == 0) {
        var allowed = std.mem.zeroes(c.orchestrator_list_string_t);
        c.mcp_registry_plugin_registry_servers(&allowed);
        defer c.orchestrator_list_string_free(&allowed);
        while (n < 2 and n < allowed.len) : (n += 1) names[n] = c.mrg_cstr(&allowed.ptr[n]);
    }
    if (n == 0) {
        c.mrg_return(err, "no servers");
        return false;
    }
    var rounds: c_longlong = 3;
    _ = c.mrg_json_int(c.mrg_json_get(args, "rounds"), &rounds);
    if (rounds < 0 or rounds > max_rounds) {
        c.mrg_return(err, "rounds must be between 0 and 128");
        return false;
    }
    const mode = c.mrg_json_string(c.mrg_json_get(args, "mode"));
    defer std.c.free(mode);
    const message = c.mrg_json_string(c.mrg_json_get(args, "message"));
    defer std.c.free(message);
    const mode_name: []const u8 = if (mode) |m| std.mem.span(m) else "fanout";

    var out = std.mem.zeroes(c.mrg_buf);
    defer std.c.free(out.data);
    var failure: Failure = undefined;
    const servers: []const [*c]const u8 = @ptrCast(names[0..n]);
    const ok = if (std.mem.eql(u8, mode_name, "temporary"))
        temporary(names[0], @intCast(rounds), &out, &failure)
    else if (std.mem.eql(u8, mode_name, "errors"))
        errorKinds(names[0], &out, &failure)
    else
        fanOut(servers, @intCast(rounds), message orelse "hello from zig", &out, &failure);
    if (!ok) {
        const text = c.mrg_error_text(&failure.err);
        defer std.c.free(text);
        c.mcp_registry_plugin_types_error_free(&failure.err);
        c.mrg_return(err, text);
        return false;
    }
    c.mrg_return(ret, out.data);
    return true;
}
