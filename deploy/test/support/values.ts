// Narrowing for parsed YAML and JSON: the files under test are data of unknown shape, so every
// read says what it expects, and a wrong shape is one readable problem instead of a TypeError.

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value if it is a mapping, else an empty one (a missing block reads as empty). */
export function recordOf(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

/** The value if it is a list, else an empty one. */
export function listOf(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

/** The value if it is a string, else undefined. */
export function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The value if it is a number, else undefined. */
export function numberOf(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/** The mappings of a list, skipping anything else. */
export function recordsOf(value: unknown): Record<string, unknown>[] {
  return listOf(value).filter(isRecord);
}

/** Reads a dotted path of mapping keys (`spec.template.spec`); undefined where it stops. */
export function pick(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** A deep copy of JSON-shaped data (YAML documents parsed to plain values). */
export function cloneJson<T>(value: T): T {
  return structuredClone(value);
}

/** Every string anywhere in a value, with the JSON pointer where it sits. */
export function* stringsIn(value: unknown, pointer = ''): Generator<{ pointer: string; value: string }> {
  if (typeof value === 'string') {
    yield { pointer, value };
  } else if (Array.isArray(value)) {
    for (const [index, item] of (value as unknown[]).entries()) yield* stringsIn(item, `${pointer}/${index}`);
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value))
      yield* stringsIn(item, `${pointer}/${escapePointer(key)}`);
  }
}

export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
