// Typed errors with stable codes. `publicMessage` is the only text of an error that may reach a
// client; `message` (and `cause`) are for logs and may name files, hosts or SQL.

export const ErrorCode = {
  config: 'INV_ERR_CONFIG',
  validation: 'INV_ERR_VALIDATION',
  notFound: 'INV_ERR_NOT_FOUND',
  dbUnavailable: 'INV_ERR_DB_UNAVAILABLE',
  db: 'INV_ERR_DB',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export abstract class InventoryError extends Error {
  abstract readonly code: ErrorCode;
  /** HTTP status this error maps to when it reaches the HTTP layer. */
  abstract readonly statusCode: number;
  /** Message safe to show to a client. */
  abstract readonly publicMessage: string;
}

/** An environment variable has a value the service cannot run with. */
export class ConfigError extends InventoryError {
  readonly code = ErrorCode.config;
  readonly statusCode = 500;
  readonly publicMessage = 'internal server error';
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** The client sent something the API refuses; the message is meant for the client. */
export class ValidationError extends InventoryError {
  readonly code = ErrorCode.validation;
  readonly statusCode = 400;
  readonly publicMessage: string;

  constructor(publicMessage: string) {
    super(publicMessage);
    this.name = 'ValidationError';
    this.publicMessage = publicMessage;
  }
}

export class ProductNotFoundError extends InventoryError {
  readonly code = ErrorCode.notFound;
  readonly statusCode = 404;
  readonly publicMessage: string;
  readonly productId: number;

  constructor(productId: number) {
    super(`product with ID ${productId} not found`);
    this.name = 'ProductNotFoundError';
    this.productId = productId;
    this.publicMessage = this.message;
  }
}

/** The database cannot be reached (connection refused, closed, terminated...). */
export class DatabaseUnavailableError extends InventoryError {
  readonly code = ErrorCode.dbUnavailable;
  readonly statusCode = 503;
  readonly publicMessage = 'database unavailable';

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Any other database failure (bad SQL, missing table, constraint...). */
export class DatabaseError extends InventoryError {
  readonly code = ErrorCode.db;
  readonly statusCode = 500;
  readonly publicMessage = 'internal server error';

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatabaseError';
  }
}

/** The message of any thrown value, as one line (for logs and start-up failures). */
export function oneLineMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
