// The env file as each consumer reads it. `.env.profiling` is read by node --env-file (npm start),
// docker compose (env_file) and kustomize (configMapGenerator envs), which agree only on plain
// KEY=value lines: kustomize keeps quotes and ` # comments` as part of the value, compose and
// Node strip them. So the file must stay in the common subset, which this parser enforces.

export interface EnvFile {
  /** KEY -> value, as kustomize puts it in the ConfigMap. */
  readonly entries: ReadonlyMap<string, string>;
  /** Lines outside the subset every consumer reads the same way. */
  readonly problems: readonly string[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseEnvFile(source: string): EnvFile {
  const entries = new Map<string, string>();
  const problems: string[] = [];
  if (source.includes('\r')) problems.push('CR line endings (kustomize keeps the \\r in every value)');
  for (const [index, raw] of source.split('\n').entries()) {
    const where = `line ${index + 1}`;
    // kustomize trims leading white space only, then skips blank lines and comments.
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const equals = line.indexOf('=');
    if (equals === -1) {
      problems.push(
        `${where}: "${line}" has no "=" (kustomize and compose would copy the value from the shell)`,
      );
      continue;
    }
    const key = line.slice(0, equals);
    const value = line.slice(equals + 1);
    if (key.startsWith('export ')) problems.push(`${where}: "export" prefix (kustomize rejects it)`);
    else if (!KEY.test(key))
      problems.push(`${where}: "${key}" is not a variable name (no spaces around "=")`);
    if (/^["']/.test(value)) {
      problems.push(`${where}: ${key} is quoted (kustomize keeps the quotes, compose and Node strip them)`);
    }
    if (/\s#/.test(value)) {
      problems.push(`${where}: ${key} has an inline comment (kustomize keeps it as part of the value)`);
    }
    if (/\s$/.test(value))
      problems.push(`${where}: ${key} ends in white space (compose trims it, kustomize not)`);
    if (entries.has(key)) problems.push(`${where}: ${key} is set twice (kustomize refuses repeated keys)`);
    entries.set(key, value);
  }
  return { entries, problems };
}

/** Variables the file sets or documents in a commented-out `# KEY=value` line. */
export function documentedKeys(source: string): Set<string> {
  const keys = new Set(parseEnvFile(source).entries.keys());
  for (const match of source.matchAll(/^#\s*([A-Z][A-Z0-9_]*)=/gm)) keys.add(match[1] ?? '');
  return keys;
}
