// CPU time and memory of a process tree, read from /proc.
//
// The primary CPU figure is the first field of /proc/<pid>/task/<tid>/schedstat (nanoseconds on CPU),
// summed over every thread of every process in the tree: far finer than the clock-tick counters of
// /proc/<pid>/stat, which are kept as a cross-check (they also include threads that already exited).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clkTck: number | undefined;
export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The process and all its descendants (nginx master + workers, a proxy and anything it forks). */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    if (pid === undefined || out.includes(pid)) continue;
    if (readText(`/proc/${pid}/stat`) === undefined) continue;
    out.push(pid);
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      // raced with exit
    }
    for (const tid of tids) {
      const children = readText(`/proc/${pid}/task/${tid}/children`);
      if (children === undefined) continue;
      for (const c of children.trim().split(/\s+/)) if (c) queue.push(Number(c));
    }
  }
  return out;
}

export interface CpuSample {
  /** Sum of schedstat on-CPU time over all live threads, ns; undefined when schedstat is unavailable. */
  schedNs: number | undefined;
  /** utime+stime from /proc/<pid>/stat, converted to µs (resolution: one clock tick). */
  statUs: number;
}

function statFields(pid: number): string[] | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

export function readCpu(pids: readonly number[]): CpuSample {
  let schedNs: number | undefined = 0;
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const s = readText(`/proc/${pid}/task/${tid}/schedstat`);
      if (s === undefined) {
        schedNs = undefined;
        continue;
      }
      if (schedNs !== undefined) schedNs += Number(s.split(' ')[0]);
    }
  }
  return { schedNs, statUs: (ticks * 1e6) / clockTicksPerSecond() };
}

export interface CpuDelta {
  /** The figure to use: schedstat when available, else stat ticks. */
  us: number;
  schedUs: number | undefined;
  statUs: number;
}

export function cpuDelta(a: CpuSample, b: CpuSample): CpuDelta {
  const schedUs =
    a.schedNs !== undefined && b.schedNs !== undefined ? (b.schedNs - a.schedNs) / 1000 : undefined;
  const statUs = b.statUs - a.statUs;
  return { us: schedUs ?? statUs, schedUs, statUs };
}

/** Resident set size (VmRSS) summed over the processes, bytes. */
export function readRss(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readText(`/proc/${pid}/status`) ?? '');
    if (m?.[1]) kib += Number(m[1]);
  }
  return kib * 1024;
}

/** Samples the RSS of a process tree periodically and keeps the maximum. */
export class RssSampler {
  private max = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly rootPids: readonly number[];

  constructor(rootPids: readonly number[], intervalMs = 200) {
    this.rootPids = rootPids;
    this.sample();
    this.timer = setInterval(() => {
      this.sample();
    }, intervalMs);
  }

  private sample(): void {
    const rss = readRss(this.rootPids.flatMap((p) => processTree(p)));
    if (rss > this.max) this.max = rss;
  }

  /** Stops sampling and returns the maximum RSS seen, bytes. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}

export function treeOf(rootPids: readonly number[]): number[] {
  return rootPids.flatMap((p) => processTree(p));
}

export function cpuModel(): string {
  const m = /^model name\s*:\s*(.+)$/m.exec(readText('/proc/cpuinfo') ?? '');
  return m?.[1]?.trim() ?? 'unknown';
}

export function loadAverage(): string {
  return (readText('/proc/loadavg') ?? '').split(' ').slice(0, 3).join(' ');
}

export interface MachineSample {
  atMs: number;
  /**
   * user+nice+system over all CPUs, clock ticks. Not irq and softirq: the kernel's processing of
   * the benchmark's own loopback traffic is accounted there, to no process, and would otherwise
   * count as other processes' load.
   */
  busyTicks: number;
  stealTicks: number;
  /** CPU of this harness and every process it started (live, or reaped into its cutime), clock ticks. */
  oursTicks: number;
}

function ownTicks(pid: number, withChildren: boolean): number {
  const f = statFields(pid);
  if (!f) return 0;
  const own = Number(f[11]) + Number(f[12]);
  return withChildren ? own + Number(f[13]) + Number(f[14]) : own;
}

/** A snapshot to tell how much CPU the rest of the machine (other sessions, the host) took. */
export function readMachine(): MachineSample {
  const cpu = (readText('/proc/stat') ?? '').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, , , , , steal = 0] = cpu;
  let ours = 0;
  for (const pid of processTree(process.pid)) ours += ownTicks(pid, true);
  return {
    atMs: performance.now(),
    busyTicks: user + nice + system,
    stealTicks: steal,
    oursTicks: ours,
  };
}

export interface Interference {
  /** CPU used by processes other than ours during the window, % of one CPU. */
  otherPct: number;
  /**
   * Time the hypervisor ran something else on this machine's vCPUs, % of one CPU. It comes in
   * slices of many milliseconds, in which a pinned process does not run at all.
   */
  stealPct: number;
}

export function interference(a: MachineSample, b: MachineSample): Interference {
  const ticks = ((b.atMs - a.atMs) / 1000) * clockTicksPerSecond();
  if (ticks <= 0) return { otherPct: 0, stealPct: 0 };
  const other = b.busyTicks - a.busyTicks - (b.oursTicks - a.oursTicks);
  return {
    otherPct: Math.max(0, (100 * other) / ticks),
    stealPct: (100 * (b.stealTicks - a.stealTicks)) / ticks,
  };
}
