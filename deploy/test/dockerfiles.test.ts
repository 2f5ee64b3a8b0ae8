// The two Dockerfiles and the .dockerignore, linted for the rules of issue 6 ("Images"): no
// Docker engine runs here, so the rules are read off the files. Each rule also fails on a seeded
// mistake (test/fixtures/docker).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { itCatchesFixtures, replaceText } from './support/checks.ts';
import {
  DOCKERFILE_CHECKS,
  ignoredByDocker,
  parseDockerfile,
  parseDockerignore,
} from './support/dockerfile-lint.ts';
import type { DockerBuild } from './support/dockerfile-lint.ts';
import { DOCKERFILES, DOCKERIGNORE, relativeToRepo } from './support/paths.ts';

const dockerignore = readFileSync(DOCKERIGNORE, 'utf8');
const builds: Readonly<Record<string, DockerBuild>> = Object.fromEntries(
  Object.entries(DOCKERFILES).map(([name, file]) => [
    name,
    { file: relativeToRepo(file), source: readFileSync(file, 'utf8'), dockerignore },
  ]),
);

describe('Dockerfiles', () => {
  for (const [name, build] of Object.entries(builds)) {
    for (const check of DOCKERFILE_CHECKS) {
      it(`${name}: ${check.rule}`, () => {
        assert.deepEqual(check.run(build), []);
      });
    }
  }

  it('parses continuations, exec form and stages as Docker does', () => {
    const instructions = parseDockerfile(
      '# syntax=docker/dockerfile:1\nFROM node:24-slim AS deps\nRUN a \\\n  # note\n  b\nCMD ["node", "x.ts"]\n',
    );
    assert.deepEqual(
      instructions.map(({ keyword, args, json }) => ({ keyword, args, json })),
      [
        { keyword: 'FROM', args: 'node:24-slim AS deps', json: undefined },
        { keyword: 'RUN', args: 'a b', json: undefined },
        { keyword: 'CMD', args: '["node", "x.ts"]', json: ['node', 'x.ts'] },
      ],
    );
  });

  it('matches .dockerignore patterns as Docker does (last match wins, parents count)', () => {
    const patterns = parseDockerignore('*\n!src\nsrc/**/*.test.ts\n!src/keep.test.ts\n');
    assert.equal(ignoredByDocker(patterns, 'README.md'), true);
    assert.equal(ignoredByDocker(patterns, 'src/a/b.ts'), false);
    assert.equal(ignoredByDocker(patterns, 'src/a/b.test.ts'), true);
    assert.equal(ignoredByDocker(patterns, 'src/b.test.ts'), true);
    assert.equal(ignoredByDocker(patterns, 'src/keep.test.ts'), false);
  });

  itCatchesFixtures('docker', DOCKERFILE_CHECKS, (fixture) => {
    const subject = fixture.subject ?? 'proxy';
    const good = subject === 'dockerignore' ? builds.proxy : builds[subject];
    assert.ok(good, `${fixture.file}: subject must be proxy, backend or dockerignore`);
    return subject === 'dockerignore'
      ? { ...good, dockerignore: replaceText(good.dockerignore, fixture) }
      : { ...good, source: replaceText(good.source, fixture) };
  });
});
