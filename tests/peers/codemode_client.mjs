// Drives `mcp-registry serve --code-mode` with the TypeScript SDK 1.x client over stdio, as a
// model's client would: list tools, `search`, then several `execute` calls at once.
//
// Usage: node codemode_client.mjs SPEC   (node 22 from .peers)
//   SPEC is JSON: {"command": [argv of serve], "search": {...search arguments},
//                  "executes": [[{...execute arguments}, ...], ...]}
//   `search` may be a list of argument objects: one search each (`search` is then a list).
//   Each inner list is a batch of calls made at once; batches run one after another.
// Prints one JSON object: {"tools": [names], "search": {"text", "structured"},
// "executes": [[{"is_error", "structured", "text", "progress": [[done, total, message]]}]],
// "order": [[batch, index] as they finished]}.
// Packages come from .peers/node_modules (MCP_PEERS_DIR overrides).

const spec = JSON.parse(process.argv[2]);
const peers = new URL(
  'node_modules/@modelcontextprotocol/',
  process.env.MCP_PEERS_DIR ? `file://${process.env.MCP_PEERS_DIR}/` : new URL('../../.peers/', import.meta.url),
);
const load = (path) => import(new URL(path, peers).href);

setTimeout(() => {
  console.error('codemode_client.mjs: timed out');
  process.exit(1);
}, 120_000).unref();

const { Client } = await load('sdk/dist/esm/client/index.js');
const { StdioClientTransport, getDefaultEnvironment } = await load('sdk/dist/esm/client/stdio.js');
const [command, ...args] = spec.command;
// The SDK's default environment (what Claude Desktop and the others pass), plus the cache
// directory: without it serve compiles the code-mode engines into the user's own cache, cold on
// a fresh machine (minutes under load, past the client's timeouts).
const env = { ...getDefaultEnvironment() };
if (process.env.MCP_REGISTRY_CACHE_DIR) env.MCP_REGISTRY_CACHE_DIR = process.env.MCP_REGISTRY_CACHE_DIR;
const transport = new StdioClientTransport({ command, args, env, stderr: 'inherit' });
const client = new Client({ name: 'codemode-client', version: '1.0.0' });
await client.connect(transport);

const text = (r) => (r.content ?? []).map((c) => c.text ?? '').join('');
const out = {};
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
const search = async (args) => {
  const found = await client.callTool({ name: 'search', arguments: args });
  return { text: text(found), structured: found.structuredContent ?? null };
};
out.search = Array.isArray(spec.search) ? await Promise.all(spec.search.map(search)) : await search(spec.search);
out.order = [];
out.executes = [];
for (const [b, batch] of spec.executes.entries()) {
  out.executes.push(
    await Promise.all(
      batch.map(async (args, i) => {
        const progress = [];
        const onprogress = (p) => progress.push([p.progress, p.total ?? null, p.message ?? null]);
        const r = await client.callTool({ name: 'execute', arguments: args }, undefined, { timeout: 100_000, onprogress });
        out.order.push([b, i]);
        return { is_error: Boolean(r.isError), structured: r.structuredContent ?? null, text: text(r), progress };
      }),
    ),
  );
}
await client.close();
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
