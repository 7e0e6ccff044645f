// Times `tools/call` through `mcp-registry serve --http` with the TypeScript SDK clients, for
// `cargo bench --bench http` (run with the Node 22 of .peers).
//
// Usage: node http_client.mjs MODE URL N [CLIENTS]
//   MODE     fetch     Node's own fetch, one stateless 2026-07-28 POST per call (no SDK): what
//                      the client runtime costs before any SDK work
//            ts1       @modelcontextprotocol/sdk 1.x Client (2025-11-25, an HTTP session)
//            ts2-2026  @modelcontextprotocol/client 2.x Client pinned to 2026-07-28 (stateless)
//            ts1-stdio the 1.x Client over stdio, URL being the server's command (no proxy)
//   N        calls per client (after 20 warm-up calls each)
//   CLIENTS  clients calling concurrently (default 1)
// Prints {"us": [microseconds per call, every client's], "wall_s": seconds for all clients'
// timed calls}. Each call is `s__echo {"message": "x"}` ($MCP_TOOL names another tool). With
// $MCP_AUTH_TOKENS (comma-separated), client i sends `Authorization: Bearer` token i mod n.
// With $MCP_IGNORE_ERRORS=1 a refused call (a tenant's limit) is counted like any other: the
// mode of a flooding tenant.

const [MODE, URL_, N, CLIENTS = '1'] = process.argv.slice(2);
const WARMUP = 20;
const peers = new URL('../.peers/node_modules/@modelcontextprotocol/', import.meta.url);
const load = (path) => import(new URL(path, peers).href);

/** A client with just `callTool` over plain fetch, for the `fetch` mode. */
function fetchClient() {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call',
  };
  const meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
  };
  let id = 0;
  return {
    async callTool({ name, arguments: args }) {
      const body = JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args, _meta: meta } });
      const r = await fetch(URL_, { method: 'POST', headers: { ...headers, 'mcp-name': name }, body });
      const text = await r.text();
      const json = text.startsWith('{') ? text : text.split('\n').find((l) => l.startsWith('data:')).slice(5);
      return JSON.parse(json).result;
    },
    async close() {},
  };
}

const TOOL = process.env.MCP_TOOL || 's__echo';
const IGNORE_ERRORS = process.env.MCP_IGNORE_ERRORS === '1';
const TOKENS = (process.env.MCP_AUTH_TOKENS || '').split(',').filter(Boolean);

/** Transport options for client `i`: its bearer token, if any. */
function httpOptions(i) {
  if (!TOKENS.length) return undefined;
  return { requestInit: { headers: { Authorization: `Bearer ${TOKENS[i % TOKENS.length]}` } } };
}

async function connect(i) {
  const info = { name: 'http-bench', version: '1.0.0' };
  if (MODE === 'fetch') return fetchClient();
  if (MODE === 'ts1' || MODE === 'ts1-stdio') {
    const { Client } = await load('sdk/dist/esm/client/index.js');
    const client = new Client(info);
    if (MODE === 'ts1-stdio') {
      const { StdioClientTransport } = await load('sdk/dist/esm/client/stdio.js');
      await client.connect(new StdioClientTransport({ command: URL_, args: [], env: { ...process.env } }));
    } else {
      const { StreamableHTTPClientTransport } = await load('sdk/dist/esm/client/streamableHttp.js');
      await client.connect(new StreamableHTTPClientTransport(new URL(URL_), httpOptions(i)));
    }
    return client;
  }
  if (MODE === 'ts2-2026') {
    const sdk = await load('client/dist/index.mjs');
    const client = new sdk.Client(info, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new sdk.StreamableHTTPClientTransport(new URL(URL_), httpOptions(i)));
    return client;
  }
  throw new Error(`unknown MODE ${MODE}`);
}

async function calls(client, n, samples) {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    let r;
    try {
      r = await client.callTool({ name: TOOL, arguments: { message: 'x' } });
    } catch (e) {
      if (!IGNORE_ERRORS) throw e;
    }
    if (samples) samples.push(Number(process.hrtime.bigint() - t) / 1000);
    if (r?.isError && !IGNORE_ERRORS) throw new Error(JSON.stringify(r));
  }
}

const clients = await Promise.all(Array.from({ length: Number(CLIENTS) }, (_, i) => connect(i)));
await Promise.all(clients.map((c) => calls(c, WARMUP, null)));
const us = [];
const started = process.hrtime.bigint();
await Promise.all(clients.map((c) => calls(c, Number(N), us)));
const wall_s = Number(process.hrtime.bigint() - started) / 1e9;
await Promise.all(clients.map((c) => c.close()));
// Exit only once the (large) report has left: a pipe takes it asynchronously.
process.stdout.write(JSON.stringify({ us, wall_s }) + '\n', () => process.exit(0));
