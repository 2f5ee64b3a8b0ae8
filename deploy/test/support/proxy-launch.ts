// The proxy's launch settings (proxy/src/launch-settings.ts) take effect only when the process
// starts, so every launcher repeats them; these checks hold the image and `npm start -w proxy` to
// the module, so a value changed there cannot silently stay behind in one of them.
import { isDeepStrictEqual } from 'node:util';
import { PROXY_ENTRY, PROXY_MALLOC_ENV, PROXY_NODE_FLAGS } from '../../../proxy/src/launch-settings.ts';
import type { Check } from './checks.ts';
import type { DockerBuild } from './dockerfile-lint.ts';
import { finalCommand, finalEnv } from './dockerfile-lint.ts';
import { isRecord, recordOf, stringOf } from './values.ts';

export interface ProxyLaunch {
  readonly dockerfile: DockerBuild;
  /** proxy/package.json: its repository-relative path and its text. */
  readonly packageFile: string;
  readonly packageJson: string;
}

const SETTINGS = 'proxy/src/launch-settings.ts';
/** The image's WORKDIR (/app) mirrors the repository root, so the entry is named from there. */
const IMAGE_ENTRY = `proxy/${PROXY_ENTRY}`;

/** A flag's name: `--max-old-space-size=256` → `--max-old-space-size`. */
function flagName(flag: string): string {
  return flag.split('=')[0] ?? flag;
}

function imageCommandProblems(build: DockerBuild): string[] {
  const command = finalCommand(build);
  const entry = command.indexOf(IMAGE_ENTRY);
  if (command[0] !== 'node' || entry === -1) {
    return [
      `${build.file}: the image runs ${command.join(' ') || 'nothing'}, not node … ${IMAGE_ENTRY} (PROXY_ENTRY in ${SETTINGS})`,
    ];
  }
  const flags = command.slice(1, entry);
  return isDeepStrictEqual(flags, [...PROXY_NODE_FLAGS])
    ? []
    : [
        `${build.file}: node starts with ${flags.join(' ') || 'no flags'}, expected ${PROXY_NODE_FLAGS.join(' ')} (PROXY_NODE_FLAGS in ${SETTINGS})`,
      ];
}

function imageMallocProblems(build: DockerBuild): string[] {
  const env = finalEnv(build);
  return Object.entries(PROXY_MALLOC_ENV).flatMap(([name, value]) => {
    const actual = env.get(name);
    if (actual === value) return [];
    const found = actual === undefined ? `ENV ${name} is unset` : `ENV ${name}=${actual}`;
    return [`${build.file}: ${found}, expected ${value} (PROXY_MALLOC_ENV in ${SETTINGS})`];
  });
}

/** The words of the start script's command that runs the entry (`a && b`: one of a, b). */
function entryCommand(start: string): string[] | undefined {
  return start
    .split(/&&|\|\||[;|]/)
    .map((command) => command.trim().split(/\s+/))
    .find((words) => words.includes(PROXY_ENTRY));
}

function startScriptProblems(launch: ProxyLaunch): string[] {
  const where = `${launch.packageFile}: scripts.start`;
  let manifest: unknown;
  try {
    manifest = JSON.parse(launch.packageJson);
  } catch (error) {
    return [`${launch.packageFile}: not JSON (${(error as Error).message})`];
  }
  const start = isRecord(manifest) ? stringOf(recordOf(manifest.scripts).start) : undefined;
  if (start === undefined) return [`${where} is missing`];
  const words = entryCommand(start);
  if (words === undefined) return [`${where} never runs ${PROXY_ENTRY} (PROXY_ENTRY in ${SETTINGS})`];
  const node = words.indexOf('node');
  const entry = words.indexOf(PROXY_ENTRY);
  if (node === -1 || node > entry) return [`${where} runs ${PROXY_ENTRY} without node before it`];
  // A later repetition of a flag or a variable wins, so only the last one counts.
  const options = words.slice(node + 1, entry);
  const flagProblems = PROXY_NODE_FLAGS.flatMap((flag) => {
    const actual = options.findLast((word) => flagName(word) === flagName(flag));
    if (actual === flag) return [];
    return [
      actual === undefined
        ? `${where} starts ${PROXY_ENTRY} without ${flag} (PROXY_NODE_FLAGS in ${SETTINGS})`
        : `${where} starts ${PROXY_ENTRY} with ${actual}, expected ${flag} (PROXY_NODE_FLAGS in ${SETTINGS})`,
    ];
  });
  const assignments = words.slice(0, node);
  const envProblems = Object.entries(PROXY_MALLOC_ENV).flatMap(([name, value]) => {
    const actual = assignments.findLast((word) => word.startsWith(`${name}=`));
    if (actual === `${name}=${value}`) return [];
    return [
      actual === undefined
        ? `${where} starts node without ${name}=${value} (PROXY_MALLOC_ENV in ${SETTINGS})`
        : `${where} starts node with ${actual}, expected ${name}=${value} (PROXY_MALLOC_ENV in ${SETTINGS})`,
    ];
  });
  return [...flagProblems, ...envProblems];
}

export const PROXY_LAUNCH_CHECKS: readonly Check<ProxyLaunch>[] = [
  {
    id: 'image-command',
    rule: 'the image starts node with exactly PROXY_NODE_FLAGS, then proxy/PROXY_ENTRY',
    run: (launch) => imageCommandProblems(launch.dockerfile),
  },
  {
    id: 'image-malloc-env',
    rule: 'the final stage sets every PROXY_MALLOC_ENV variable to its value',
    run: (launch) => imageMallocProblems(launch.dockerfile),
  },
  {
    id: 'npm-start',
    rule: 'npm start -w proxy runs PROXY_ENTRY with PROXY_NODE_FLAGS and PROXY_MALLOC_ENV',
    run: startScriptProblems,
  },
];
