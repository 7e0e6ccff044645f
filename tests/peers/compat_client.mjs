// Drives `mcp-registry serve` with the TypeScript MCP SDK clients, as a compatibility probe.
//
// Usage: node compat_client.mjs MODE TRANSPORT TARGET [CALLS]   (node 22 from .peers)
//   MODE       ts1         @modelcontextprotocol/sdk 1.x Client
//              ts2-legacy  @modelcontextprotocol/client 2.x Client, versionNegotiation default ('legacy')
//              ts2-auto    ... versionNegotiation { mode: 'auto' } (server/discover, fall back to initialize)
//              ts2-2026    ... versionNegotiation { mode: { pin: '2026-07-28' } }
//   TRANSPORT  stdio (TARGET is a JSON array: the command line that starts serve)
//              | http (TARGET is the URL, http://127.0.0.1:PORT/mcp)
//
// Same actions and JSON shape as compat_client.py: list tools, call memory__read_graph,
// modern__echo, modern__counter three times and the unknown modern__nope, then print one
// JSON object. With CALLS (a JSON list of [tool, arguments] pairs; v2 clients only) it makes
// those calls instead, reporting them under "calls" with how many progress notifications each
// got (a third element "cancel" gives the call up after 1.5 s: reported as "cancelled"). The v2
// clients answer elicitation (accepting, with the question as `username`) and sampling ("echo
// of PROMPT"). Every step records its own failure ("Class: message"); the whole run is
// bounded at 60 s. Exit status 1 when it could not connect ("fatal") or timed out, else 0.
// With $MCP_AUTH_TOKEN set, HTTP requests carry `Authorization: Bearer $MCP_AUTH_TOKEN`.
// Packages come from .peers/node_modules (MCP_PEERS_DIR overrides), imported by file path
// since this script does not live under .peers.

const [MODE, TRANSPORT, TARGET, CALLS_JSON] = process.argv.slice(2);
const CALLS = CALLS_JSON ? JSON.parse(CALLS_JSON) : null;
// With $MCP_COMPAT_CHANGES (a JSON list of server names; v2 clients), the client is built with
// `listChanged` handlers, then calls each server's `enable_extra` and waits (5 s) for a refreshed
// tool list with SERVER__extra in it (the SDK listens in 2026-07-28, takes notifications in
// 2025-11-25); reported under "changes".
const CHANGES = JSON.parse(process.env.MCP_COMPAT_CHANGES || '[]');
// With $MCP_COMPAT_LOGS set (v2 clients), the client asks for log messages at "info" (with
// logging/setLevel in 2025-11-25, in each call's `_meta` in 2026-07-28) and reports each
// message's logger under "logs".
const LOGS = Boolean(process.env.MCP_COMPAT_LOGS);
const LOG_META = { 'io.modelcontextprotocol/logLevel': 'info' };
let latestTools = [];
let toolsChanged = () => {};
const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 60_000;

const peers = new URL(
  'node_modules/@modelcontextprotocol/',
  process.env.MCP_PEERS_DIR ? `file://${process.env.MCP_PEERS_DIR}/` : new URL('../../.peers/', import.meta.url),
);
const load = (path) => import(new URL(path, peers).href);

const out = { mode: MODE, transport: TRANSPORT };
let printed = false;
function emit(code) {
  if (!printed) {
    printed = true;
    // Exit only once the report has left: a pipe takes it asynchronously.
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code));
    return;
  }
  process.exit(code);
}
setTimeout(() => {
  out.timeout = `gave up after ${TOTAL_TIMEOUT_MS / 1000} s`;
  emit(1);
}, TOTAL_TIMEOUT_MS);

const failure = (e) => `${e?.constructor?.name ?? typeof e}: ${e?.message ?? e}`;
const text = (r) => (r.content ?? []).map((c) => c.text ?? '').join('');
const outcome = (r) => ({ ok: !r.isError, text: text(r) });

/** Run one action with its own timeout; an exception becomes {ok: false, error}. */
async function step(action) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step timed out after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([action(), timeout]);
  } catch (e) {
    return { ok: false, error: failure(e) };
  } finally {
    clearTimeout(timer);
  }
}

