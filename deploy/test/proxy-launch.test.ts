// The proxy image and `npm start -w proxy` start the proxy as proxy/src/launch-settings.ts says:
// its entry, heap flags and malloc settings. Each rule also fails on a seeded mistake
// (test/fixtures/proxy-launch).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { itCatchesFixtures, replaceText } from './support/checks.ts';
import { DOCKERFILES, DOCKERIGNORE, REPO_ROOT, relativeToRepo } from './support/paths.ts';
import { PROXY_LAUNCH_CHECKS } from './support/proxy-launch.ts';
import type { ProxyLaunch } from './support/proxy-launch.ts';

const packageFile = path.join(REPO_ROOT, 'proxy/package.json');
const launch: ProxyLaunch = {
  dockerfile: {
    file: relativeToRepo(DOCKERFILES.proxy),
    source: readFileSync(DOCKERFILES.proxy, 'utf8'),
    dockerignore: readFileSync(DOCKERIGNORE, 'utf8'),
  },
  packageFile: relativeToRepo(packageFile),
  packageJson: readFileSync(packageFile, 'utf8'),
};

describe('proxy launch settings', () => {
  for (const check of PROXY_LAUNCH_CHECKS) {
    it(check.rule, () => {
      assert.deepEqual(check.run(launch), []);
    });
  }

  itCatchesFixtures('proxy-launch', PROXY_LAUNCH_CHECKS, (fixture) => {
    const subject = fixture.subject ?? 'dockerfile';
    assert.ok(
      subject === 'dockerfile' || subject === 'package',
      `${fixture.file}: subject must be dockerfile or package`,
    );
    return subject === 'package'
      ? { ...launch, packageJson: replaceText(launch.packageJson, fixture) }
      : {
          ...launch,
          dockerfile: { ...launch.dockerfile, source: replaceText(launch.dockerfile.source, fixture) },
        };
  });
});
