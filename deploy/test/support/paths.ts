// Where things are: every path the deploy checks read, relative to the repository root.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEPLOY_DIR = path.join(REPO_ROOT, 'deploy');
export const FIXTURES_DIR = path.join(DEPLOY_DIR, 'test/fixtures');

export const ENV_FILE = path.join(REPO_ROOT, '.env.profiling');
export const COMPOSE_FILE = path.join(DEPLOY_DIR, 'compose.yaml');
export const K8S_BASE = path.join(DEPLOY_DIR, 'k8s/base');
export const K8S_CLASSIC_OVERLAY = path.join(DEPLOY_DIR, 'k8s/overlays/classic-sidecar');
export const GRAFANA_DATASOURCES = path.join(DEPLOY_DIR, 'grafana/provisioning/datasources/datasources.yaml');
export const GRAFANA_ALERTS = path.join(DEPLOY_DIR, 'grafana/provisioning/alerting/spanscope.yaml');
export const GRAFANA_DASHBOARD_PROVIDER = path.join(
  DEPLOY_DIR,
  'grafana/provisioning/dashboards/spanscope.yaml',
);
export const GRAFANA_DASHBOARD = path.join(DEPLOY_DIR, 'grafana/dashboards/spanscope.json');
export const PROMETHEUS_CONFIG = path.join(DEPLOY_DIR, 'prometheus/prometheus.yaml');
export const TEMPO_CONFIG = path.join(DEPLOY_DIR, 'tempo/tempo.yaml');
export const DOCKERIGNORE = path.join(REPO_ROOT, '.dockerignore');
export const DOCKERFILES = {
  proxy: path.join(REPO_ROOT, 'proxy/Dockerfile'),
  backend: path.join(REPO_ROOT, 'inventory-backend/Dockerfile'),
} as const;

/** Files below `dir` (recursively, sorted) whose name passes `keep`; node_modules is skipped. */
export function filesBelow(dir: string, keep: (name: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...filesBelow(full, keep));
    else if (keep(entry.name)) found.push(full);
  }
  return found.sort();
}

export function relativeToRepo(file: string): string {
  return path.relative(REPO_ROOT, file);
}
