// Example plugin in JavaScript: the fan-out of examples/fanout, with try/finally scoping.
//
// Input: {"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"} (all optional), plus
// "mode": "temporary" (counter calls in temporary mode) or "errors" (report error kinds).
import { RegistryError, call, describe as describePlugin, joinAll, log, servers, withSession } from '../../guest-sdk/js/mcp-registry-guest.js';

function kind(fn) {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof RegistryError) return e.kind;
    throw e;
  }
}

export function describe() {
  return describePlugin({
    name: 'js-fanout',
    description: 'Open a session on several servers and call them concurrently (JavaScript)',
    inputSchema: {
      type: 'object',
      properties: {
        servers: { type: 'array', items: { type: 'string' } },
        rounds: { type: 'integer' },
        message: { type: 'string' },
        mode: { type: 'string', enum: ['fanout', 'temporary', 'errors'] },
      },
    },
    servers: ['alpha', 'beta'],
  });
}

export function run(input) {
  try {
    const args = input.trim() ? JSON.parse(input) : {};
    const names = args.servers ?? servers().slice(0, 2);
    const rounds = args.rounds ?? 3;
    const mode = args.mode ?? 'fanout';
    if (mode === 'temporary') {
      const counters = [];
      for (let i = 0; i < rounds; i++) counters.push(Number(call(`${names[0]}__counter`).text));
      return JSON.stringify({ counters });
    }
    if (mode === 'errors') {
      return withSession(names.slice(0, 1), (s) => {
        const echo = `${names[0]}__echo`;
        return JSON.stringify({
          array_args: kind(() => s.callRaw(echo, '[1]')),
          unknown_tool: kind(() => s.call(`${names[0]}__nope`)),
          unknown_server: kind(() => call('nosuch__echo')),
          bad_name: kind(() => s.call('echo')),
          tool_error: s.call(`${names[0]}__fail`, { message: 'm' }).isError,
        });
      });
    }
    const message = args.message ?? 'hello from javascript';
    return withSession(names, (session) => {
      log('info', `session open on ${names}`);
      const counters = Object.fromEntries(names.map((n) => [n, []]));
      for (let i = 0; i < rounds; i++) {
        const results = joinAll(names.map((n) => session.start(`${n}__counter`)));
        results.forEach((r, j) => {
          if (r instanceof Error) throw r;
          counters[names[j]].push(Number(r.text));
        });
      }
      const echoes = joinAll(names.map((n) => session.start(`${n}__echo`, { message }))).map((r) => (r instanceof Error ? r.message : r.text));
      const pids = Object.fromEntries(names.map((n) => [n, session.call(`${n}__pid`).text]));
      return JSON.stringify({ servers: names, counters, echoes, pids });
    });
  } catch (e) {
    // A string thrown from an export returning result<string, string> becomes its `err`.
    throw e instanceof Error ? e.message : String(e);
  }
}
