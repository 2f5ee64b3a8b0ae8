// Rendering the kustomizations: kubectl kustomize and the Node renderer agree, a change to the
// env file rolls the pods, and the documented render command is the one that works.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  RenderError,
  configMapHashSuffix,
  kubectlAvailable,
  renderWithKubectl,
  renderWithNode,
} from './support/kustomize.ts';
import type { Manifest } from './support/kustomize.ts';
import { DEPLOY_DIR, ENV_FILE, K8S_BASE, K8S_CLASSIC_OVERLAY } from './support/paths.ts';
import { listOf, pick, recordOf } from './support/values.ts';

const NO_KUBECTL = kubectlAvailable() ? false : 'kubectl is not installed here';

/** A copy of deploy/k8s and the env file in a temporary tree with the same layout. */
function copyTree(envFile: string): string {
  const root = mkdtempSync(path.join(tmpdir(), 'spanscope-k8s-'));
  cpSync(path.join(DEPLOY_DIR, 'k8s'), path.join(root, 'deploy/k8s'), { recursive: true });
  writeFileSync(path.join(root, '.env.profiling'), envFile);
  return root;
}

function envConfigMapReference(manifests: readonly Manifest[]): unknown {
  const deployment = manifests.find((manifest) => manifest.kind === 'Deployment');
  const containers = listOf(pick(deployment, 'spec.template.spec.containers'));
  return pick(recordOf(listOf(recordOf(containers[0]).envFrom)[0]), 'configMapRef.name');
}

describe('kustomize rendering', () => {
  const temporary: string[] = [];
  after(() => {
    for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, dir] of [
    ['base', K8S_BASE],
    ['classic-sidecar overlay', K8S_CLASSIC_OVERLAY],
  ] as const) {
    it(
      `the Node renderer gives the objects kubectl kustomize gives (${name})`,
      { skip: NO_KUBECTL },
      async () => {
        assert.deepEqual(renderWithNode(dir), await renderWithKubectl(dir));
      },
    );
  }

  it('names the generated ConfigMap with the hash suffix kustomize computes', () => {
    // Reference values from kubectl kustomize 5.5 (kubectl 1.32).
    assert.equal(configMapHashSuffix({ A: '1', B: '' }), '6b7bdh6bkg');
    assert.notEqual(configMapHashSuffix({ A: '1', B: '' }), configMapHashSuffix({ A: '2', B: '' }));
  });

  it('a change to the env file changes the ConfigMap the pod template names, so the pods roll', async () => {
    const original = readFileSync(ENV_FILE, 'utf8');
    const changed = original.replace(/^LOG_LEVEL=.*$/m, 'LOG_LEVEL=debug');
    assert.notEqual(changed, original, 'the env file sets LOG_LEVEL');
    const before = copyTree(original);
    const afterChange = copyTree(changed);
    temporary.push(before, afterChange);
    const renderers = kubectlAvailable() ? [renderWithNode, renderWithKubectl] : [renderWithNode];
    for (const render of renderers) {
      const first = await render(path.join(before, 'deploy/k8s/base'));
      const second = await render(path.join(afterChange, 'deploy/k8s/base'));
      const firstName = envConfigMapReference(first);
      const secondName = envConfigMapReference(second);
      assert.match(String(firstName), /^spanscope-env-[a-z0-9]{10}$/);
      assert.notEqual(firstName, secondName, `${render.name}: same ConfigMap name after the change`);
    }
  });

  it('the Node renderer refuses kustomize fields it does not implement', () => {
    const root = copyTree(readFileSync(ENV_FILE, 'utf8'));
    temporary.push(root);
    const file = path.join(root, 'deploy/k8s/base/kustomization.yaml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}namePrefix: demo-\n`);
    assert.throws(() => renderWithNode(path.join(root, 'deploy/k8s/base')), RenderError);
  });

  it(
    'kubectl needs --load-restrictor=LoadRestrictionsNone for the env file, as the README says',
    { skip: NO_KUBECTL },
    async () => {
      const { execFile } = await import('node:child_process');
      const stderr = await new Promise<string>((resolve) => {
        execFile('kubectl', ['kustomize', K8S_BASE], (error, _stdout, errorOutput) => {
          resolve(error === null ? '' : errorOutput);
        });
      });
      assert.match(stderr, /is not in or below/);
      const readme = readFileSync(path.join(DEPLOY_DIR, 'README.md'), 'utf8');
      assert.match(
        readme,
        /kubectl kustomize --load-restrictor=LoadRestrictionsNone deploy\/k8s\/base \| kubectl apply -f -/,
      );
    },
  );
});
