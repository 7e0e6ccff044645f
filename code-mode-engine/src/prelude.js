// The code-mode prelude, evaluated once before the snapshot. It builds what a snippet sees
// (`tools`, `console`, `ToolError`, `progress`) over three native functions, which it takes
// off the global object, and returns the hooks the engine calls: `names` (this run's
// identifier mapping) and `settle` (a started call finished).
(() => {
  'use strict';
  const start = globalThis.__mcpStart;
  const emit = globalThis.__mcpConsole;
  const report = globalThis.__mcpProgress;
  delete globalThis.__mcpStart;
  delete globalThis.__mcpConsole;
  delete globalThis.__mcpProgress;

  /** A tool call that did not produce a value: `kind` says why (the host's error variant). */
  class ToolError extends Error {
    constructor(kind, message, tool) {
      super(message);
      this.name = 'ToolError';
      this.kind = kind;
      this.tool = tool;
    }
  }

  const pending = new Map();
  const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  let names = {};

  const call = (name, args) =>
    new Promise((resolve, reject) => {
      let text;
      try {
        text = JSON.stringify(args === undefined ? {} : args);
      } catch (e) {
        reject(new ToolError('invalid', `the arguments of ${name} are not JSON: ${e.message}`, name));
        return;
      }
      const started = start(name, text);
      if (typeof started === 'number') pending.set(started, { resolve, reject, name });
      else reject(new ToolError(started.kind, started.message, name));
    });

  // `tools.<server>.<tool>(args)`: identifiers from `search`, mapped back to registry names;
  // any other name is tried as `server__tool` as written (`tools['my-server']['a.b']`).
  const server = (s) =>
    new Proxy(
      {},
      {
        get(_, t) {
          if (typeof t !== 'string' || t === 'then') return undefined;
          const mapped = has(names, s) && has(names[s], t) ? names[s][t] : `${s}__${t}`;
          return (args) => call(mapped, args);
        },
      },
    );
  const tools = new Proxy(
    {},
    { get: (_, s) => (typeof s === 'string' && s !== 'then' ? server(s) : undefined) },
  );

  const show = (v) => {
    if (typeof v === 'string') return v;
    try {
      const json = JSON.stringify(v);
      return json === undefined ? String(v) : json;
    } catch {
      return String(v);
    }
  };
  const log = (level) => (...args) => emit(level, args.map(show).join(' '));

  Object.defineProperty(globalThis, 'tools', { value: tools });
  globalThis.ToolError = ToolError;
  /** `progress(done, total?, message?)`: progress of `execute`, seen by its client. */
  globalThis.progress = (done, total, message) => {
    report(Number(done), total == null ? null : Number(total), message == null ? null : String(message));
  };
  globalThis.console = {
    log: log('log'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    debug: log('debug'),
  };

  return {
    names(n) {
      names = n;
    },
    settle(id, ok, value) {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      if (ok) p.resolve(value);
      else p.reject(new ToolError(value.kind, value.message, p.name));
    },
  };
})()