/** The actions, in order. `RpcError` is the SDK's class for a JSON-RPC error response. */
// Waits (up to 5 s) for the three log messages of each logging call: in a 2025-11-25 session
// over HTTP they travel on the session's own stream, not the call's, so they may arrive after
// the call's answer.
async function logsSettle() {
  const expected = 3 * CALLS.filter(([name]) => name.endsWith('test_tool_with_logging')).length;
  const until = Date.now() + 5000;
  while ((out.logs?.length ?? 0) < expected && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function exercise(client, RpcError) {
  const call = (name, args) => client.callTool({ name, arguments: args });

  out.tools = await step(async () => {
    const names = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined);
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    return names.sort();
  });
  if (CALLS) {
    out.calls = [];
    for (const [name, args, how] of CALLS) {
      out.calls.push(
        await step(async () => {
          let progress = 0;
          const onprogress = () => {
            progress += 1;
          };
          const modern = out.protocol_version === '2026-07-28';
          const params = { name, arguments: args, ...(LOGS && modern ? { _meta: LOG_META } : {}) };
          if (how !== 'cancel') return { ...outcome(await client.callTool(params, { onprogress })), progress };
          // Given up after 1.5 s: the SDK tells the server with notifications/cancelled.
          const controller = new AbortController();
          const timer = setTimeout(() => controller.abort(), 1500);
          try {
            const r = await client.callTool(params, { onprogress, signal: controller.signal });
            return { ...outcome(r), progress };
          } catch (e) {
            if (controller.signal.aborted) return { ok: true, text: 'cancelled', progress };
            throw e;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
    }
    if (LOGS) await logsSettle();
    return;
  }
  out.memory_read_graph = await step(async () => outcome(await call('memory__read_graph', {})));
  out.echo = await step(async () => outcome(await call('modern__echo', { message: 'compat' })));
  out.counter = [];
  for (let i = 0; i < 3; i++) {
    out.counter.push(
      await step(async () => {
        const r = await call('modern__counter', {});
        return r.isError ? { ok: false, text: text(r) } : text(r);
      }),
    );
  }
  out.unknown_tool = await step(async () => {
    try {
      const r = await call('modern__nope', {});
      return { kind: r.isError ? 'is-error' : 'ok', message: text(r) };
    } catch (e) {
      if (e instanceof RpcError) return { kind: 'jsonrpc-error', code: e.code, message: e.message };
      throw e;
    }
  });
}

/** With $MCP_AUTH_TOKEN, every HTTP request carries `Authorization: Bearer <token>`. */
function httpOptions() {
  const token = process.env.MCP_AUTH_TOKEN;
  return token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : undefined;
}

async function main() {
  const argv = TRANSPORT === 'stdio' ? JSON.parse(TARGET) : null;
  // env: the SDKs pass only a safe subset of the environment by default; serve needs all of it.
  const stdioParams = argv && { command: argv[0], args: argv.slice(1), env: { ...process.env } };
  const info = { name: 'compat-client', version: '1.0.0' };
  let client, transport, RpcError;

  if (MODE === 'ts1') {
    const { Client } = await load('sdk/dist/esm/client/index.js');
    const { McpError } = await load('sdk/dist/esm/types.js');
    RpcError = McpError;
    client = new Client(info);
    if (argv) {
      const { StdioClientTransport } = await load('sdk/dist/esm/client/stdio.js');
      transport = new StdioClientTransport(stdioParams);
    } else {
      const { StreamableHTTPClientTransport } = await load('sdk/dist/esm/client/streamableHttp.js');
      transport = new StreamableHTTPClientTransport(new URL(TARGET), httpOptions());
    }
    // SDK 1.x has no getter for the negotiated version; it hands it to the transport after
    // initialize (when the transport has setProtocolVersion), so listen there.
    const forward = transport.setProtocolVersion?.bind(transport);
    transport.setProtocolVersion = (v) => {
      out.protocol_version = v;
      forward?.(v);
    };
  } else {
    // ts2-legacy leaves versionNegotiation unset: its default is 'legacy' (plain initialize).
    const options = {
      'ts2-legacy': {},
      'ts2-auto': { versionNegotiation: { mode: 'auto' } },
      'ts2-2026': { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    }[MODE];
    if (!options) throw new Error(`unknown MODE ${MODE}`);
    const sdk = await load('client/dist/index.mjs');
    RpcError = sdk.ProtocolError;
    const listChanged = {
      tools: {
        onChanged: (error, tools) => {
          if (!error && tools) latestTools = tools.map((t) => t.name);
          toolsChanged();
        },
      },
    };
    client = new sdk.Client(info, {
      ...options,
      capabilities: { sampling: {}, elicitation: {} },
      ...(CHANGES.length ? { listChanged } : {}),
    });
    // The answers name what was asked, so the caller sees they went the whole way.
    client.setRequestHandler('elicitation/create', async (request) => ({
      action: 'accept',
      content: { username: request.params.message, email: 'a@example.org' },
    }));
    client.setRequestHandler('sampling/createMessage', async (request) => ({
      role: 'assistant',
      model: 'test-model',
      content: { type: 'text', text: `echo of ${request.params.messages[0].content.text}` },
    }));
    if (LOGS) {
      client.setNotificationHandler('notifications/message', (notification) => {
        (out.logs ??= []).push(notification.params.logger);
      });
    }
    if (argv) {
      const { StdioClientTransport } = await load('client/dist/stdio.mjs');
      transport = new StdioClientTransport(stdioParams);
    } else {
      transport = new sdk.StreamableHTTPClientTransport(new URL(TARGET), httpOptions());
    }
  }

  try {
    await client.connect(transport);
    out.protocol_version ??= client.getNegotiatedProtocolVersion?.();
    // A 2025-11-25 session sets its level once (a 2026-07-28 client asks in each request).
    if (LOGS && out.protocol_version !== '2026-07-28') await client.setLoggingLevel('info');
    await exercise(client, RpcError);
    if (CHANGES.length) {
      out.changes = {};
      for (const server of CHANGES) {
        out.changes[server] = await step(async () => {
          const listed = () => latestTools.includes(`${server}__extra`);
          const heard = new Promise((resolve) => {
            toolsChanged = () => listed() && resolve(true);
            setTimeout(() => resolve(false), 5000);
          });
          await client.callTool({ name: `${server}__enable_extra`, arguments: {} });
          const ok = await heard;
          return { ok, text: ok ? 'heard' : `not heard; tools: ${latestTools.join(',')}` };
        });
      }
    }
  } catch (e) {
    // Connecting failed; the steps that ran are already in `out`.
    out.fatal = failure(e);
  }
  try {
    await client.close();
  } catch (e) {
    out.close_error = failure(e);
  }
}

main().then(
  () => emit(out.fatal ? 1 : 0),
  (e) => {
    out.fatal = failure(e);
    emit(1);
  },
);
