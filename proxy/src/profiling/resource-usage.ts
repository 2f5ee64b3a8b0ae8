// How much of its allowance the process is using: CPU and memory as a percentage of the cgroup
// limit when the container has one, else of the host. Read by the conditional-profiling gate.
//
// Limits are re-read on every call: Kubernetes can resize a running pod's limits in place, and the
// files are tiny in-memory cgroupfs entries.
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { join } from 'node:path';

export type CgroupVersion = 'v2' | 'v1' | 'none';
/** `cgroup`: a cgroup limit tighter than the host binds; `host`: no limit, or a looser one than the host. */
export type LimitSource = 'cgroup' | 'host';

export interface ResourceLimits {
  /** Which cgroup hierarchy was found (`none` off Linux or without a mounted cgroupfs). */
  readonly cgroup: CgroupVersion;
  /** Cores the process may use: the CPU quota, capped by the CPUs it may run on. */
  readonly cpuCores: number;
  readonly cpuSource: LimitSource;
  readonly memoryBytes: number;
  readonly memorySource: LimitSource;
}

export interface ResourceUsage {
  /**
   * The process's CPU time since the previous read over (elapsed time × allowed cores), in percent.
   * 100 means the whole allowance; it can exceed 100 briefly (GC and libuv threads run in parallel).
   */
  readonly cpuPercent: number;
  /** `memoryBytes` over `limits.memoryBytes`, in percent. */
  readonly memoryPercent: number;
  /**
   * With a cgroup memory limit: the cgroup's working set (usage minus inactive file cache), the
   * figure the kubelet and `kubectl top` compare with the limit. Without one: the process's RSS.
   */
  readonly memoryBytes: number;
  readonly limits: ResourceLimits;
}

export interface ResourceUsageReader {
  read(): Promise<ResourceUsage>;
}

export interface ResourceUsageOptions {
  /** Where cgroupfs is mounted (default `/sys/fs/cgroup`); tests point it at fixture directories. */
  readonly cgroupRoot?: string;
  /** The process's cgroup membership (default `/proc/self/cgroup`). */
  readonly procSelfCgroup?: string;
}

const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';
const DEFAULT_PROC_SELF_CGROUP = '/proc/self/cgroup';

interface MemoryLevel {
  readonly limit: number;
  readonly workingSet: number;
}

interface CgroupReading {
  readonly version: CgroupVersion;
  /** The tightest CPU quota on the way to the root, in cores; undefined when unlimited. */
  readonly quotaCores: number | undefined;
  /** Every level with a memory limit, with that level's working set. */
  readonly memory: readonly MemoryLevel[];
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function toNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/** One `key value` line of memory.stat. */
function statValue(stat: string | undefined, key: string): number {
  if (stat === undefined) return 0;
  for (const line of stat.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name === key) return toNumber(value) ?? 0;
  }
  return 0;
}

interface CgroupMembership {
  /** cgroup v2: the path after `0::`. */
  readonly unified: string | undefined;
  /** cgroup v1: controller → path, with the controller list as mounted (`cpu,cpuacct`). */
  readonly v1: ReadonlyMap<string, { readonly mount: string; readonly path: string }>;
}

function parseMembership(text: string | undefined): CgroupMembership {
  const v1 = new Map<string, { mount: string; path: string }>();
  let unified: string | undefined;
  for (const line of (text ?? '').split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trim() || '/';
    if (id === '0' && controllers === '') {
      unified = path;
      continue;
    }
    for (const controller of controllers.split(',')) {
      if (controller !== '') v1.set(controller, { mount: controllers, path });
    }
  }
  return { unified, v1 };
}

/**
 * The directories from the process's own cgroup up to the hierarchy's root. Inside a container
 * without a cgroup namespace, /proc/self/cgroup names a host path that is not mounted there; the
 * mount then is the container's own cgroup, and only the root is searched.
 */
