// How the proxy process is started, wherever it is started: `npm start` (scripts/start.ts), the
// container image (proxy/Dockerfile), `npm start -w proxy` (proxy/package.json) and the benchmark.
// These take effect only when the process starts, never from inside it, so each launcher passes
// them; the deploy checks hold the Dockerfile and package.json to this list. The measurements
// behind each value are in README.md, "Memory under load".

/**
 * The entry point, relative to `proxy/`: the sources stripped to JavaScript beforehand
 * (scripts/strip-types.ts). Started from `.ts`, Node keeps its TypeScript stripper in memory for
 * good, about 25 MiB; the stripped files keep every line and column of their source.
 */
export const PROXY_ENTRY = 'dist/main.js';

/** Where scripts/strip-types.ts reads the sources from and writes PROXY_ENTRY's tree, relative to `proxy/`. */
export const PROXY_SOURCE_DIR = 'src';
export const PROXY_BUILD_DIR = 'dist';

/**
 * Given the proxy's code directory (`…/proxy/dist/` or `…/proxy/src/`, with a trailing slash):
 * when it is the stripped build, the build and source directories, so profile frames can name
 * the file a developer edits; undefined when running the sources themselves.
 */
export function strippedFrom(codeDir: string): { built: string; source: string } | undefined {
  const suffix = `/${PROXY_BUILD_DIR}/`;
  if (!codeDir.endsWith(suffix)) return undefined;
  return { built: codeDir, source: `${codeDir.slice(0, -suffix.length)}/${PROXY_SOURCE_DIR}/` };
}

/**
 * V8 heap flags.
 * - `--max-old-space-size=256`: V8 lets the old generation grow to 4× its live size between full
 *   collections when the heap limit is a large host's default, and 1.3× when the limit is 256 MiB
 *   or less; under load that garbage is most of the difference. 256 MiB is also about what V8
 *   picks by itself inside the pod's 320 MiB memory limit, so the benchmark host now behaves like
 *   the pod.
 * - `--max-semi-space-size=4`: the young generation. The default grows it to 2 × 64 MiB on a large
 *   host; 4 MiB costs more scavenges, each short, as the proxy's survivors are only the requests in
 *   flight.
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=256'];

/**
 * glibc malloc settings, read once as the process starts. V8's compiler threads each take an arena
 * of their own and glibc keeps freed compiler memory; two arenas, large blocks from mmap and
 * trimming past 128 KiB give it back.
 */
export const PROXY_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};
