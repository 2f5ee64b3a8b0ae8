// How the instructions suite (scripts/bench/instructions-suite.ts) reads a callgrind dump: what it
// counts as GC, as V8's compilers, and as V8's literal-migration slow path, which real runs do not
// take and which is therefore kept out of the request path.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { callgrindTotals } from '../bench/instructions-suite.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'callgrind-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A dump in callgrind's format: names compressed to `(id)` after their first mention. */
function dump(lines: string[]): string {
  const file = path.join(dir, `dump-${String(Math.random()).slice(2)}.out`);
  writeFileSync(file, ['# callgrind format', 'version: 1', 'events: Ir', '', ...lines, ''].join('\n'));
  return file;
}

const MIGRATION =
  'v8::internal::Runtime_DefineKeyedOwnPropertyInLiteral(int, unsigned long*, v8::internal::Isolate*)';
const MIGRATE_TO_MAP = 'v8::internal::JSObject::MigrateToMap(v8::internal::Isolate*, int)';

describe('callgrindTotals', () => {
  it('sums exclusive costs, and counts calls into the literal slow path inclusively', () => {
    const totals = callgrindTotals(
      dump([
        'fn=(1) 0x00000000deadbeef',
        '0 1000',
        `cfn=(2) ${MIGRATION}`,
        'calls=40 0',
        '0 5000',
        'fn=(2)',
        '0 1200',
        `cfn=(3) ${MIGRATE_TO_MAP}`,
        'calls=40 0',
        '0 3800',
        'fn=(3)',
        '0 3800',
        'fn=(4) v8::internal::Scavenger::ScavengePage(v8::internal::MemoryChunk*)',
        '0 700',
        'fn=(5) v8::internal::maglev::MaglevGraphBuilder::Build()',
        '0 300',
        // Node's own HTTP parser is not V8 compiling, whatever its name says.
        'fn=(6) node::http_parser::Parser::Execute(char const*, unsigned long)',
        '0 90',
        // The callee's own calls inside the slow path are not counted again.
        'fn=(2)',
        `cfn=(2)`,
        'calls=1 0',
        '0 10',
      ]),
    );
    assert.deepEqual(totals, {
      total: 1000 + 1200 + 3800 + 700 + 300 + 90,
      gc: 700,
      compiler: 300,
      literalMigration: 5000,
    });
  });

  it('counts no slow path when nothing calls it', () => {
    const totals = callgrindTotals(
      dump(['fn=(1) 0x1', '0 400', `cfn=(2) ${MIGRATE_TO_MAP}`, 'calls=2 0', '0 60']),
    );
    assert.equal(totals.literalMigration, 0);
    assert.equal(totals.total, 400);
  });
});
