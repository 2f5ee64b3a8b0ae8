// Renders a kustomization: with `kubectl kustomize` where kubectl is installed, else with a Node
// renderer of the subset of kustomize these files use (resources, configMapGenerator from env
// files, JSON 6902 patches). The Node renderer refuses any other field rather than ignore it, and
// a test checks that both give the same objects, generated ConfigMap names included.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseEnvFile } from './env-file.ts';
import { applyPatch, toPatch } from './json-patch.ts';
import { relativeToRepo } from './paths.ts';
import { isRecord, listOf, pick, recordOf, recordsOf, stringOf } from './values.ts';
import { parseYamlDocuments, readYamlFile } from './yaml-files.ts';

export type Manifest = Record<string, unknown>;
export type RendererName = 'kubectl' | 'node';

export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RenderError';
  }
}

const run = promisify(execFile);
// The env file sits at the repository root, outside every kustomization (see base/kustomization.yaml).
const KUBECTL_ARGS = ['kustomize', '--load-restrictor=LoadRestrictionsNone'];

let kubectlFound: boolean | undefined;

/** Whether `kubectl` runs here (checked once). */
export function kubectlAvailable(): boolean {
  if (kubectlFound === undefined) {
    try {
      execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 });
      kubectlFound = true;
    } catch {
      kubectlFound = false;
    }
  }
  return kubectlFound;
}

export async function renderWithKubectl(dir: string): Promise<Manifest[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('kubectl', [...KUBECTL_ARGS, dir], { maxBuffer: 16 * 1024 * 1024 }));
  } catch (error) {
    const stderr = isRecord(error) ? stringOf(error.stderr) : undefined;
    throw new RenderError(`kubectl kustomize ${relativeToRepo(dir)}: ${stderr?.trim() ?? String(error)}`);
  }
  return parseYamlDocuments(stdout, `kubectl kustomize ${relativeToRepo(dir)}`).filter(isRecord);
}

/** kubectl when available, else the Node renderer; says which one it used. */
export async function renderKustomization(
  dir: string,
): Promise<{ readonly renderer: RendererName; readonly manifests: Manifest[] }> {
  if (kubectlAvailable()) return { renderer: 'kubectl', manifests: await renderWithKubectl(dir) };
  return { renderer: 'node', manifests: renderWithNode(dir) };
}

// kustomize's ConfigMap hash (api/hasher): sha256 of the JSON of {data, kind, name}, where the
// name lookup it does comes back empty, so only the data counts; then the first 10 hex digits
// with 0,1,3,a,e swapped for letters so the suffix never reads as a number or a word.
export function configMapHashSuffix(data: Readonly<Record<string, string>>): string {
  const sorted = Object.fromEntries(
    Object.keys(data)
      .sort()
      .map((key) => [key, data[key]]),
  );
  // Go's encoding/json escapes these; JSON.stringify does not.
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' }).replace(
    /[<>&\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  const swap: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return hex.replace(/[013ae]/g, (char) => swap[char] ?? char);
}

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'configMapGenerator', 'patches']);
const GENERATOR_FIELDS = new Set(['name', 'envs']);
const PATCH_FIELDS = new Set(['path', 'target']);
const TARGET_FIELDS = new Set(['group', 'version', 'kind', 'name']);

function refuseUnknown(value: Record<string, unknown>, known: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) {
      throw new RenderError(`${where}: "${key}" is not supported by the Node renderer (use kubectl)`);
    }
  }
}

