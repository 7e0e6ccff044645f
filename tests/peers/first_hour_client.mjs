// A new user's client: the TypeScript SDK (v1, what most people run) launching
// `mcp-registry serve` over stdio, listing tools while some servers are still starting.
//
// Usage: node first_hour_client.mjs ARGV_JSON   (node 22 from .peers)
//   ARGV_JSON  the serve command line as a JSON list
//
// Prints one JSON object:
//   {first: {ms, names, unavailable}, changed_after_ms, second: {names, unavailable}}
// where `first` is the first tools/list (its time, tool names and the `_meta` naming the
// servers left out), `changed_after_ms` when the first notifications/tools/list_changed
// arrived (null if none within 30 s), and `second` the tools/list made after it.

const [ARGV_JSON] = process.argv.slice(2);
const argv = JSON.parse(ARGV_JSON);

const peers = new URL(
  'node_modules/@modelcontextprotocol/',
  process.env.MCP_PEERS_DIR ? `file://${process.env.MCP_PEERS_DIR}/` : new URL('../../.peers/', import.meta.url),
);
const load = (path) => import(new URL(path, peers).href);

const out = {};
const finish = (code) => process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code));
setTimeout(() => {
  out.timeout = 'gave up after 60 s';
  finish(1);
}, 60_000);

const { Client } = await load('sdk/dist/esm/client/index.js');
const { StdioClientTransport, getDefaultEnvironment } = await load('sdk/dist/esm/client/stdio.js');
const { ToolListChangedNotificationSchema } = await load('sdk/dist/esm/types.js');

// The SDK's default environment (a safe subset) is what Claude Desktop and the others pass:
// the registry is named on the command line, as the README says to. (The cache directory
// too, so that the test keeps its protocol-era guesses to itself.)
const env = { ...getDefaultEnvironment() };
if (process.env.MCP_REGISTRY_CACHE_DIR) env.MCP_REGISTRY_CACHE_DIR = process.env.MCP_REGISTRY_CACHE_DIR;
const transport = new StdioClientTransport({ command: argv[0], args: argv.slice(1), env, stderr: 'inherit' });
const client = new Client({ name: 'first-hour', version: '1.0.0' });
let changed;
const changedOnce = new Promise((resolve) => (changed = resolve));
client.setNotificationHandler(ToolListChangedNotificationSchema, () => changed());

try {
  await client.connect(transport);
  const started = Date.now();
  const list = async () => {
    const r = await client.listTools();
    return { names: r.tools.map((t) => t.name), unavailable: r._meta?.['mcp-registry/unavailable'] ?? null };
  };
  out.first = { ...(await list()), ms: Date.now() - started };
  const heard = await Promise.race([
    changedOnce.then(() => true),
    new Promise((resolve) => setTimeout(() => resolve(false), 30_000)),
  ]);
  out.changed_after_ms = heard ? Date.now() - started : null;
  out.second = await list();
  await client.close();
  finish(0);
} catch (e) {
  out.error = `${e?.constructor?.name}: ${e?.message ?? e}`;
  finish(1);
}
