// {{name}}: an mcp-registry plugin. It echoes its input's `message` through the `echo` tool
// of the registry's `everything` server, in a session that closes when the block ends.
import { describe as describePlugin, withSession } from 'mcp-registry-guest';

export function describe() {
  return describePlugin({
    name: '{{name}}',
    description: 'Echoes a message through the everything server',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string' } },
      required: ['message'],
    },
    servers: ['everything'],
    tools: ['everything__echo'],
  });
}

export function run(input) {
  try {
    const args = input.trim() ? JSON.parse(input) : {};
    if (typeof args.message !== 'string') throw new Error('input.message must be a string');
    const echoed = withSession(['everything'], (session) =>
      session.call('everything__echo', { message: args.message }).text);
    return JSON.stringify({ echoed });
  } catch (e) {
    // A string thrown from an export returning result<string, string> becomes its `err`.
    throw e instanceof Error ? e.message : String(e);
  }
}
