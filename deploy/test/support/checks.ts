// A check is a named rule over some input that returns its problems (empty: the rule holds).
// Every area's tests run each check on the real files (no problems) and on seeded mistakes from
// test/fixtures (the expected problem), so no check can pass whatever the files say.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import type { PatchOperation } from './json-patch.ts';
import { toPatch } from './json-patch.ts';
import { FIXTURES_DIR, relativeToRepo } from './paths.ts';
import { isRecord, listOf, recordOf, stringOf } from './values.ts';
import { parseYamlDocuments } from './yaml-files.ts';

export interface Check<Input> {
  /** Stable id, named by the fixtures. */
  readonly id: string;
  /** The rule, as a sentence. */
  readonly rule: string;
  readonly run: (input: Input) => string[];
}

/** One seeded mistake: a change to a good file and the problem a check must report for it. */
export interface Fixture {
  readonly file: string;
  readonly check: string;
  /** Why this mistake matters, one sentence. */
  readonly why: string;
  /** A fragment of the problem text the check must report. */
  readonly expect: string;
  /** Which input the change applies to, when an area has several (a variant or a file). */
  readonly subject: string | undefined;
  /** For patches: which object of a multi-object input (Kubernetes kind and name). */
  readonly target: Readonly<Record<string, unknown>>;
  readonly patch: readonly PatchOperation[];
  readonly replace: readonly { readonly from: string; readonly to: string }[];
}

const FIXTURE_FIELDS = new Set(['check', 'why', 'expect', 'subject', 'target', 'patch', 'replace']);

/** Every `bad-*.yaml` fixture of an area (a folder of test/fixtures). */
export function loadFixtures(area: string): Fixture[] {
  const dir = path.join(FIXTURES_DIR, area);
  return readdirSync(dir)
    .filter((name) => name.startsWith('bad-') && name.endsWith('.yaml'))
    .sort()
    .map((name) => {
      const file = path.join(dir, name);
      const where = relativeToRepo(file);
      const [value] = parseYamlDocuments(readFileSync(file, 'utf8'), where);
      if (!isRecord(value)) throw new Error(`${where}: not a mapping`);
      for (const key of Object.keys(value)) {
        if (!FIXTURE_FIELDS.has(key)) throw new Error(`${where}: unknown fixture field "${key}"`);
      }
      const check = stringOf(value.check);
      const why = stringOf(value.why);
      const expect = stringOf(value.expect);
      if (check === undefined || why === undefined || expect === undefined) {
        throw new Error(`${where}: needs check, why and expect`);
      }
      const replace = listOf(value.replace).map((item) => {
        const from = stringOf(recordOf(item).from);
        const to = stringOf(recordOf(item).to);
        if (from === undefined || to === undefined) throw new Error(`${where}: replace needs from and to`);
        return { from, to };
      });
      const patch = value.patch === undefined ? [] : toPatch(value.patch, where);
      if (patch.length === 0 && replace.length === 0) throw new Error(`${where}: needs a patch or a replace`);
      return {
        file: where,
        check,
        why,
        expect,
        subject: stringOf(value.subject),
        target: recordOf(value.target),
        patch,
        replace,
      };
    });
}

/** Applies a fixture's text replacements; each `from` must occur in the good file. */
export function replaceText(source: string, fixture: Fixture): string {
  let result = source;
  for (const { from, to } of fixture.replace) {
    assert.ok(result.includes(from), `${fixture.file}: "${from}" is not in the file it changes`);
    result = result.replace(from, to);
  }
  return result;
}

function findCheck<Input>(checks: readonly Check<Input>[], id: string, file: string): Check<Input> {
  const check = checks.find((candidate) => candidate.id === id);
  assert.ok(check, `${file}: no check "${id}" (known: ${checks.map((c) => c.id).join(', ')})`);
  return check;
}

/** Asserts that `problems` has one matching the fixture's `expect`. */
export function assertCaught(problems: readonly string[], fixture: Fixture): void {
  assert.ok(
    problems.some((problem) => problem.includes(fixture.expect)),
    `${fixture.file}: check "${fixture.check}" should report "${fixture.expect}" (${fixture.why}); it reported ${
      problems.length === 0 ? 'nothing' : problems.map((problem) => `\n  - ${problem}`).join('')
    }`,
  );
}

/** Asserts that every check is exercised by at least one fixture. */
function assertEveryCheckSeeded<Input>(checks: readonly Check<Input>[], fixtures: readonly Fixture[]): void {
  const seeded = new Set(fixtures.map((fixture) => fixture.check));
  const unseeded = checks.filter((check) => !seeded.has(check.id)).map((check) => check.id);
  assert.deepEqual(unseeded, [], `checks without a bad fixture: ${unseeded.join(', ')}`);
}

/**
 * Registers an area's fixture tests: every check has a seeded mistake in test/fixtures/`area`, and
 * each fixture's check reports the expected problem on `bad(fixture)` (the good input with the
 * fixture's mistake applied).
 */
export function itCatchesFixtures<Input>(
  area: string,
  checks: readonly Check<Input>[],
  bad: (fixture: Fixture) => Input,
): void {
  const fixtures = loadFixtures(area);
  it(`every rule has a seeded mistake in test/fixtures/${area}`, () => {
    assertEveryCheckSeeded(checks, fixtures);
  });
  for (const fixture of fixtures) {
    it(`catches ${fixture.file}: ${fixture.why}`, () => {
      assertCaught(findCheck(checks, fixture.check, fixture.file).run(bad(fixture)), fixture);
    });
  }
}
