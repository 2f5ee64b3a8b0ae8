// The rules the rendered Kubernetes manifests must follow (issue 6, "Kubernetes"), as checks over
// the output of kustomize. `native` is the base (proxy as a native sidecar, Kubernetes >= 1.29),
// `classic` the overlay for older clusters (proxy as a second ordinary container).
import type { Check } from './checks.ts';
import { schemaProblems, unknownFieldProblems } from './kube-schema.ts';
import type { Manifest } from './kustomize.ts';
import { isRecord, listOf, numberOf, pick, recordOf, recordsOf, stringOf } from './values.ts';

export type PodVariant = 'native' | 'classic';

export interface RenderedDeployment {
  readonly manifests: readonly Manifest[];
  /** The env file the ConfigMap is generated from. */
  readonly env: ReadonlyMap<string, string>;
  readonly variant: PodVariant;
}

export const PROXY_CONTAINER = 'spanscope-proxy';
export const BACKEND_CONTAINER = 'inventory-backend';
export const ENV_CONFIGMAP = 'spanscope-env';
export const PYROSCOPE_SECRET = 'spanscope-pyroscope';

/** README "Benchmarks", fully instrumented proxy with the profiler (last run). */
export const MEASURED = {
  /** vCPU per 1000 requests/s at saturation. */
  cpuPer1000Rps: 0.165,
  /** RSS under load. */
  rssUnderLoadMiB: 113,
  /** Highest RSS seen in the benchmark (profiler with labels). */
  rssPeakMiB: 130,
} as const;

/** Seconds a process may need after SIGTERM beyond SHUTDOWN_TIMEOUT_MS: the span and profile flush. */
export const FLUSH_MARGIN_SECONDS = 5;

/** Container env entries allowed to shadow a key of the env file (and why). */
export const ENV_OVERRIDES: Readonly<Record<string, string>> = {
  ADMIN_HOST: 'the kubelet probes the admin port on the pod IP',
  POD_NAME: 'Downward API',
  POD_NAMESPACE: 'Downward API',
  NODE_NAME: 'Downward API',
};

const DOWNWARD_API: Readonly<Record<string, string>> = {
  POD_NAME: 'metadata.name',
  POD_NAMESPACE: 'metadata.namespace',
  NODE_NAME: 'spec.nodeName',
};

interface Container {
  readonly spec: Record<string, unknown>;
  readonly name: string;
  readonly init: boolean;
}

function deploymentOf(input: RenderedDeployment): Manifest | undefined {
  return input.manifests.find((manifest) => manifest.kind === 'Deployment');
}

function podSpecOf(input: RenderedDeployment): Record<string, unknown> {
  return recordOf(pick(deploymentOf(input), 'spec.template.spec'));
}

function containersOf(input: RenderedDeployment): Container[] {
  const pod = podSpecOf(input);
  return [
    ...recordsOf(pod.initContainers).map((spec) => ({ spec, name: String(spec.name), init: true })),
    ...recordsOf(pod.containers).map((spec) => ({ spec, name: String(spec.name), init: false })),
  ];
}

function containerNamed(input: RenderedDeployment, name: string): Container | undefined {
  return containersOf(input).find((container) => container.name === name);
}

function envNumber(input: RenderedDeployment, key: string, fallback: number): number {
  const raw = input.env.get(key);
  return raw === undefined || raw.trim() === '' ? fallback : Number(raw);
}

function drainSeconds(input: RenderedDeployment): number {
  return Math.ceil(envNumber(input, 'SHUTDOWN_TIMEOUT_MS', 10_000) / 1000) + FLUSH_MARGIN_SECONDS;
}

/** Seconds a container's preStop hook waits (exec `sleep N` or the sleep action), 0 without one. */
export function preStopSeconds(container: Container | undefined): number {
  const preStop = pick(container?.spec, 'lifecycle.preStop');
  const sleepAction = numberOf(pick(preStop, 'sleep.seconds'));
  if (sleepAction !== undefined) return sleepAction;
  const command = listOf(pick(preStop, 'exec.command')).map(String);
  if (command.length === 2 && /(^|\/)sleep$/.test(command[0] ?? '')) return Number(command[1]);
  return 0;
}

