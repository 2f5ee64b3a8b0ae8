// The operator scripts' failures, each with a stable code, so a script can print one clear line
// and tests can tell a refused connection from a bad answer.

export type ScriptErrorCode =
  | 'SPANSCOPE_SCRIPT_ERR_USAGE'
  | 'SPANSCOPE_SCRIPT_ERR_UNREACHABLE'
  | 'SPANSCOPE_SCRIPT_ERR_HTTP'
  | 'SPANSCOPE_SCRIPT_ERR_DECODE';

export class ScriptError extends Error {
  readonly code: ScriptErrorCode;
  constructor(code: ScriptErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ScriptError';
    this.code = code;
  }
}

/** A command-line flag or argument that cannot be used; the message is printed before the usage. */
export class UsageError extends ScriptError {
  constructor(message: string) {
    super('SPANSCOPE_SCRIPT_ERR_USAGE', message);
    this.name = 'UsageError';
  }
}

/** No HTTP answer at all: connection refused, unknown host, reset, timeout. */
export class UnreachableError extends ScriptError {
  readonly url: string;
  constructor(url: string, message: string, options?: ErrorOptions) {
    super('SPANSCOPE_SCRIPT_ERR_UNREACHABLE', message, options);
    this.name = 'UnreachableError';
    this.url = url;
  }
}

/** An HTTP answer with a status the caller cannot use. */
export class HttpStatusError extends ScriptError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('SPANSCOPE_SCRIPT_ERR_HTTP', message);
    this.name = 'HttpStatusError';
    this.status = status;
  }
}

/** A body that is not what the protocol says it should be. */
export class DecodeError extends ScriptError {
  constructor(message: string, options?: ErrorOptions) {
    super('SPANSCOPE_SCRIPT_ERR_DECODE', message, options);
    this.name = 'DecodeError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