async function levels(hierarchy: string, path: string): Promise<string[]> {
  const parts = path.split('/').filter((part) => part !== '' && part !== '..');
  const leaf = join(hierarchy, ...parts);
  if (parts.length === 0 || !(await isDirectory(leaf))) return [hierarchy];
  const dirs: string[] = [];
  for (let n = parts.length; n >= 0; n--) dirs.push(join(hierarchy, ...parts.slice(0, n)));
  return dirs;
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

async function readV2(root: string, membership: CgroupMembership): Promise<CgroupReading> {
  let quotaCores: number | undefined;
  const memory: MemoryLevel[] = [];
  for (const dir of await levels(root, membership.unified ?? '/')) {
    // cpu.max: "<quota> <period>" in µs, or "max <period>".
    const [quota, period] = ((await readText(join(dir, 'cpu.max'))) ?? '').trim().split(/\s+/);
    const quotaUs = toNumber(quota);
    const periodUs = toNumber(period);
    if (quotaUs !== undefined && periodUs !== undefined && quotaUs > 0 && periodUs > 0) {
      quotaCores = minDefined(quotaCores, quotaUs / periodUs);
    }
    const limit = toNumber(await readText(join(dir, 'memory.max')));
    if (limit !== undefined && limit > 0) {
      const current = toNumber(await readText(join(dir, 'memory.current'))) ?? 0;
      const inactiveFile = statValue(await readText(join(dir, 'memory.stat')), 'inactive_file');
      memory.push({ limit, workingSet: Math.max(0, current - inactiveFile) });
    }
  }
  return { version: 'v2', quotaCores, memory };
}

/** The mounted directory of a v1 controller: `cpu,cpuacct` as listed, or the single name. */
async function v1Hierarchy(
  root: string,
  membership: CgroupMembership,
  controller: string,
): Promise<{ dir: string; path: string } | undefined> {
  const entry = membership.v1.get(controller);
  const candidates = entry === undefined ? [controller] : [entry.mount, controller];
  for (const name of candidates) {
    const dir = join(root, name);
    if (await isDirectory(dir)) return { dir, path: entry?.path ?? '/' };
  }
  return undefined;
}

async function readV1(root: string, membership: CgroupMembership): Promise<CgroupReading> {
  let quotaCores: number | undefined;
  const memory: MemoryLevel[] = [];
  const cpu = await v1Hierarchy(root, membership, 'cpu');
  if (cpu !== undefined) {
    for (const dir of await levels(cpu.dir, cpu.path)) {
      // A quota of -1 means unlimited.
      const quotaUs = toNumber(await readText(join(dir, 'cpu.cfs_quota_us')));
      const periodUs = toNumber(await readText(join(dir, 'cpu.cfs_period_us')));
      if (quotaUs !== undefined && periodUs !== undefined && quotaUs > 0 && periodUs > 0) {
        quotaCores = minDefined(quotaCores, quotaUs / periodUs);
      }
    }
  }
  const mem = await v1Hierarchy(root, membership, 'memory');
  if (mem !== undefined) {
    for (const dir of await levels(mem.dir, mem.path)) {
      // "Unlimited" is a huge page-rounded number (9223372036854771712); the host comparison in
      // `limitsFrom` turns any limit above physical memory into "no limit".
      const limit = toNumber(await readText(join(dir, 'memory.limit_in_bytes')));
      if (limit !== undefined && limit > 0) {
        const usage = toNumber(await readText(join(dir, 'memory.usage_in_bytes'))) ?? 0;
        const inactiveFile = statValue(await readText(join(dir, 'memory.stat')), 'total_inactive_file');
        memory.push({ limit, workingSet: Math.max(0, usage - inactiveFile) });
      }
    }
  }
  return { version: 'v1', quotaCores, memory };
}

async function readCgroup(root: string, procSelfCgroup: string): Promise<CgroupReading> {
  const membership = parseMembership(await readText(procSelfCgroup));
  // Only a unified mount has cgroup.controllers at its root; a hybrid host (v1 controllers plus an
  // empty v2 tree at /sys/fs/cgroup/unified) enforces its limits through v1.
  if ((await readText(join(root, 'cgroup.controllers'))) !== undefined) return readV2(root, membership);
  if (membership.v1.size > 0 || (await isDirectory(join(root, 'memory')))) return readV1(root, membership);
  return { version: 'none', quotaCores: undefined, memory: [] };
}

interface MemoryChoice {
  readonly limits: Pick<ResourceLimits, 'memoryBytes' | 'memorySource'>;
  readonly usedBytes: number;
}

function chooseMemory(reading: CgroupReading, hostBytes: number, rssBytes: () => number): MemoryChoice {
  // Of several limited levels (container, pod), the one nearest to its limit is the one that OOMs.
  let worst: MemoryLevel | undefined;
  for (const level of reading.memory) {
    if (level.limit >= hostBytes) continue;
    if (worst === undefined || level.workingSet / level.limit > worst.workingSet / worst.limit) worst = level;
  }
  if (worst === undefined) {
    return { limits: { memoryBytes: hostBytes, memorySource: 'host' }, usedBytes: rssBytes() };
  }
  return { limits: { memoryBytes: worst.limit, memorySource: 'cgroup' }, usedBytes: worst.workingSet };
}

interface Snapshot {
  readonly limits: ResourceLimits;
  readonly memoryBytes: number;
}

async function snapshot(options: ResourceUsageOptions): Promise<Snapshot> {
  const reading = await readCgroup(
    options.cgroupRoot ?? DEFAULT_CGROUP_ROOT,
    options.procSelfCgroup ?? DEFAULT_PROC_SELF_CGROUP,
  );
  // availableParallelism() already honours the CPU affinity mask (cpuset).
  const hostCores = availableParallelism();
  const quotaCores = reading.quotaCores ?? Infinity;
  const memory = chooseMemory(reading, totalmem(), () => process.memoryUsage.rss());
  return {
    limits: Object.freeze({
      cgroup: reading.version,
      cpuCores: Math.min(quotaCores, hostCores),
      cpuSource: quotaCores < hostCores ? 'cgroup' : 'host',
      ...memory.limits,
    }),
    memoryBytes: memory.usedBytes,
  };
}

/** The limits that apply to this process now. */
export async function detectResourceLimits(options: ResourceUsageOptions = {}): Promise<ResourceLimits> {
  return (await snapshot(options)).limits;
}

/**
 * A reader whose CPU figure covers the time since its previous `read()` (the first read: since
 * the reader was created).
 */
export function createResourceUsageReader(options: ResourceUsageOptions = {}): ResourceUsageReader {
  let lastCpu = process.cpuUsage();
  let lastTime = process.hrtime.bigint();
  return {
    async read() {
      const { limits, memoryBytes } = await snapshot(options);
      const cpu = process.cpuUsage();
      const now = process.hrtime.bigint();
      const cpuUs = cpu.user - lastCpu.user + (cpu.system - lastCpu.system);
      const elapsedUs = Number(now - lastTime) / 1000;
      lastCpu = cpu;
      lastTime = now;
      const cpuPercent = elapsedUs > 0 ? (cpuUs / (elapsedUs * limits.cpuCores)) * 100 : 0;
      return Object.freeze({
        cpuPercent,
        memoryPercent: (memoryBytes * 100) / limits.memoryBytes,
        memoryBytes,
        limits,
      });
    },
  };
}
