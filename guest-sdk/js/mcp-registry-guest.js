// Write mcp-registry plugins in JavaScript (jco / componentize-js).
//
// A thin layer over the imports of `wit/orchestrator.wit`: JSON values instead of JSON
// text, one error class, and a Session whose lifetime is a block:
//
//   using session = Session.open(["alpha", "beta"]);   // where `using` is supported
//   // or: withSession(["alpha", "beta"], (session) => { ... })   (try/finally)
//
// Leaving the block drops the WIT resource, which closes the session's server processes.

import { servers as rawServers, listTools as rawListTools, callTool as rawCallTool, Session as RawSession } from 'mcp-registry:plugin/registry@0.1.1';
import { log as rawLog } from 'mcp-registry:plugin/log@0.1.1';
import { report as rawReport } from 'mcp-registry:plugin/progress@0.1.1';
import { poll } from 'wasi:io/poll@0.2.12';

const dispose = Symbol.dispose ?? Symbol.for('Symbol.dispose');

/**
 * The JSON a plugin's `describe` returns. The host grants a plugin no server until it is told
 * to; `servers` and `tools` (globs over SERVER__TOOL) say what this one needs, which
 * `mcp-registry run --allow-requested` grants.
 */
export function describe({ name, description, inputSchema = { type: 'object' }, servers = [], tools = [] }) {
  const d = { name, description, inputSchema };
  if (servers.length || tools.length) d.requires = { servers, tools };
  return JSON.stringify(d);
}

export class RegistryError extends Error {
  constructor(payload) {
    const kind = payload && payload.tag ? payload.tag : 'unknown';
    const message = payload && payload.val !== undefined ? payload.val : String(payload);
    super(`${kind}: ${message}`);
    this.kind = kind;
    this.detail = message;
  }
}

function wrap(fn) {
  try {
    return fn();
  } catch (e) {
    // jco throws the WIT error value as `e.payload` for functions returning result<_, error>.
    if (e && e.payload !== undefined) throw new RegistryError(e.payload);
    throw e;
  }
}

export class CallResult {
  constructor(raw) {
    this.content = JSON.parse(raw.content);
    this.structured = raw.structuredContent ? JSON.parse(raw.structuredContent) : null;
    this.isError = raw.isError;
  }
  get text() {
    return this.content.filter((b) => typeof b.text === 'string').map((b) => b.text).join('\n');
  }
}

export function servers() {
  return rawServers();
}

export function listTools(names = []) {
  return wrap(() => rawListTools(names)).map((t) => ({ name: t.name, description: t.description, inputSchema: JSON.parse(t.inputSchema) }));
}

export function call(name, args = {}) {
  return new CallResult(wrap(() => rawCallTool(name, JSON.stringify(args))));
}

export class PendingCall {
  constructor(raw) {
    this.raw = raw;
  }
  tryGet() {
    const outcome = this.raw.get();
    if (outcome === undefined || outcome === null) return null;
    if (outcome.tag === 'err') throw new RegistryError(outcome.val);
    return new CallResult(outcome.val);
  }
  wait() {
    for (;;) {
      const r = this.tryGet();
      if (r) return r;
      const p = this.raw.subscribe();
      p.block();
      p[dispose]?.();
    }
  }
  close() {
    this.raw[dispose]?.();
  }
  [dispose]() {
    this.close();
  }
}

// Waits for every call concurrently (the host runs them in parallel); returns CallResults or
// RegistryErrors, in order.
export function joinAll(calls) {
  const out = new Array(calls.length).fill(undefined);
  for (;;) {
    const waiting = [];
    calls.forEach((c, i) => {
      if (out[i] !== undefined) return;
      try {
        const r = c.tryGet();
        if (r) out[i] = r;
        else waiting.push(i);
      } catch (e) {
        out[i] = e;
      }
    });
    if (waiting.length === 0) return out;
    const pollables = waiting.map((i) => calls[i].raw.subscribe());
    try {
      poll(pollables);
    } finally {
      pollables.forEach((p) => p[dispose]?.());
    }
  }
}

export class Session {
  constructor(raw) {
    this.raw = raw;
  }
  static open(names) {
    return new Session(wrap(() => RawSession.open(names)));
  }
  listTools() {
    return wrap(() => this.raw.listTools()).map((t) => ({ name: t.name, description: t.description, inputSchema: JSON.parse(t.inputSchema) }));
  }
  call(name, args = {}) {
    return new CallResult(wrap(() => this.raw.callTool(name, JSON.stringify(args))));
  }
  callRaw(name, text) {
    return new CallResult(wrap(() => this.raw.callTool(name, text)));
  }
  start(name, args = {}) {
    return new PendingCall(wrap(() => this.raw.startCall(name, JSON.stringify(args))));
  }
  close() {
    this.raw[dispose]?.();
  }
  [dispose]() {
    this.close();
  }
}

// Runs `body(session)` and closes the session afterwards, however `body` ends.
export function withSession(names, body) {
  const session = Session.open(names);
  try {
    return body(session);
  } finally {
    session.close();
  }
}

export function log(level, message) {
  rawLog(level, message);
}

// Reports how far the run is (`progress` must grow; `total` and `message` optional). Under
// `mcp-registry serve` it becomes the tools/call's notifications/progress.
export function reportProgress(progress, total = undefined, message = undefined) {
  rawReport(progress, total, message);
}