/** Renders `dir` (a folder with kustomization.yaml) in Node. */
export function renderWithNode(dir: string): Manifest[] {
  const file = path.join(dir, 'kustomization.yaml');
  const where = relativeToRepo(file);
  const kustomization = readYamlFile(file);
  if (!isRecord(kustomization)) throw new RenderError(`${where}: not a mapping`);
  refuseUnknown(kustomization, KUSTOMIZATION_FIELDS, where);
  if (kustomization.kind !== 'Kustomization') throw new RenderError(`${where}: kind is not Kustomization`);

  const manifests: Manifest[] = [];
  for (const resource of listOf(kustomization.resources)) {
    if (typeof resource !== 'string') throw new RenderError(`${where}: a resource is not a path`);
    const target = path.resolve(dir, resource);
    if (statSync(target).isDirectory()) {
      manifests.push(...renderWithNode(target));
    } else {
      const documents = parseYamlDocuments(readFileSync(target, 'utf8'), relativeToRepo(target));
      manifests.push(...documents.filter(isRecord));
    }
  }

  const renamed = new Map<string, string>();
  for (const generator of recordsOf(kustomization.configMapGenerator)) {
    refuseUnknown(generator, GENERATOR_FIELDS, `${where} configMapGenerator`);
    const name = stringOf(generator.name);
    if (name === undefined) throw new RenderError(`${where}: a configMapGenerator has no name`);
    const data: Record<string, string> = {};
    for (const envs of listOf(generator.envs)) {
      if (typeof envs !== 'string') throw new RenderError(`${where}: an envs entry is not a path`);
      const envFile = parseEnvFile(readFileSync(path.resolve(dir, envs), 'utf8'));
      for (const [key, value] of envFile.entries) {
        if (key in data) throw new RenderError(`configmap ${name} illegally repeats the key \`${key}\``);
        data[key] = value;
      }
    }
    const hashed = `${name}-${configMapHashSuffix(data)}`;
    renamed.set(name, hashed);
    manifests.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: hashed }, data });
  }
  for (const manifest of manifests) renameConfigMapReferences(manifest, renamed);

  let patched = manifests;
  for (const patch of recordsOf(kustomization.patches)) {
    refuseUnknown(patch, PATCH_FIELDS, `${where} patches`);
    const target = recordOf(patch.target);
    refuseUnknown(target, TARGET_FIELDS, `${where} patches target`);
    const patchPath = stringOf(patch.path);
    if (patchPath === undefined)
      throw new RenderError(`${where}: a patch has no path (inline patches: use kubectl)`);
    const operations = toPatch(readYamlFile(path.resolve(dir, patchPath)), patchPath);
    let matched = 0;
    patched = patched.map((manifest) => {
      if (!matchesTarget(manifest, target)) return manifest;
      matched += 1;
      return applyPatch(manifest, operations);
    });
    if (matched === 0) throw new RenderError(`${where}: patch ${patchPath} matches no resource`);
  }
  return sortLikeKustomize(patched);
}

function matchesTarget(manifest: Manifest, target: Record<string, unknown>): boolean {
  const [group, version] = String(manifest.apiVersion).includes('/')
    ? String(manifest.apiVersion).split('/')
    : ['', String(manifest.apiVersion)];
  return (
    (target.kind === undefined || target.kind === manifest.kind) &&
    (target.name === undefined || target.name === pick(manifest, 'metadata.name')) &&
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version)
  );
}

/** Where a pod spec names a ConfigMap, as kustomize's name-reference transformer rewrites it. */
function renameConfigMapReferences(manifest: Manifest, renamed: ReadonlyMap<string, string>): void {
  const podSpec = pick(manifest, 'spec.template.spec');
  if (!isRecord(podSpec)) return;
  const rename = (holder: unknown) => {
    if (!isRecord(holder) || typeof holder.name !== 'string') return;
    holder.name = renamed.get(holder.name) ?? holder.name;
  };
  for (const container of [...recordsOf(podSpec.containers), ...recordsOf(podSpec.initContainers)]) {
    for (const source of recordsOf(container.envFrom)) rename(source.configMapRef);
    for (const variable of recordsOf(container.env)) rename(pick(variable, 'valueFrom.configMapKeyRef'));
  }
  for (const volume of recordsOf(podSpec.volumes)) {
    rename(volume.configMap);
    for (const source of recordsOf(pick(volume, 'projected.sources'))) rename(source.configMap);
  }
}

// kustomize's default ("legacy") output order: by kind in this order, then by name.
const KIND_ORDER = [
  'Namespace',
  'ResourceQuota',
  'StorageClass',
  'CustomResourceDefinition',
  'ServiceAccount',
  'PodSecurityPolicy',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'ConfigMap',
  'Secret',
  'Endpoints',
  'Service',
  'LimitRange',
  'PriorityClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];

function sortLikeKustomize(manifests: Manifest[]): Manifest[] {
  const rank = (manifest: Manifest) => {
    const index = KIND_ORDER.indexOf(String(manifest.kind));
    return index === -1 ? KIND_ORDER.length : index;
  };
  const name = (manifest: Manifest) => String(pick(manifest, 'metadata.name'));
  return [...manifests].sort((a, b) => rank(a) - rank(b) || name(a).localeCompare(name(b)));
}
