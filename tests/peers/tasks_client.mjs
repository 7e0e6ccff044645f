// Drives `mcp-registry serve` over streamable HTTP with the Tasks extension's own TypeScript
// client (@modelcontextprotocol/ext-tasks on @modelcontextprotocol/client 2.x), as a
// compatibility probe of tasks (SEP-2663).
//
// Usage: node tasks_client.mjs MODE URL SERVERS   (node 22 from .peers)
//   MODE     ts2-2026    the SDK client pinned to 2026-07-28, declaring the tasks extension
//            ts2-legacy  the SDK client in 2025-11-25 (serve offers no tasks there: plain results)
//   URL      http://127.0.0.1:PORT/mcp
//   SERVERS  a JSON list of upstream names; for each it runs, through one task session:
//            SERVER__sleep of 2.5 s ("slow"), SERVER__test_elicitation answered by the
//            session's input handler ("input"), SERVER__sleep of 60 s cancelled once it runs
//            ("cancel"), then SERVER__cancelled (how many sleeps the upstream saw cancelled);
//            in ts2-legacy mode only the first two.
//
// Prints one JSON object: {protocol_version, servers: {NAME: {slow, input, cancel,
// upstream_cancelled}}}; each step is {ok, text, task} ("task": whether serve made it a task)
// or {ok: false, error}. The whole run is bounded at 90 s.
//
// The extension's client needs a raw dispatch for 2026-07-28 (the SDK's typed requests drop
// `resultType: "task"`): here a plain POST with the headers the 2026-07-28 HTTP binding asks for.

const [MODE, URL_ARG, SERVERS_JSON] = process.argv.slice(2);
const SERVERS = JSON.parse(SERVERS_JSON ?? '[]');
const STEP_TIMEOUT_MS = 20_000;

const peers = new URL(
  'node_modules/@modelcontextprotocol/',
  process.env.MCP_PEERS_DIR ? `file://${process.env.MCP_PEERS_DIR}/` : new URL('../../.peers/', import.meta.url),
);
const load = (path) => import(new URL(path, peers).href);

const out = { mode: MODE, servers: {} };
let printed = false;
function emit(code) {
  if (!printed) {
    printed = true;
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code));
    return;
  }
  process.exit(code);
}
setTimeout(() => {
  out.timeout = 'gave up after 90 s';
  emit(1);
}, 90_000);

const failure = (e) => `${e?.constructor?.name ?? typeof e}: ${e?.message ?? e}`;
const text = (r) => (r?.content ?? []).map((c) => c.text ?? '').join('');

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

let nextId = 1;
/** One JSON-RPC request as a POST; the answer from a JSON body or an SSE stream. */
async function rawDispatch(request, options = {}) {
  const id = `raw-${nextId++}`;
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': request.method,
  };
  const name = request.params?.name ?? request.params?.taskId;
  if (typeof name === 'string') headers['mcp-name'] = name;
  if (process.env.MCP_AUTH_TOKEN) headers.authorization = `Bearer ${process.env.MCP_AUTH_TOKEN}`;
  const response = await fetch(URL_ARG, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, ...request }),
    signal: options.signal,
  });
  const body = await response.text();
  const messages = (response.headers.get('content-type') ?? '').includes('text/event-stream')
    ? body
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim())
        .filter((data) => data.length > 0)
        .map((data) => JSON.parse(data))
    : [JSON.parse(body)];
  const answer = messages.find((m) => m.id === id);
  if (!answer) throw new Error(`no answer to ${request.method} (HTTP ${response.status}): ${body.slice(0, 200)}`);
  return answer.error ? { kind: 'error', error: answer.error } : { kind: 'result', result: answer.result };
}

async function main() {
  const sdk = await load('client/dist/index.mjs');
  const { createTaskSessionFromClient, resultFromTaskOutcome } = await load('ext-tasks/dist/client/index.js');
  const info = { name: 'tasks-client', version: '1.0.0' };
  const capabilities = { elicitation: {}, extensions: { 'io.modelcontextprotocol/tasks': {} } };
  const versionNegotiation = MODE === 'ts2-2026' ? { mode: { pin: '2026-07-28' } } : undefined;
  const client = new sdk.Client(info, { capabilities, ...(versionNegotiation ? { versionNegotiation } : {}) });
  const requestInit = process.env.MCP_AUTH_TOKEN
    ? { headers: { Authorization: `Bearer ${process.env.MCP_AUTH_TOKEN}` } }
    : undefined;
  await client.connect(new sdk.StreamableHTTPClientTransport(new URL(URL_ARG), requestInit ? { requestInit } : undefined));
  out.protocol_version = client.getNegotiatedProtocolVersion?.();
  const modern = MODE === 'ts2-2026';
  const session = createTaskSessionFromClient(client, {
    endpointId: 'mcp-registry-serve',
    ...(modern
      ? { rawDispatch, v2RequestFraming: { protocolVersion: '2026-07-28', clientInfo: info, clientCapabilities: capabilities } }
      : {}),
    onInputRequest: async (request) => {
      if (request.kind !== 'elicitation') throw new Error(`unexpected ${request.kind}`);
      return { action: 'accept', content: { username: request.params.message, email: 't@example.org' } };
    },
  });
  const isTask = (execution) => execution.handle?.taskId !== undefined;
  try {
    for (const server of SERVERS) {
      const report = (out.servers[server] = {});
      const run = async (tool, args) => {
        const execution = await session.callTool(`${server}__${tool}`, args);
        const task = isTask(execution);
        const { outcome } = await execution.settle();
        const r = resultFromTaskOutcome(outcome);
        return { ok: !r.isError, text: text(r), task };
      };
      report.slow = await step(() => run('sleep', { ms: 2500 }));
      report.input = await step(() => run('test_elicitation', { message: 'in a task' }));
      // Without tasks a call cannot be cancelled apart from its request: nothing more to see.
      if (!modern) continue;
      report.cancel = await step(async () => {
        const execution = await session.callTool(`${server}__sleep`, { ms: 60000 });
        const task = isTask(execution);
        await execution.cancel();
        const { outcome } = await execution.settle();
        return { ok: outcome?.status === 'cancelled', task, text: JSON.stringify(outcome).slice(0, 200) };
      });
      report.upstream_cancelled = await step(async () => {
        // The upstream hears of the cancel shortly after the task settles.
        for (let i = 0; i < 50; i++) {
          const r = await client.callTool({ name: `${server}__cancelled`, arguments: {} });
          if (text(r) !== '0') return { ok: true, text: text(r) };
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return { ok: false, text: '0' };
      });
    }
  } finally {
    session.close();
    await client.close();
  }
}

main().then(
  () => emit(0),
  (e) => {
    out.fatal = failure(e);
    emit(1);
  },
);
