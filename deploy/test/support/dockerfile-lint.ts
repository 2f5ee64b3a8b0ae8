// A small Dockerfile linter for the rules of issue 6 ("Images"), plus the .dockerignore matcher
// Docker uses, so a COPY of an ignored path (a build failure) is caught without a Docker engine.
import { existsSync, statSync } from 'node:fs';
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

// --- where a file in a stage comes from ---------------------------------------------------------

/** One source of a COPY or ADD: where it lands in the stage, and where it comes from. */
interface Placement {
  /** The instruction's position in its stage: a RUN sees only the copies made before it. */
  readonly index: number;
  /** The stage (or image) named by --from; undefined for the build context. */
  readonly from: string | undefined;
  /** Relative to the context ('' for its root), or absolute in the `from` stage. */
  readonly source: string;
  /** The absolute path the source lands on; a directory's contents land below it. */
  readonly target: string;
  /** A single file (a directory's children are not looked up below it). */
  readonly file: boolean;
}

/** The instructions of a stage with the working directory each one runs in. */
function withWorkdirs(stage: Stage): { instruction: Instruction; workdir: string }[] {
  let workdir = '/';
  return stage.instructions.map((instruction) => {
    if (instruction.keyword === 'WORKDIR') workdir = path.posix.resolve(workdir, instruction.args);
    return { instruction, workdir };
  });
}

/** Whether absolute path `file` lies below directory `dir` (not `dir` itself). */
function isBelow(dir: string, file: string): boolean {
  const relative = path.posix.relative(dir, file);
  return relative !== '' && relative !== '..' && !relative.startsWith('../');
}

/** The working directory at the end of a stage: where ENTRYPOINT paths resolve. */
function finalWorkdir(stage: Stage): string {
  return withWorkdirs(stage).at(-1)?.workdir ?? '/';
}

/**
 * Whether a copied source is a single file. The context can be looked at; another stage's files
 * cannot, so a name with an extension counts as a file there.
 */
function isFileSource(from: string | undefined, source: string): boolean {
  if (from !== undefined) return path.posix.extname(source) !== '';
  const full = path.join(REPO_ROOT, source);
  return existsSync(full) && statSync(full).isFile();
}

function placementsOf(stage: Stage): Placement[] {
  const placements: Placement[] = [];
  for (const [index, { instruction, workdir }] of withWorkdirs(stage).entries()) {
    if (instruction.keyword !== 'COPY' && instruction.keyword !== 'ADD') continue;
    const { flags, rest } = withoutFlags(instruction.args);
    const from = flags.find((flag) => flag.startsWith('from='))?.slice('from='.length);
    const words = jsonArray(rest) ?? rest.split(/\s+/);
    const destination = words.at(-1) ?? '.';
    const sources = words.slice(0, -1);
    // Into a directory when the destination says so (trailing slash) or there are several sources.
    const intoDirectory = destination.endsWith('/') || sources.length > 1;
    for (const written of sources) {
      const source =
        from === undefined ? path.posix.normalize(written).replace(/^\.(\/|$)|\/$/g, '') : written;
      const file = isFileSource(from, source);
      const base = path.posix.resolve(workdir, destination);
      const target = file && intoDirectory ? path.posix.join(base, path.posix.basename(source)) : base;
      placements.push({ index, from, source, target, file });
    }
  }
  return placements;
}

/**
 * Where an absolute path of a stage comes from: the last copy that covers it (later layers win)
 * among the instructions before `before`, with the path in that copy's source.
 */
function originOf(
  stage: Stage,
  target: string,
  before = Number.POSITIVE_INFINITY,
): { placement: Placement; source: string } | undefined {
  const covering = placementsOf(stage)
    .filter((placement) => placement.index < before)
    .filter(
      (placement) => placement.target === target || (!placement.file && isBelow(placement.target, target)),
    )
    .at(-1);
  if (covering === undefined) return undefined;
  const below = path.posix.relative(covering.target, target);
  return {
    placement: covering,
    source: below === '' ? covering.source : path.posix.join(covering.source, below),
  };
}

/** A `RUN node …/strip-types.ts <src> <out>`, its paths resolved in the stage. */
interface StripRun {
  readonly index: number;
  readonly line: number;
  readonly tool: string;
  readonly src: string;
  readonly out: string;
}

const STRIP_TYPES = 'scripts/strip-types.ts';

