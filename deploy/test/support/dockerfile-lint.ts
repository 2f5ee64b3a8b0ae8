// A small Dockerfile linter for the rules of issue 6 ("Images"), plus the .dockerignore matcher
// Docker uses, so a COPY of an ignored path (a build failure) is caught without a Docker engine.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Check } from './checks.ts';
import { REPO_ROOT } from './paths.ts';

export interface Instruction {
  readonly line: number;
  readonly keyword: string;
  /** The arguments as written (continuations joined). */
  readonly args: string;
  /** The arguments when they are a JSON array of strings (exec form). */
  readonly json: readonly string[] | undefined;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(source: string): Instruction[] {
  const instructions: Instruction[] = [];
  const lines = source.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const first = lines[index] ?? '';
    if (/^\s*(#|$)/.test(first)) continue;
    const start = index + 1;
    let text = first;
    while (/\\\s*$/.test(text) && index + 1 < lines.length) {
      index += 1;
      const next = lines[index] ?? '';
      // Comment lines inside a continued instruction are removed by Docker.
      if (/^\s*#/.test(next)) {
        text = `${text.replace(/\s*\\\s*$/, '')} \\`;
        continue;
      }
      text = `${text.replace(/\s*\\\s*$/, '')} ${next.trim()}`;
    }
    const match = /^\s*(\S+)\s*(.*)$/.exec(text);
    if (match === null) continue;
    const args = (match[2] ?? '').trim();
    instructions.push({ line: start, keyword: (match[1] ?? '').toUpperCase(), args, json: jsonArray(args) });
  }
  return instructions;
}

function jsonArray(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) return undefined;
    const items: unknown[] = value;
    return items.every((item) => typeof item === 'string') ? items : undefined;
  } catch {
    return undefined;
  }
}

