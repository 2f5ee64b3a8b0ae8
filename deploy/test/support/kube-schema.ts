// Kubernetes object validation offline. npm kubernetes-models ships the API's OpenAPI schemas
// compiled to validators; they check types, enums and required fields but accept any extra key,
// and a misspelt key (`livenessprobe`, `readOnlyRootFileSystem`) is exactly what the API server
// would drop or refuse. So each object is validated through a Proxy that records which keys the
// validator looked at: a key it never read is a key the schema does not have.
import { validate as validateConfigMap } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap';
import { validate as validateSecret } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Secret';
import { validate as validateService } from 'kubernetes-models/_schemas/IoK8sApiCoreV1Service';
import { validate as validateServiceAccount } from 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount';
import { validate as validateDeployment } from 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment';
import { validate as validatePodDisruptionBudget } from 'kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget';
import type { Manifest } from './kustomize.ts';
import { escapePointer, isRecord, pick } from './values.ts';

interface ValidatorError {
  readonly instancePath: string;
  readonly keyword: string;
  readonly params: unknown;
  readonly message?: string;
}
type Validator = ((data: unknown) => boolean) & { errors?: ValidatorError[] | null };

const VALIDATORS: Readonly<Record<string, Validator>> = {
  'v1/ConfigMap': validateConfigMap,
  'v1/Secret': validateSecret,
  'v1/Service': validateService,
  'v1/ServiceAccount': validateServiceAccount,
  'apps/v1/Deployment': validateDeployment,
  'policy/v1/PodDisruptionBudget': validatePodDisruptionBudget,
};

export function manifestName(manifest: Manifest): string {
  return `${String(manifest.kind)}/${String(pick(manifest, 'metadata.name'))}`;
}

/** Records, per object, the keys read through the proxy and whether its keys were listed. */
class KeyTracker {
  readonly #read = new WeakMap<object, Set<string>>();
  readonly #listed = new WeakSet<object>();
  readonly #proxies = new WeakMap<object, object>();

  wrap(value: unknown): unknown {
    if (typeof value !== 'object' || value === null) return value;
    const cached = this.#proxies.get(value);
    if (cached !== undefined) return cached;
    const read = new Set<string>();
    this.#read.set(value, read);
    const proxy = new Proxy(value, {
      get: (target, key, receiver) => {
        if (typeof key === 'string') read.add(key);
        return this.wrap(Reflect.get(target, key, receiver));
      },
      has: (target, key) => {
        if (typeof key === 'string') read.add(key);
        return Reflect.has(target, key);
      },
      // A schema with additionalProperties (labels, annotations, resource quantities, data)
      // enumerates the keys: the object is a map and every key in it is allowed.
      ownKeys: (target) => {
        this.#listed.add(target);
        return Reflect.ownKeys(target);
      },
    });
    this.#proxies.set(value, proxy);
    return proxy;
  }

  unknownKeys(value: unknown, pointer = ''): string[] {
    if (Array.isArray(value)) {
      return (value as unknown[]).flatMap((item, index) => this.unknownKeys(item, `${pointer}/${index}`));
    }
    if (!isRecord(value)) return [];
    const read = this.#read.get(value);
    const found: string[] = [];
    for (const [key, item] of Object.entries(value)) {
      const here = `${pointer}/${escapePointer(key)}`;
      if (!this.#listed.has(value) && !(read?.has(key) ?? false)) found.push(here);
      else found.push(...this.unknownKeys(item, here));
    }
    return found;
  }
}

/** Type, enum and required-field errors of one object. */
export function schemaProblems(manifest: Manifest): string[] {
  const validator = VALIDATORS[`${String(manifest.apiVersion)}/${String(manifest.kind)}`];
  if (validator === undefined) {
    return [
      `${manifestName(manifest)}: no schema for ${String(manifest.apiVersion)} ${String(manifest.kind)} in these checks`,
    ];
  }
  if (validator(manifest)) return [];
  return (validator.errors ?? []).map(
    (error) =>
      `${manifestName(manifest)}${error.instancePath}: ${error.message ?? error.keyword} ${JSON.stringify(error.params)}`,
  );
}

/** Keys the object's schema does not define. */
export function unknownFieldProblems(manifest: Manifest): string[] {
  const validator = VALIDATORS[`${String(manifest.apiVersion)}/${String(manifest.kind)}`];
  if (validator === undefined) return [];
  const tracker = new KeyTracker();
  validator(tracker.wrap(manifest));
  return tracker
    .unknownKeys(manifest)
    .map(
      (pointer) =>
        `${manifestName(manifest)}${pointer}: unknown field (not in the ${String(manifest.kind)} schema)`,
    );
}
