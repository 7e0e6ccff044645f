/// <reference lib="esnext.disposable" />
// Types of mcp-registry-guest (the package's version is the WIT package's, mcp-registry:plugin).

/** A tool as the host presents it: `name` is namespaced, `server__tool`. */
export interface Tool {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
}

/** The JSON a plugin's `describe` returns; `servers` and `tools` say what it needs. */
export function describe(plugin: {
  name: string;
  description: string;
  inputSchema?: Record<string, unknown>;
  servers?: string[];
  tools?: string[];
}): string;

/** The WIT `error` cases. */
export type ErrorKind =
  | 'not-found'
  | 'denied'
  | 'invalid-input'
  | 'server-failed'
  | 'timeout'
  | 'limit-exceeded';

/** A request the host refused or could not complete; `message` is "kind: detail". */
export class RegistryError extends Error {
  readonly kind: ErrorKind | 'unknown';
  readonly detail: string;
}

/** A tool's answer; a tool-level failure has `isError` set (not a RegistryError). */
export class CallResult {
  readonly content: Array<Record<string, unknown>>;
  readonly structured: Record<string, unknown> | null;
  readonly isError: boolean;
  /** The text items of `content`, joined with newlines. */
  readonly text: string;
}

/** The servers this plugin may use. */
export function servers(): string[];
/** Temporary mode: the tools of `names` (every allowed server if empty). */
export function listTools(names?: string[]): Tool[];
/** Temporary mode: starts the one server `name` names, calls the tool, stops it. */
export function call(name: string, args?: Record<string, unknown>): CallResult;

/** A call in flight; closing it before it finished cancels it. */
export class PendingCall {
  /** The result once the call finished, else null; throws its RegistryError. */
  tryGet(): CallResult | null;
  /** Blocks until the call finished. */
  wait(): CallResult;
  close(): void;
  [Symbol.dispose](): void;
}

/** Waits for every call at once; CallResults or RegistryErrors, in order. */
export function joinAll(calls: PendingCall[]): Array<CallResult | RegistryError>;

/** Persistent mode: connections open until `close` (or the end of a `using` block). */
export class Session {
  static open(names: string[]): Session;
  listTools(): Tool[];
  call(name: string, args?: Record<string, unknown>): CallResult;
  /** Calls with arguments given as JSON text, as they are. */
  callRaw(name: string, text: string): CallResult;
  /** Starts a call and returns at once; many may run concurrently. */
  start(name: string, args?: Record<string, unknown>): PendingCall;
  close(): void;
  [Symbol.dispose](): void;
}

/** Runs `body(session)` and closes the session afterwards, however `body` ends. */
export function withSession<T>(names: string[], body: (session: Session) => T): T;

/** Writes to the host's log, tagged with the plugin's name. */
export function log(level: 'trace' | 'debug' | 'info' | 'warn' | 'error', message: string): void;

/** Reports how far the run is; under `mcp-registry serve`, the call's progress notifications. */
export function reportProgress(progress: number, total?: number, message?: string): void;
