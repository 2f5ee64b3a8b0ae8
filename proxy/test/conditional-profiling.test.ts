import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../src/errors.ts';
import { closingLevel, createProfilingGate } from '../src/profiling/conditional.ts';
import type {
  ProfilingGatePosition,
  ProfilingGateReason,
  ProfilingGateState,
} from '../src/profiling/conditional.ts';
import { createResourceUsageReader, detectResourceLimits } from '../src/profiling/resource-usage.ts';
import type { ResourceUsage, ResourceUsageReader } from '../src/profiling/resource-usage.ts';

const MiB = 1024 * 1024;
const fixtures: string[] = [];

after(async () => {
  await Promise.all(fixtures.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A cgroupfs look-alike: `files` maps paths under the root to contents; `proc` is /proc/self/cgroup. */
async function fixture(
  files: Record<string, string>,
  proc?: string,
): Promise<{ cgroupRoot: string; procSelfCgroup: string; write(path: string, text: string): Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), 'spanscope-cgroup-'));
  fixtures.push(base);
  const cgroupRoot = join(base, 'sys-fs-cgroup');
  await mkdir(cgroupRoot);
  const write = async (path: string, text: string): Promise<void> => {
    const full = join(cgroupRoot, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, text);
  };
  for (const [path, text] of Object.entries(files)) await write(path, text);
  const procSelfCgroup = join(base, 'proc-self-cgroup');
  if (proc !== undefined) await writeFile(procSelfCgroup, proc);
  return { cgroupRoot, procSelfCgroup, write };
}

/** The unified hierarchy of a container with its own cgroup namespace. */
function v2Files(cpuMax: string, memoryMax: string, current = 0, inactiveFile = 0): Record<string, string> {
  return {
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    'cpu.max': `${cpuMax}\n`,
    'memory.max': `${memoryMax}\n`,
    'memory.current': `${current}\n`,
    'memory.stat': `anon 1000\nfile 2000\nactive_file 500\ninactive_file ${inactiveFile}\nslab 10\n`,
  };
}