/** A Kubernetes quantity as a number of cores or bytes. */
export function parseQuantity(quantity: unknown): number {
  const text = typeof quantity === 'number' ? String(quantity) : (stringOf(quantity) ?? '');
  const match = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(text);
  if (match === null) return Number.NaN;
  const factors: Record<string, number> = {
    m: 1e-3,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(match[1]) * (match[2] === undefined ? 1 : (factors[match[2]] ?? Number.NaN));
}

function namedPort(container: Container | undefined, name: string): number | undefined {
  const port = recordsOf(container?.spec.ports).find((candidate) => candidate.name === name);
  return numberOf(port?.containerPort);
}

/** The container port number a probe or Service targets (by name or number). */
function resolvePort(container: Container | undefined, port: unknown): number | undefined {
  if (typeof port === 'number') return port;
  return typeof port === 'string' ? namedPort(container, port) : undefined;
}

function probePath(container: Container | undefined, probe: string): { path?: string; port?: number } {
  const httpGet = recordOf(pick(container?.spec, `${probe}.httpGet`));
  return { path: stringOf(httpGet.path), port: resolvePort(container, httpGet.port) };
}

const requireProxy = (input: RenderedDeployment): Container | string =>
  containerNamed(input, PROXY_CONTAINER) ?? `no container named ${PROXY_CONTAINER}`;

export const K8S_CHECKS: readonly Check<RenderedDeployment>[] = [
  {
    id: 'schema',
    rule: 'every object validates against its Kubernetes API schema (kubernetes-models)',
    run: (input) => input.manifests.flatMap(schemaProblems),
  },
  {
    id: 'unknown-fields',
    rule: 'no object has a field its schema does not define',
    run: (input) => input.manifests.flatMap(unknownFieldProblems),
  },
  {
    id: 'sidecar',
    rule: 'native: the proxy is an init container with restartPolicy Always and a startup probe on /healthz; classic: an ordinary container',
    run: (input) => {
      const proxy = requireProxy(input);
      if (typeof proxy === 'string') return [proxy];
      const backend = containerNamed(input, BACKEND_CONTAINER);
      const problems: string[] = [];
      if (backend === undefined || backend.init)
        problems.push(`${BACKEND_CONTAINER} must be the main container`);
      if (input.variant === 'native') {
        if (!proxy.init) problems.push(`${PROXY_CONTAINER} must be in initContainers (a native sidecar)`);
        if (proxy.spec.restartPolicy !== 'Always') {
          problems.push(`${PROXY_CONTAINER} needs restartPolicy: Always, else the pod waits for it to exit`);
        }
        if (!isRecord(proxy.spec.startupProbe)) {
          problems.push(
            `${PROXY_CONTAINER} needs a startupProbe, so the backend starts once the proxy is up`,
          );
        } else if (probePath(proxy, 'startupProbe').path === '/readyz') {
          problems.push(
            `${PROXY_CONTAINER} startupProbe on /readyz never passes: /readyz waits for the backend, which starts after it`,
          );
        }
      } else {
        if (proxy.init)
          problems.push(`${PROXY_CONTAINER} must be an ordinary container before Kubernetes 1.29`);
        if (proxy.spec.restartPolicy !== undefined) {
          problems.push(`${PROXY_CONTAINER}: a container-level restartPolicy needs Kubernetes >= 1.29`);
        }
        const sidecars = recordsOf(podSpecOf(input).initContainers).filter(
          (c) => c.restartPolicy === 'Always',
        );
        if (sidecars.length > 0)
          problems.push('no native sidecars (restartPolicy: Always) before Kubernetes 1.29');
      }
      return problems;
    },
  },
  {
    id: 'service',
    rule: "every Service selects the pod and targets only the proxy's data port",
    run: (input) => {
      const proxy = containerNamed(input, PROXY_CONTAINER);
      const dataPort = envNumber(input, 'PROXY_PORT', 8080);
      const labels = recordOf(pick(deploymentOf(input), 'spec.template.metadata.labels'));
      const services = input.manifests.filter((manifest) => manifest.kind === 'Service');
      const problems: string[] = services.length === 0 ? ['no Service'] : [];
      if (namedPort(proxy, 'http') !== dataPort) {
        problems.push(`${PROXY_CONTAINER} port "http" must be PROXY_PORT (${dataPort})`);
      }
      for (const service of services) {
        const name = String(pick(service, 'metadata.name'));
        const selector = recordOf(pick(service, 'spec.selector'));
        if (Object.keys(selector).length === 0) problems.push(`Service ${name} has no selector`);
        for (const [key, value] of Object.entries(selector)) {
          if (labels[key] !== value)
            problems.push(`Service ${name} selector ${key}=${String(value)} misses the pod`);
        }
        for (const port of recordsOf(pick(service, 'spec.ports'))) {
          const targetPort = port.targetPort ?? port.port;
          const main = containersOf(input).filter((container) => !container.init);
          const target =
            typeof targetPort === 'string'
              ? main
                  .map((container) => namedPort(container, targetPort))
                  .find((number) => number !== undefined)
              : numberOf(targetPort);
          if (
            typeof targetPort === 'string' &&
            target === undefined &&
            proxy?.init === true &&
            namedPort(proxy, targetPort) !== undefined
          ) {
            problems.push(
              `Service ${name} targetPort "${targetPort}" names a native sidecar's port, which Services resolve only from Kubernetes 1.32 (kubernetes/kubernetes#127958): use the number`,
            );
          } else if (target !== dataPort) {
            problems.push(
              `Service ${name} port ${String(port.port)} targets ${String(port.targetPort)} (${String(target)}), not the proxy's data port ${dataPort}: clients must go through the proxy`,
            );
          }
        }
      }
      return problems;
    },
  },
  {
    id: 'probes',
    rule: 'proxy liveness on /healthz and readiness on /readyz (admin port); the backend has a preStop sleep',
    run: (input) => {
      const proxy = requireProxy(input);
      if (typeof proxy === 'string') return [proxy];
      const adminPort = envNumber(input, 'ADMIN_PORT', 9901);
      const problems: string[] = [];
      for (const [probe, path] of [
        ['livenessProbe', '/healthz'],
        ['readinessProbe', '/readyz'],
      ] as const) {
        const actual = probePath(proxy, probe);
        if (actual.path !== path || actual.port !== adminPort) {
          problems.push(
            `${PROXY_CONTAINER} ${probe} must be GET ${path} on the admin port ${adminPort} (is ${String(actual.path)} on ${String(actual.port)})`,
          );
        }
      }
      for (const container of containersOf(input)) {
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
          const port =
            pick(container.spec, `${probe}.httpGet.port`) ?? pick(container.spec, `${probe}.tcpSocket.port`);
          if (typeof port === 'string' && namedPort(container, port) === undefined) {
            problems.push(
              `${container.name} ${probe}: port "${port}" is not a port of this container (named probe ports resolve there only)`,
            );
          }
        }
      }
      if (preStopSeconds(containerNamed(input, BACKEND_CONTAINER)) <= 0) {
        problems.push(
          `${BACKEND_CONTAINER} needs a preStop sleep: it keeps serving while the endpoint removal spreads`,
        );
      }
      if (input.variant === 'classic' && preStopSeconds(proxy) <= 0) {
        problems.push(`${PROXY_CONTAINER} needs a preStop sleep when it stops together with the backend`);
      }
      return problems;
    },
  },
  {
    id: 'termination',
    rule: 'terminationGracePeriodSeconds covers backend preStop + drain, then the proxy drain; classic: the backend outlives the proxy drain',
    run: (input) => {
      const grace = numberOf(podSpecOf(input).terminationGracePeriodSeconds) ?? 30;
      const backendWait = preStopSeconds(containerNamed(input, BACKEND_CONTAINER));
      const proxyWait = preStopSeconds(containerNamed(input, PROXY_CONTAINER));
      const drain = drainSeconds(input);
      const problems: string[] = [];
      // Native sidecars get SIGTERM only after the main container has exited.
      const needed =
        input.variant === 'native' ? backendWait + 2 * drain : Math.max(backendWait, proxyWait) + drain;
      if (grace < needed) {
        problems.push(
          `terminationGracePeriodSeconds ${grace} < ${needed} s (preStop ${backendWait} s + drain ${drain} s${input.variant === 'native' ? ` + proxy drain ${drain} s` : ''})`,
        );
      }
      if (input.variant === 'classic' && backendWait < proxyWait + drain - FLUSH_MARGIN_SECONDS) {
        problems.push(
          `${BACKEND_CONTAINER} preStop ${backendWait} s ends before the proxy has drained (${proxyWait} s + ${drain - FLUSH_MARGIN_SECONDS} s)`,
        );
      }
      return problems;
    },
  },
  {
    id: 'security',
    rule: 'non-root, read-only root filesystem, all capabilities dropped, no privilege escalation, no service-account token',
    run: (input) => {
      const pod = podSpecOf(input);
      const problems: string[] = [];
      if (pod.automountServiceAccountToken !== false)
        problems.push('automountServiceAccountToken must be false');
      if (pick(pod, 'securityContext.runAsNonRoot') !== true)
        problems.push('pod securityContext.runAsNonRoot must be true');
      if (pick(pod, 'securityContext.runAsUser') === 0)
        problems.push('pod securityContext.runAsUser must not be 0');
      for (const key of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
        if (pod[key] === true) problems.push(`${key} must not be true`);
      }
      for (const container of containersOf(input)) {
        const context = recordOf(container.spec.securityContext);
        const name = container.name;
        if (context.allowPrivilegeEscalation !== false)
          problems.push(`${name}: allowPrivilegeEscalation must be false`);
        if (context.readOnlyRootFilesystem !== true)
          problems.push(`${name}: readOnlyRootFilesystem must be true`);
        if (context.privileged === true) problems.push(`${name}: privileged must not be true`);
        if (context.runAsUser === 0) problems.push(`${name}: runAsUser must not be 0`);
        if (!listOf(pick(context, 'capabilities.drop')).includes('ALL'))
          problems.push(`${name}: capabilities.drop must include ALL`);
        if (listOf(pick(context, 'capabilities.add')).length > 0)
          problems.push(`${name}: no capabilities.add`);
      }
      return problems;
    },
  },
  {
    id: 'env-file',
    rule: 'both containers take the env file through envFrom of its generated ConfigMap; credentials come from Secrets',
    run: (input) => {
      const problems: string[] = [];
      const configMaps = input.manifests.filter(
        (manifest) =>
          manifest.kind === 'ConfigMap' &&
          String(pick(manifest, 'metadata.name')).startsWith(`${ENV_CONFIGMAP}-`),
      );
      const configMap = configMaps[0];
      if (configMaps.length !== 1 || configMap === undefined) {
        return [`expected one generated ConfigMap ${ENV_CONFIGMAP}-<hash>, found ${configMaps.length}`];
      }
      const name = String(pick(configMap, 'metadata.name'));
      const data = recordOf(configMap.data);
      const expected = Object.fromEntries(input.env);
      for (const key of new Set([...Object.keys(data), ...Object.keys(expected)])) {
        if (data[key] !== expected[key]) {
          problems.push(
            `ConfigMap ${name}: ${key}=${JSON.stringify(data[key])}, the env file says ${JSON.stringify(expected[key])}`,
          );
        }
      }
      if (!/-[a-z0-9]{10}$/.test(name))
        problems.push(`ConfigMap ${name} has no content hash: a config change would not roll the pods`);
      for (const container of containersOf(input)) {
        const sources = recordsOf(container.spec.envFrom);
        if (!sources.some((source) => pick(source, 'configMapRef.name') === name)) {
          problems.push(`${container.name}: envFrom must reference ConfigMap ${name}`);
        }
        for (const variable of recordsOf(container.spec.env)) {
          const key = String(variable.name);
          if (input.env.has(key) && !(key in ENV_OVERRIDES)) {
            problems.push(
              `${container.name}: env ${key} hides the env file's value (set it in .env.profiling instead)`,
            );
          }
          if (/PASSWORD|TOKEN|SECRET/.test(key) && variable.value !== undefined) {
            problems.push(`${container.name}: ${key} as a literal value; take it from a Secret`);
          }
        }
      }
      const proxy = containerNamed(input, PROXY_CONTAINER);
      const secret = recordsOf(proxy?.spec.envFrom).find(
        (source) => pick(source, 'secretRef.name') === PYROSCOPE_SECRET,
      );
      if (secret === undefined)
        problems.push(
          `${PROXY_CONTAINER}: envFrom must include Secret ${PYROSCOPE_SECRET} (Pyroscope credentials)`,
        );
      else if (pick(secret, 'secretRef.optional') !== true) {
        problems.push(
          `${PROXY_CONTAINER}: Secret ${PYROSCOPE_SECRET} must be optional (a Pyroscope without auth needs none)`,
        );
      }
      return problems;
    },
  },
  {
    id: 'downward-api',
    rule: 'the proxy gets POD_NAME, POD_NAMESPACE and NODE_NAME from the Downward API',
    run: (input) => {
      const proxy = requireProxy(input);
      if (typeof proxy === 'string') return [proxy];
      const env = recordsOf(proxy.spec.env);
      return Object.entries(DOWNWARD_API).flatMap(([key, field]) => {
        const entry = env.find((variable) => variable.name === key);
        const actual = pick(entry, 'valueFrom.fieldRef.fieldPath');
        return actual === field
          ? []
          : [`${PROXY_CONTAINER}: ${key} must come from fieldRef ${field} (is ${String(actual)})`];
      });
    },
  },
  {
    id: 'resources',
    rule: "every container has CPU and memory requests and limits; the proxy's fit the benchmark's measured figures",
    run: (input) => {
      const problems: string[] = [];
      for (const container of containersOf(input)) {
        for (const kind of ['requests', 'limits'] as const) {
          for (const resource of ['cpu', 'memory'] as const) {
            const value = parseQuantity(pick(container.spec, `resources.${kind}.${resource}`));
            if (!(value > 0)) problems.push(`${container.name}: resources.${kind}.${resource} is missing`);
          }
        }
        const request = parseQuantity(pick(container.spec, 'resources.requests.memory'));
        const limit = parseQuantity(pick(container.spec, 'resources.limits.memory'));
        if (limit < request) problems.push(`${container.name}: memory limit below its request`);
      }
      const proxy = containerNamed(input, PROXY_CONTAINER);
      const MiB = 2 ** 20;
      const cpuRequest = parseQuantity(pick(proxy?.spec, 'resources.requests.cpu'));
      if (!(cpuRequest >= MEASURED.cpuPer1000Rps)) {
        problems.push(
          `${PROXY_CONTAINER}: cpu request ${cpuRequest} < ${MEASURED.cpuPer1000Rps} (measured vCPU per 1000 req/s)`,
        );
      }
      if (
        !(parseQuantity(pick(proxy?.spec, 'resources.requests.memory')) >= MEASURED.rssUnderLoadMiB * MiB)
      ) {
        problems.push(
          `${PROXY_CONTAINER}: memory request below the measured RSS under load (${MEASURED.rssUnderLoadMiB} MiB)`,
        );
      }
      if (!(parseQuantity(pick(proxy?.spec, 'resources.limits.memory')) > MEASURED.rssPeakMiB * MiB)) {
        problems.push(
          `${PROXY_CONTAINER}: memory limit not above the measured peak RSS (${MEASURED.rssPeakMiB} MiB): OOM kills under load`,
        );
      }
      return problems;
    },
  },
  {
    id: 'images',
    rule: 'every image has an explicit tag other than latest',
    run: (input) =>
      containersOf(input).flatMap((container) => {
        const image = stringOf(container.spec.image) ?? '';
        const tag = /^[^@]+:([^/:@]+)(@sha256:[0-9a-f]{64})?$/.exec(image)?.[1];
        return tag === undefined || tag === 'latest'
          ? [`${container.name}: image "${image}" needs a pinned tag`]
          : [];
      }),
  },
  {
    id: 'loopback-backend',
    rule: 'the backend listens on loopback and writes only to mounted volumes (SQLite data, /tmp)',
    run: (input) => {
      const problems: string[] = [];
      const host = input.env.get('BACKEND_HOST') ?? '';
      if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
        problems.push(
          `BACKEND_HOST=${host}: the backend must listen on loopback so only the proxy reaches it`,
        );
      }
      const backendUrl = input.env.get('BACKEND_URL') ?? '';
      if (
        !new RegExp(`^http://(127\\.0\\.0\\.1|localhost):${envNumber(input, 'BACKEND_PORT', 10000)}$`).test(
          backendUrl,
        )
      ) {
        problems.push(
          `BACKEND_URL=${backendUrl} must be the backend in the same pod (loopback, BACKEND_PORT)`,
        );
      }
      const backend = containerNamed(input, BACKEND_CONTAINER);
      if (recordsOf(backend?.spec.ports).length > 0)
        problems.push(`${BACKEND_CONTAINER} must not declare ports`);
      const volumes = new Set(recordsOf(podSpecOf(input).volumes).map((volume) => String(volume.name)));
      for (const container of containersOf(input)) {
        for (const mount of recordsOf(container.spec.volumeMounts)) {
          if (!volumes.has(String(mount.name)))
            problems.push(`${container.name}: volumeMount ${String(mount.name)} has no volume`);
        }
      }
      const usesSqlite = (input.env.get('DATABASE_URL') ?? '') === '';
      const dataMount = recordsOf(backend?.spec.volumeMounts).find(
        (mount) => mount.mountPath === '/app/data',
      );
      if (usesSqlite && (dataMount === undefined || dataMount.readOnly === true)) {
        problems.push(
          `${BACKEND_CONTAINER}: SQLite (DATABASE_URL unset) needs a writable volume at /app/data`,
        );
      }
      return problems;
    },
  },
  {
    id: 'pod-settings',
    rule: 'no Service environment variables (enableServiceLinks: false) and a rolling update that keeps capacity',
    run: (input) => {
      const problems: string[] = [];
      const deployment = deploymentOf(input);
      if (podSpecOf(input).enableServiceLinks !== false) {
        problems.push(
          'enableServiceLinks must be false: a Service named "backend" would inject BACKEND_PORT=tcp://…',
        );
      }
      if (pick(deployment, 'spec.strategy.rollingUpdate.maxUnavailable') !== 0) {
        problems.push('strategy.rollingUpdate.maxUnavailable must be 0');
      }
      return problems;
    },
  },
];
