// Times `tools/call` through `mcp-registry serve --http` with the TypeScript SDK clients, for
// `cargo bench --bench http` (run with the Node 22 of .peers).
//
// Usage: node http_client.mjs MODE URL N [CLIENTS]
//   MODE     fetch     Node's own fetch, one stateless 2026-07-28 POST per call (no SDK): what
//                      the client runtime costs before any SDK work
//            ts1       @modelcontextprotocol/sdk 1.x Client (2025-11-25, an HTTP session)
//            ts2-2026  @modelcontextprotocol/client 2.x Client pinned to 2026-07-28 (stateless)
//   N        calls per client (after 20 warm-up calls each)
//   CLIENTS  clients calling concurrently (default 1)
// Prints {"us": [microseconds per call, every client's], "wall_s": seconds for all clients'
// timed calls}. Each call is `s__echo {"message": "x"}`.

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

async function connect() {
  const info = { name: 'http-bench', version: '1.0.0' };
  if (MODE === 'fetch') return fetchClient();
  if (MODE === 'ts1') {
    const { Client } = await load('sdk/dist/esm/client/index.js');
    const { StreamableHTTPClientTransport } = await load('sdk/dist/esm/client/streamableHttp.js');
    const client = new Client(info);
    await client.connect(new StreamableHTTPClientTransport(new URL(URL_)));
    return client;
  }
  if (MODE === 'ts2-2026') {
    const sdk = await load('client/dist/index.mjs');
    const client = new sdk.Client(info, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new sdk.StreamableHTTPClientTransport(new URL(URL_)));
    return client;
  }
  throw new Error(`unknown MODE ${MODE}`);
}

async function calls(client, n, samples) {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = await client.callTool({ name: 's__echo', arguments: { message: 'x' } });
    if (samples) samples.push(Number(process.hrtime.bigint() - t) / 1000);
    if (r.isError) throw new Error(JSON.stringify(r));
  }
}

const clients = await Promise.all(Array.from({ length: Number(CLIENTS) }, connect));
await Promise.all(clients.map((c) => calls(c, WARMUP, null)));
const us = [];
const started = process.hrtime.bigint();
await Promise.all(clients.map((c) => calls(c, Number(N), us)));
const wall_s = Number(process.hrtime.bigint() - started) / 1e9;
await Promise.all(clients.map((c) => c.close()));
process.stdout.write(JSON.stringify({ us, wall_s }) + '\n');
process.exit(0);