function burn(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  if (Number.isNaN(x)) throw new Error('unreachable');
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('resource limits and usage', () => {
  it('cgroup v2: CPU from cpu.max, memory as working set (current minus inactive file) of memory.max', async () => {
    const fx = await fixture(v2Files('50000 100000', String(100 * MiB), 60 * MiB, 10 * MiB), '0::/\n');
    const limits = await detectResourceLimits(fx);
    assert.deepEqual(limits, {
      cgroup: 'v2',
      cpuCores: 0.5,
      cpuSource: 'cgroup',
      memoryBytes: 100 * MiB,
      memorySource: 'cgroup',
    });
    const usage = await createResourceUsageReader(fx).read();
    assert.equal(usage.memoryBytes, 50 * MiB);
    assert.equal(usage.memoryPercent, 50);
  });

  it('cgroup v2 without limits ("max"): the host cores and memory, and the process RSS', async () => {
    const fx = await fixture(v2Files('max 100000', 'max', 60 * MiB), '0::/\n');
    const usage = await createResourceUsageReader(fx).read();
    assert.deepEqual(usage.limits, {
      cgroup: 'v2',
      cpuCores: availableParallelism(),
      cpuSource: 'host',
      memoryBytes: totalmem(),
      memorySource: 'host',
    });
    const rss = process.memoryUsage.rss();
    assert.notEqual(usage.memoryBytes, 60 * MiB, 'memory.current is not used without a limit');
    assert.ok(
      usage.memoryBytes > rss / 2 && usage.memoryBytes < rss * 2,
      `${usage.memoryBytes} ~ RSS ${rss}`,
    );
  });

  it('cgroup v2 nested: the tightest CPU quota on the way up, and the memory level nearest its limit', async () => {
    const fx = await fixture(
      {
        'cgroup.controllers': 'cpu memory\n',
        'kubepods/cpu.max': 'max 100000\n',
        'kubepods/memory.max': `${1024 * MiB}\n`,
        'kubepods/memory.current': `${160 * MiB}\n`,
        'kubepods/pod1/cpu.max': '25000 100000\n',
        'kubepods/pod1/memory.max': `${200 * MiB}\n`,
        'kubepods/pod1/memory.current': `${150 * MiB}\n`,
        'kubepods/pod1/ctr/cpu.max': '75000 100000\n',
        'kubepods/pod1/ctr/memory.max': 'max\n',
        'kubepods/pod1/ctr/memory.current': `${140 * MiB}\n`,
      },
      '0::/kubepods/pod1/ctr\n',
    );
    const usage = await createResourceUsageReader(fx).read();
    assert.equal(usage.limits.cpuCores, 0.25);
    assert.equal(usage.limits.memoryBytes, 200 * MiB);
    assert.equal(usage.memoryBytes, 150 * MiB);
    assert.equal(usage.memoryPercent, 75);
  });

  it('cgroup v2 without a cgroup namespace: a host path that is not mounted falls back to the mount root', async () => {
    const fx = await fixture(v2Files('50000 100000', String(100 * MiB), 25 * MiB), '0::/docker/3f2a9c\n');
    const usage = await createResourceUsageReader(fx).read();
    assert.equal(usage.limits.cpuCores, 0.5);
    assert.equal(usage.memoryPercent, 25);
  });

  it('cgroup v1: cfs quota/period and memory.limit_in_bytes minus total_inactive_file', async () => {
    const fx = await fixture(
      {
        'cpu,cpuacct/cpu.cfs_quota_us': '50000\n',
        'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
        'memory/memory.limit_in_bytes': `${128 * MiB}\n`,
        'memory/memory.usage_in_bytes': `${100 * MiB}\n`,
        'memory/memory.stat': `cache 1\nrss 2\ninactive_file 1\ntotal_inactive_file ${36 * MiB}\n`,
      },
      '12:memory:/docker/3f2a9c\n4:cpu,cpuacct:/docker/3f2a9c\n1:name=systemd:/docker/3f2a9c\n0::/\n',
    );
    const usage = await createResourceUsageReader(fx).read();
    assert.deepEqual(usage.limits, {
      cgroup: 'v1',
      cpuCores: 0.5,
      cpuSource: 'cgroup',
      memoryBytes: 128 * MiB,
      memorySource: 'cgroup',
    });
    assert.equal(usage.memoryBytes, 64 * MiB);
    assert.equal(usage.memoryPercent, 50);
  });

  it('cgroup v1 unlimited (quota -1, the page-rounded "no limit"), on a hybrid host: the host', async () => {
    const fx = await fixture(
      {
        'unified/cgroup.controllers': '\n',
        'cpu/cpu.cfs_quota_us': '-1\n',
        'cpu/cpu.cfs_period_us': '100000\n',
        'memory/memory.limit_in_bytes': '9223372036854771712\n',
        'memory/memory.usage_in_bytes': `${100 * MiB}\n`,
      },
      '4:memory:/\n2:cpu:/\n0::/\n',
    );
    assert.deepEqual(await detectResourceLimits(fx), {
      cgroup: 'v1',
      cpuCores: availableParallelism(),
      cpuSource: 'host',
      memoryBytes: totalmem(),
      memorySource: 'host',
    });
  });

  it('a CPU quota above the CPUs the process may run on: the CPUs bind', async () => {
    const fx = await fixture(v2Files('100000000 100000', 'max'), '0::/\n');
    const limits = await detectResourceLimits(fx);
    assert.equal(limits.cpuCores, availableParallelism());
    assert.equal(limits.cpuSource, 'host');
  });

  it('no cgroupfs at all: the host', async () => {
    const fx = await fixture({});
    assert.deepEqual(await detectResourceLimits(fx), {
      cgroup: 'none',
      cpuCores: availableParallelism(),
      cpuSource: 'host',
      memoryBytes: totalmem(),
      memorySource: 'host',
    });
  });

  it('reads limits again on every read (in-place pod resize)', async () => {
    const fx = await fixture(v2Files('50000 100000', String(100 * MiB), 50 * MiB), '0::/\n');
    const reader = createResourceUsageReader(fx);
    assert.equal((await reader.read()).memoryPercent, 50);
    await fx.write('memory.max', `${200 * MiB}\n`);
    await fx.write('cpu.max', '25000 100000\n');
    const usage = await reader.read();
    assert.equal(usage.memoryPercent, 25);
    assert.equal(usage.limits.cpuCores, 0.25);
  });

  it('CPU percent: process CPU time over elapsed time × allowed cores, higher while burning', async () => {
    const fx = await fixture(v2Files('100000 100000', 'max'), '0::/\n');
    const reader = createResourceUsageReader(fx);
    await reader.read();
    await sleep(100);
    const idle = await reader.read();
    burn(100);
    const busy = await reader.read();
    assert.ok(busy.cpuPercent > idle.cpuPercent, `burning ${busy.cpuPercent}% > idle ${idle.cpuPercent}%`);
    // The same burn measured against half a core reads about twice as high.
    await fx.write('cpu.max', '50000 100000\n');
    burn(100);
    const halfCore = await reader.read();
    assert.equal(halfCore.limits.cpuCores, 0.5);
    assert.ok(halfCore.cpuPercent > idle.cpuPercent * 2);
  });

  it('reads the real system of this machine', async () => {
    const usage = await createResourceUsageReader().read();
    assert.ok(usage.limits.cpuCores > 0 && usage.limits.cpuCores <= availableParallelism());
    assert.ok(usage.limits.memoryBytes > 0 && usage.limits.memoryBytes <= totalmem());
    assert.ok(usage.memoryPercent > 0 && usage.memoryPercent <= 100, `${usage.memoryPercent}`);
    assert.ok(Number.isFinite(usage.cpuPercent) && usage.cpuPercent >= 0);
  });
});

interface Switch {
  position: ProfilingGatePosition;
  reason: ProfilingGateReason;
  usage: ResourceUsage;
  at: number;
}

describe('the conditional-profiling gate', () => {
  it('is always open when disabled, and reads nothing', async () => {
    let reads = 0;
    const real = createResourceUsageReader();
    const counting: ResourceUsageReader = {
      read: () => {
        reads++;
        return real.read();
      },
    };
    const gate = createProfilingGate({
      enabled: false,
      cpuThresholdPercent: 100,
      memoryThresholdPercent: 100,
      intervalMs: 1,
      reader: counting,
    });
    await sleep(20);
    await gate.evaluate();
    assert.equal(gate.isOpen(), true);
    assert.equal(gate.state().reason, 'disabled');
    assert.equal(reads, 0);
    gate.close();
  });

  it('memory: opens above the threshold, holds, closes only below the hysteresis band, reopens above', async () => {
    const limit = 1_000_000;
    const fx = await fixture(v2Files('max 100000', String(limit)), '0::/\n');
    const setMemory = (percent: number) => fx.write('memory.current', `${(limit * percent) / 100}\n`);
    let clock = 1_000;
    const switches: Switch[] = [];
    const real = createResourceUsageReader(fx);
    const gate = createProfilingGate({
      enabled: true,
      cpuThresholdPercent: 100,
      memoryThresholdPercent: 50,
      hysteresisPercent: 5,
      minHoldMs: 1_000,
      intervalMs: 3_600_000,
      // The steps are a millisecond apart, and the kernel accounts CPU time in ticks of several:
      // over such a window the CPU figure can read far above 100% and open the gate by itself
      // (seen once in a full run). This test is about memory, so the CPU figure is held at 0.
      reader: { read: async () => ({ ...(await real.read()), cpuPercent: 0 }) },
      now: () => clock,
      onChange: (position, reason, usage) => switches.push({ position, reason, usage, at: clock }),
    });
    const step = async (percent: number): Promise<ProfilingGateState> => {
      await setMemory(percent);
      return gate.evaluate();
    };
    try {
      assert.equal(gate.isOpen(), false);
      assert.equal(gate.state().reason, 'starting');
      assert.equal((await step(40)).open, false);
      assert.equal((await step(50)).open, false, 'at the threshold is not above it');

      const opened = await step(60);
      assert.equal(opened.open, true);
      assert.equal(opened.reason, 'memory_above_threshold');
      assert.equal(opened.lastUsage?.memoryPercent, 60);

      clock += 999;
      assert.equal((await step(10)).open, true, 'held open for minHoldMs even far below the band');
      clock += 1;
      assert.equal((await step(48)).open, true, 'inside the band: stays open');
      assert.equal((await step(45)).open, true, 'at the closing level: stays open');
      const closed = await step(44);
      assert.equal(closed.open, false);
      assert.equal(closed.reason, 'usage_below_threshold');

      assert.equal((await step(48)).open, false, 'inside the band: stays closed');
      const reopened = await step(51);
      assert.equal(reopened.open, true, 'no hold on the closed side');

      assert.deepEqual(
        switches.map(({ position, reason, usage }) => [position, reason, usage.memoryPercent]),
        [
          ['open', 'memory_above_threshold', 60],
          ['closed', 'usage_below_threshold', 44],
          ['open', 'memory_above_threshold', 51],
        ],
      );
      assert.equal(gate.state().opened, 2);
      assert.equal(gate.state().closed, 1);
      assert.equal(gate.state().since, clock);
    } finally {
      gate.close();
    }
  });

  it('opens on CPU under a real CPU burn in this process and closes after the burn, after the hold', async () => {
    // One allowed core, so the burning thread is about 100% of the allowance on any machine.
    const fx = await fixture(v2Files('100000 100000', 'max'), '0::/\n');
    const minHoldMs = 300;
    const switches: Switch[] = [];
    let notify: () => void = () => undefined;
    const gate = createProfilingGate({
      enabled: true,
      cpuThresholdPercent: 20,
      memoryThresholdPercent: 100,
      hysteresisPercent: 5,
      minHoldMs,
      intervalMs: 50,
      reader: createResourceUsageReader(fx),
      onChange: (position, reason, usage) => {
        switches.push({ position, reason, usage, at: Date.now() });
        notify();
      },
    });
    // `work` undefined: wait idle (a setImmediate loop would itself keep the CPU busy).
    const until = (count: number, work?: () => void): Promise<void> =>
      new Promise((resolve, reject) => {
        let timedOut = false;
        const deadline = setTimeout(() => {
          timedOut = true;
          notify = () => undefined;
          reject(new Error(`gate switches so far: ${JSON.stringify(switches.map((s) => s.position))}`));
        }, 20_000);
        notify = () => {
          if (switches.length >= count) {
            clearTimeout(deadline);
            notify = () => undefined;
            resolve();
          }
        };
        const loop = (): void => {
          if (switches.length >= count || timedOut || work === undefined) return;
          work();
          setImmediate(loop);
        };
        loop();
      });
    try {
      assert.equal(gate.isOpen(), false);
      // Burn in slices, so the gate's timer and its file reads still get their turns.
      await until(1, () => burn(10));
      assert.equal(gate.isOpen(), true);
      await until(2);
      assert.equal(gate.isOpen(), false);

      const [open, closed] = switches;
      assert.ok(open !== undefined && closed !== undefined);
      assert.deepEqual(
        [open.position, open.reason, closed.position, closed.reason],
        ['open', 'cpu_above_threshold', 'closed', 'usage_below_threshold'],
      );
      assert.ok(open.usage.cpuPercent > 20, `opened at ${open.usage.cpuPercent}%`);
      assert.ok(closed.usage.cpuPercent < closingLevel(20, 5), `closed at ${closed.usage.cpuPercent}%`);
      assert.ok(closed.at - open.at >= minHoldMs, `held open ${closed.at - open.at} ms`);
      assert.equal(gate.state().opened, 1);
      assert.equal(gate.state().closed, 1);
    } finally {
      gate.close();
      await nextTurn();
    }
  });

  it('keeps its position when a read fails or onChange throws, and reports both', async () => {
    const fx = await fixture(v2Files('max 100000', '1000', 900), '0::/\n');
    const real = createResourceUsageReader(fx);
    let fail = true;
    const errors: unknown[] = [];
    const gate = createProfilingGate({
      enabled: true,
      cpuThresholdPercent: 100,
      memoryThresholdPercent: 50,
      intervalMs: 3_600_000,
      reader: { read: () => (fail ? Promise.reject(new Error('EIO')) : real.read()) },
      onChange: () => {
        throw new Error('logger broke');
      },
      onError: (error) => errors.push(error),
    });
    try {
      await gate.evaluate();
      assert.equal(gate.isOpen(), false);
      fail = false;
      await gate.evaluate();
      assert.equal(gate.isOpen(), true, 'the switch happened although onChange threw');
      assert.deepEqual(
        errors.map((error) => (error as Error).message),
        ['EIO', 'logger broke'],
      );
    } finally {
      gate.close();
    }
  });

  it('refuses thresholds outside 0-100 with a ConfigError naming the variable', () => {
    for (const [cpu, memory, variable] of [
      [101, 50, 'CPU_THRESHOLD_FOR_PROFILING'],
      [50, -1, 'MEMORY_THRESHOLD_FOR_PROFILING'],
      [Number.NaN, 50, 'CPU_THRESHOLD_FOR_PROFILING'],
    ] as const) {
      assert.throws(
        () =>
          createProfilingGate({ enabled: true, cpuThresholdPercent: cpu, memoryThresholdPercent: memory }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.code === 'SPANSCOPE_ERR_CONFIG' &&
          error.variable === variable,
      );
    }
  });

  it('closing level: threshold minus the band, but never below half the threshold', () => {
    assert.equal(closingLevel(80, 5), 75);
    assert.equal(closingLevel(6, 5), 3);
    assert.equal(closingLevel(0, 5), 0);
  });

  it('a real-system gate evaluates without a fixture', async () => {
    const gate = createProfilingGate({
      enabled: true,
      cpuThresholdPercent: 100,
      memoryThresholdPercent: 100,
      intervalMs: 3_600_000,
    });
    try {
      const state = await gate.evaluate();
      assert.ok(state.lastUsage !== undefined);
      assert.equal(state.open, false);
    } finally {
      gate.close();
    }
  });
});
