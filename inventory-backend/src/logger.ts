// The service's pino logger: JSON lines on stdout.
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { LogLevel } from './config.ts';

export const SERVICE_NAME = 'inventory-backend';

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { service: SERVICE_NAME } });
}
