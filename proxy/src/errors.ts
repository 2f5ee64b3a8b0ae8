// One catalogue of the proxy's failures, each with a stable code that logs, metrics and tests key on.

export type SpanscopeErrorCode =
  | 'SPANSCOPE_ERR_CONFIG'
  | 'SPANSCOPE_ERR_ROUTES_FILE'
  | 'SPANSCOPE_ERR_UPSTREAM_UNAVAILABLE'
  | 'SPANSCOPE_ERR_UPSTREAM_TIMEOUT'
  | 'SPANSCOPE_ERR_UPSTREAM_RESET'
  | 'SPANSCOPE_ERR_CLIENT_ABORT'
  | 'SPANSCOPE_ERR_LABEL'
  | 'SPANSCOPE_ERR_INGEST'
  | 'SPANSCOPE_ERR_PROFILE_QUERY'
  | 'SPANSCOPE_ERR_PROFILE_MERGE'
  | 'SPANSCOPE_ERR_PROFILE_STORE';

export class SpanscopeError extends Error {
  readonly code: SpanscopeErrorCode;
  constructor(code: SpanscopeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SpanscopeError';
    this.code = code;
  }

  /** The JSON body a client is answered with when this error refuses its request. */
  answer(): Record<string, unknown> {
    return { error: this.message, code: this.code };
  }
}

/** A setting that cannot be used; the message is the one line printed before exiting. */
export class ConfigError extends SpanscopeError {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super('SPANSCOPE_ERR_CONFIG', message);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export class RoutesFileError extends SpanscopeError {
  constructor(message: string, options?: ErrorOptions) {
    super('SPANSCOPE_ERR_ROUTES_FILE', message, options);
    this.name = 'RoutesFileError';
  }
}

/** A profile label the scheme in labels.ts does not allow: unknown name, malformed or non-string value. */
export class LabelError extends SpanscopeError {
  /** The offending label name, as given. */
  readonly label: string;
  constructor(label: string, message: string) {
    super('SPANSCOPE_ERR_LABEL', message);
    this.name = 'LabelError';
    this.label = label;
  }
}

/**
 * How a forwarded request failed, as exposed in `error.type` span attributes, metric labels and logs.
 * Kept short and stable: dashboards and alerts match on these strings.
 */
export type UpstreamFailureKind =
  'upstream_unavailable' | 'upstream_timeout' | 'upstream_reset' | 'client_abort';