function stripRunsOf(stage: Stage): StripRun[] {
  return withWorkdirs(stage).flatMap(({ instruction, workdir }, index) => {
    if (instruction.keyword !== 'RUN') return [];
    const command = instruction.json?.join(' ') ?? withoutFlags(instruction.args).rest;
    const match = /\bnode\s+(?:--\S+\s+)*(\S*strip-types\.ts)\s+(\S+)\s+(\S+)/.exec(command);
    if (match === null) return [];
    const [, tool = '', src = '', out = ''] = match;
    const resolve = (file: string): string => path.posix.resolve(workdir, file);
    return [{ index, line: instruction.line, tool: resolve(tool), src: resolve(src), out: resolve(out) }];
  });
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

/** The final stage's environment, as ENV instructions leave it (a later assignment wins). */
export function finalEnv(build: DockerBuild): Map<string, string> {
  return new Map(all(finalStage(build), 'ENV').flatMap((instruction) => [...envAssignments(instruction)]));
}

/** The command the container runs: the exec-form ENTRYPOINT with CMD's arguments, or CMD alone. */
export function finalCommand(build: DockerBuild): string[] {
  const stage = finalStage(build);
  const entrypoint = all(stage, 'ENTRYPOINT').at(-1)?.json;
  const cmd = all(stage, 'CMD').at(-1)?.json ?? [];
  return entrypoint === undefined ? [...cmd] : [...entrypoint, ...cmd];
}

/** An earlier stage named by `--from` (a name or an index), or undefined for anything else. */
function earlierStage(stages: readonly Stage[], from: string): Stage | undefined {
  const index = /^\d+$/.test(from) ? Number(from) : stages.findIndex((stage) => stage.name === from);
  return index >= 0 && index < stages.length - 1 ? stages[index] : undefined;
}

/**
 * Problems with an entry script copied from another stage: that stage must strip it from sources
 * it copies from the context, with scripts/strip-types.ts copied from the context too.
 */
function builtInStage(
  build: DockerBuild,
  stages: readonly Stage[],
  from: string,
  file: string,
  script: string,
): string[] {
  const stage = earlierStage(stages, from);
  if (stage === undefined) {
    return [`${build.file}: ${script} is copied from ${from}, which is not an earlier stage`];
  }
  const run = stripRunsOf(stage)
    .filter((candidate) => isBelow(candidate.out, file) && file.endsWith('.js'))
    .at(-1);
  if (run === undefined) {
    return [`${build.file}: ${script} is copied from stage ${from}, which does not build it`];
  }
  const problems: string[] = [];
  const tool = originOf(stage, run.tool, run.index);
  if (tool === undefined || tool.placement.from !== undefined || tool.source !== STRIP_TYPES) {
    problems.push(
      `${build.file}:${String(run.line)}: stage ${from} runs ${STRIP_TYPES} without copying it from the build context`,
    );
  }
  const sourceFile = path.posix.join(run.src, path.posix.relative(run.out, file).replace(/\.js$/, '.ts'));
  const source = originOf(stage, sourceFile, run.index);
  if (source === undefined || source.placement.from !== undefined) {
    problems.push(
      `${build.file}:${String(run.line)}: stage ${from} strips ${run.src} without copying it from the build context`,
    );
  } else if (!existsSync(path.join(REPO_ROOT, source.source))) {
    problems.push(`${build.file}: ${script} is stripped from ${source.source}, which does not exist`);
  }
  return problems;
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
    rule: 'the entry script is copied into the image from the repository or from a stage that strips it',
    run: (build) => {
      const stages = stagesOf(parseDockerfile(build.source));
      const stage = stages.at(-1);
      const command = all(stage, 'ENTRYPOINT').at(-1)?.json ?? all(stage, 'CMD').at(-1)?.json ?? [];
      const script = command.find((word) => word.endsWith('.ts') || word.endsWith('.js'));
      if (stage === undefined || script === undefined) return [`${build.file}: the command names no script`];
      const origin = originOf(stage, path.posix.resolve(finalWorkdir(stage), script));
      if (origin === undefined) return [`${build.file}: ${script} is never copied into the final stage`];
      const { from } = origin.placement;
      if (from !== undefined) return builtInStage(build, stages, from, origin.source, script);
      return existsSync(path.join(REPO_ROOT, origin.source))
        ? []
        : [`${build.file}: ${origin.source} does not exist`];
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
      const value = finalEnv(build).get('NODE_ENV');
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
