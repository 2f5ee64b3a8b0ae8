// The rendered Kubernetes objects, base (native sidecar) and overlay (classic container), against
// the rules of issue 6: schema and unknown fields, sidecar, Service, probes, termination,
// security, env file, Downward API, resources. Each rule also fails on a seeded mistake.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { itCatchesFixtures } from './support/checks.ts';
import { applyPatch } from './support/json-patch.ts';
import { parseEnvFile } from './support/env-file.ts';
import { K8S_CHECKS } from './support/k8s-checks.ts';
import type { PodVariant, RenderedDeployment } from './support/k8s-checks.ts';
import { renderKustomization } from './support/kustomize.ts';
import type { Manifest } from './support/kustomize.ts';
import { ENV_FILE, K8S_BASE, K8S_CLASSIC_OVERLAY } from './support/paths.ts';
import { pick } from './support/values.ts';

const VARIANTS: Readonly<Record<PodVariant, string>> = { native: K8S_BASE, classic: K8S_CLASSIC_OVERLAY };

describe('Kubernetes manifests', () => {
  const rendered = new Map<PodVariant, RenderedDeployment>();
  const renderers = new Map<PodVariant, string>();
  before(async () => {
    const env = parseEnvFile(readFileSync(ENV_FILE, 'utf8')).entries;
    for (const [variant, dir] of Object.entries(VARIANTS) as [PodVariant, string][]) {
      const { manifests, renderer } = await renderKustomization(dir);
      rendered.set(variant, { manifests, env, variant });
      renderers.set(variant, renderer);
    }
  });
  const input = (variant: PodVariant): RenderedDeployment => {
    const found = rendered.get(variant);
    assert.ok(found, `${variant} was not rendered`);
    return found;
  };

  for (const variant of Object.keys(VARIANTS) as PodVariant[]) {
    for (const check of K8S_CHECKS) {
      it(`${variant}: ${check.rule}`, () => {
        assert.deepEqual(check.run(input(variant)), []);
      });
    }
  }

  it('renders a ConfigMap, a Service and a Deployment', (t) => {
    for (const variant of Object.keys(VARIANTS) as PodVariant[]) {
      t.diagnostic(`${variant}: rendered with ${renderers.get(variant) ?? '?'}`);
      assert.deepEqual(
        input(variant).manifests.map((manifest) => manifest.kind),
        ['ConfigMap', 'Service', 'Deployment'],
      );
    }
  });

  itCatchesFixtures('k8s', K8S_CHECKS, (fixture) => {
    const variant = (fixture.subject ?? 'native') as PodVariant;
    assert.ok(variant in VARIANTS, `${fixture.file}: subject must be native or classic`);
    const good = input(variant);
    const matches = (manifest: Manifest) =>
      Object.entries(fixture.target).every(([key, value]) =>
        key === 'name' ? pick(manifest, 'metadata.name') === value : manifest[key] === value,
      );
    assert.ok(good.manifests.some(matches), `${fixture.file}: target matches no object`);
    const manifests = good.manifests.map((manifest) =>
      matches(manifest) ? applyPatch(manifest, fixture.patch) : manifest,
    );
    return { ...good, manifests };
  });
});
