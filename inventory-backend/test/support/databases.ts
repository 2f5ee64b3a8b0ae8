// Isolated test databases: a fresh SQLite file in a temp folder, or a fresh PostgreSQL schema
// (selected through the connection's search_path) that is dropped afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import type { DatabaseConfig } from '../../src/config.ts';

export type DatabaseKind = 'sqlite' | 'postgres';
export const DATABASE_KINDS: readonly DatabaseKind[] = ['sqlite', 'postgres'];

/** The PostgreSQL server the tests use (a database where the user may create schemas). */
export const POSTGRES_TEST_URL =
  process.env.INVENTORY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  readonly kind: DatabaseKind;
  /** The DATABASE_URL selecting this database. */
  readonly url: string;
  readonly config: DatabaseConfig;
  /** Runs SQL on this database behind the service's back (to break it on purpose). */
  exec(sql: string): Promise<void>;
  /** Removes the database (file or schema). */
  drop(): Promise<void>;
}

function uniqueName(label: string): string {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30);
  return `inv_test_${slug}_${process.pid.toString()}_${randomBytes(4).toString('hex')}`;
}

async function createSqliteDatabase(label: string): Promise<TestDatabase> {
  const dir = await mkdtemp(path.join(tmpdir(), `${uniqueName(label)}-`));
  const file = path.join(dir, 'inventory.db');
  return {
    kind: 'sqlite',
    url: `sqlite:${file}`,
    config: { kind: 'sqlite', path: file },
    exec: (sql) => {
      const db = new DatabaseSync(file);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
    drop: () => rm(dir, { recursive: true, force: true }),
  };
}

async function createPostgresSchema(label: string): Promise<TestDatabase> {
  const schema = uniqueName(label);
  const admin = new pg.Client({ connectionString: POSTGRES_TEST_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_TEST_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const inSchema = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${schema}`);
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  return {
    kind: 'postgres',
    url: url.toString(),
    config: { kind: 'postgres', url: url.toString() },
    exec: inSchema,
    drop: () => inSchema(`DROP SCHEMA ${schema} CASCADE`),
  };
}

/** A new, empty, isolated database of the given kind; `label` only makes its name readable. */
export function createTestDatabase(kind: DatabaseKind, label: string): Promise<TestDatabase> {
  return kind === 'sqlite' ? createSqliteDatabase(label) : createPostgresSchema(label);
}