export function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((word) => !word.startsWith('--'));
      const as = words.findIndex((word) => word.toUpperCase() === 'AS');
      stages.push({ image: words[0] ?? '', name: as === -1 ? undefined : words[as + 1], instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Strips `--flag=value` options from the front of an instruction's arguments. */
function withoutFlags(args: string): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let rest = args;
  for (let match = /^--(\S+)\s+/.exec(rest); match !== null; match = /^--(\S+)\s+/.exec(rest)) {
    flags.push(match[1] ?? '');
    rest = rest.slice(match[0].length);
  }
  return { flags, rest };
}

// --- .dockerignore ------------------------------------------------------------------------------

interface IgnorePattern {
  readonly exclusion: boolean;
  readonly regex: RegExp;
}

function patternRegex(pattern: string): RegExp {
  let regex = '';
  for (let index = 0; index < pattern.length; index += 1) {
    const char = pattern[index] ?? '';
    if (char === '*') {
      if (pattern[index + 1] === '*') {
        index += 1;
        // `**/` matches any number of directories, including none.
        if (pattern[index + 1] === '/') {
          index += 1;
          regex += '(?:.*/)?';
        } else {
          regex += '.*';
        }
      } else {
        regex += '[^/]*';
      }
    } else if (char === '?') {
      regex += '[^/]';
    } else {
      regex += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${regex}$`);
}

/** Docker's .dockerignore rules: cleaned patterns, `!` exceptions, the last match wins. */
export function parseDockerignore(source: string): IgnorePattern[] {
  return source
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exclusion = line.startsWith('!');
      const cleaned = path.posix
        .normalize((exclusion ? line.slice(1) : line).trim())
        .replace(/^\/+|\/+$/g, '');
      return { exclusion, regex: patternRegex(cleaned) };
    });
}

/** Whether `file` (relative to the context, forward slashes) stays out of the build context. */
export function ignoredByDocker(patterns: readonly IgnorePattern[], file: string): boolean {
  const parts = file.split('/');
  const candidates = parts.map((_, index) => parts.slice(0, index + 1).join('/'));
  let ignored = false;
  for (const pattern of patterns) {
    // A pattern that matches a parent directory matches everything below it.
    if (candidates.some((candidate) => pattern.regex.test(candidate))) ignored = !pattern.exclusion;
  }
  return ignored;
}

/** Paths that must never reach the build context. */
export const MUST_BE_IGNORED = [
  'node_modules/undici/package.json',
  'proxy/node_modules/@opentelemetry/x.js',
  'data/inventory.db',
  'inventory-backend/data/inventory.db',
  'proxy/test/forwarding.test.ts',
  'inventory-backend/test/products.test.ts',
  'proxy/src/labels.test.ts',
  '.env.profiling',
  '.env.local',
  '.git/HEAD',
  'bench-results/latest.json',
  'coverage/lcov.info',
];

// --- rules ----------------------------------------------------------------------------------

export interface DockerBuild {
  /** Repository-relative path of the Dockerfile. */
  readonly file: string;
  readonly source: string;
  readonly dockerignore: string;
}

const BASE_IMAGE = /^node:24(\.\d+\.\d+)?-slim(@sha256:[0-9a-f]{64})?$/;
const HEALTH_PATH = /\/(healthz|health|readyz)\b/;

function finalStage(build: DockerBuild): Stage | undefined {
  return stagesOf(parseDockerfile(build.source)).at(-1);
}

function all(stage: Stage | undefined, keyword: string): Instruction[] {
  return stage?.instructions.filter((instruction) => instruction.keyword === keyword) ?? [];
}

function envAssignments(instruction: Instruction): Map<string, string> {
  const assignments = new Map<string, string>();
  if (!instruction.args.includes('=')) {
    // Legacy form: ENV KEY value
    const [key, ...value] = instruction.args.split(/\s+/);
    if (key !== undefined) assignments.set(key, value.join(' '));
    return assignments;
  }
  for (const match of instruction.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)/g)) {
    assignments.set(match[1] ?? '', (match[2] ?? '').replace(/^["']|["']$/g, ''));
  }
  return assignments;
}

export const DOCKERFILE_CHECKS: readonly Check<DockerBuild>[] = [
  {
    id: 'base-image',
    rule: 'multi-stage, every stage on node:24-slim (or an earlier stage)',
    run: (build) => {
      const stages = stagesOf(parseDockerfile(build.source));
      const problems =
        stages.length < 2 ? [`${build.file}: one stage; build dependencies in a stage of their own`] : [];
      const names = new Set<string>();
      for (const stage of stages) {
        if (!BASE_IMAGE.test(stage.image) && !names.has(stage.image)) {
          problems.push(`${build.file}: FROM ${stage.image}: expected node:24-slim`);
        }
        if (stage.name !== undefined) names.add(stage.name);
      }
      return problems;
    },
  },
  {
    id: 'non-root',
    rule: 'the final stage runs as a numeric non-root user',
    run: (build) => {
      const users = all(finalStage(build), 'USER');
      const user = users.at(-1)?.args;
      if (user === undefined) return [`${build.file}: no USER in the final stage: the process runs as root`];
      const uid = /^(\d+)(:\d+)?$/.exec(user)?.[1];
      if (uid === undefined) {
        return [
          `${build.file}: USER ${user}: use a numeric uid (Kubernetes cannot verify runAsNonRoot for a name)`,
        ];
      }
      return uid === '0' ? [`${build.file}: USER ${user} is root`] : [];
    },
  },
  {
    id: 'exec-form',
    rule: 'ENTRYPOINT/CMD in exec form, starting node directly (so SIGTERM reaches it)',
    run: (build) => {
      const stage = finalStage(build);
      const commands = [...all(stage, 'ENTRYPOINT'), ...all(stage, 'CMD')];
      if (commands.length === 0) return [`${build.file}: no ENTRYPOINT or CMD`];
      const problems = commands
        .filter((instruction) => instruction.json === undefined)
        .map(
          (instruction) =>
            `${build.file}:${instruction.line}: ${instruction.keyword} in shell form: /bin/sh gets SIGTERM, not node`,
        );
      const entrypoint = all(stage, 'ENTRYPOINT').at(-1)?.json;
      if (entrypoint !== undefined && entrypoint[0] !== 'node') {
        problems.push(`${build.file}: ENTRYPOINT starts ${String(entrypoint[0])}, not node`);
      }
      return problems;
    },
  },
  {
    id: 'entrypoint-target',
    rule: 'the entry script exists and is copied into the image',
    run: (build) => {
      const stage = finalStage(build);
      const command = all(stage, 'ENTRYPOINT').at(-1)?.json ?? all(stage, 'CMD').at(-1)?.json ?? [];
      const script = command.find((word) => word.endsWith('.ts') || word.endsWith('.js'));
      if (script === undefined) return [`${build.file}: the command names no script`];
      const problems = existsSync(path.join(REPO_ROOT, script))
        ? []
        : [`${build.file}: ${script} does not exist`];
      const copied = all(stage, 'COPY').some((instruction) => {
        const { flags, rest } = withoutFlags(instruction.args);
        if (flags.some((flag) => flag.startsWith('from='))) return false;
        const words = rest.split(/\s+/);
        return words
          .slice(0, -1)
          .some((source) => script === source || script.startsWith(`${source.replace(/\/$/, '')}/`));
      });
      if (!copied) problems.push(`${build.file}: ${script} is never copied into the final stage`);
      return problems;
    },
  },
  {
    id: 'healthcheck',
    rule: 'a HEALTHCHECK in exec form on a health endpoint',
    run: (build) => {
      const healthcheck = all(finalStage(build), 'HEALTHCHECK').at(-1);
      if (healthcheck === undefined) return [`${build.file}: no HEALTHCHECK`];
      const command = /\bCMD\s+(.*)$/.exec(healthcheck.args)?.[1] ?? '';
      const exec = jsonArray(command);
      if (exec === undefined) return [`${build.file}: HEALTHCHECK CMD in shell form (or NONE)`];
      return HEALTH_PATH.test(exec.join(' '))
        ? []
        : [`${build.file}: HEALTHCHECK probes no /health, /healthz or /readyz`];
    },
  },
  {
    id: 'node-env',
    rule: 'NODE_ENV=production in the final stage',
    run: (build) => {
      const value = all(finalStage(build), 'ENV')
        .map(envAssignments)
        .reduce<string | undefined>(
          (current, assignments) => assignments.get('NODE_ENV') ?? current,
          undefined,
        );
      return value === 'production'
        ? []
        : [`${build.file}: NODE_ENV is ${String(value)}, expected production`];
    },
  },
  {
    id: 'npm-ci',
    rule: 'dependencies from the lock file: npm ci --omit=dev for named workspaces, never npm install',
    run: (build) => {
      const runs = parseDockerfile(build.source).filter((instruction) => instruction.keyword === 'RUN');
      const problems: string[] = [];
      for (const run of runs) {
        if (/\bnpm\s+(install|i|add)\b/.test(run.args))
          problems.push(`${build.file}:${run.line}: npm install ignores the lock file`);
      }
      const ci = runs.filter((run) => /\bnpm\s+ci\b/.test(run.args));
      if (ci.length === 0) problems.push(`${build.file}: no npm ci`);
      for (const run of ci) {
        if (!/--omit[= ]dev\b/.test(run.args))
          problems.push(`${build.file}:${run.line}: npm ci without --omit=dev`);
        if (!/(--workspace|-w)[= ]\S+/.test(run.args)) {
          problems.push(`${build.file}:${run.line}: npm ci without --workspace installs every workspace`);
        }
      }
      return problems;
    },
  },
  {
    id: 'build-context',
    rule: 'every COPY source exists and is not excluded by .dockerignore; no remote ADD',
    run: (build) => {
      const patterns = parseDockerignore(build.dockerignore);
      const problems: string[] = [];
      for (const instruction of parseDockerfile(build.source)) {
        if (instruction.keyword === 'ADD' && /https?:\/\//.test(instruction.args)) {
          problems.push(`${build.file}:${instruction.line}: ADD of a URL (unpinned, unverified download)`);
        }
        if (instruction.keyword !== 'COPY' && instruction.keyword !== 'ADD') continue;
        const { flags, rest } = withoutFlags(instruction.args);
        if (flags.some((flag) => flag.startsWith('from='))) continue;
        const sources = (jsonArray(rest) ?? rest.split(/\s+/)).slice(0, -1);
        for (const source of sources) {
          const relative = source.replace(/^\.\//, '').replace(/\/$/, '');
          if (!existsSync(path.join(REPO_ROOT, relative)))
            problems.push(`${build.file}: COPY ${source}: no such path`);
          else if (ignoredByDocker(patterns, relative)) {
            problems.push(`${build.file}: COPY ${source}: excluded by .dockerignore, the build would fail`);
          }
        }
      }
      return problems;
    },
  },
  {
    id: 'dockerignore',
    rule: '.dockerignore keeps node_modules, data, tests, env files and git out of the context',
    run: (build) => {
      const patterns = parseDockerignore(build.dockerignore);
      return MUST_BE_IGNORED.filter((file) => !ignoredByDocker(patterns, file)).map(
        (file) => `.dockerignore lets ${file} into the build context`,
      );
    },
  },
];
