// RFC 6902 JSON Patch over plain values: the overlay's patch format (kustomize applies it the
// same way) and the way the bad fixtures seed one mistake into a good file.
import { isDeepStrictEqual } from 'node:util';
import { cloneJson, isRecord, listOf } from './values.ts';

export interface PatchOperation {
  readonly op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  readonly path: string;
  readonly from?: string;
  readonly value?: unknown;
}

export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** Validates the shape of a patch document (a list of operations). */
export function toPatch(value: unknown, name: string): PatchOperation[] {
  if (!Array.isArray(value)) throw new PatchError(`${name}: a JSON patch is a list of operations`);
  return listOf(value).map((item, index) => {
    if (
      !isRecord(item) ||
      typeof item.op !== 'string' ||
      !OPS.has(item.op) ||
      typeof item.path !== 'string'
    ) {
      throw new PatchError(`${name}: operation ${index} needs op (${[...OPS].join(', ')}) and path`);
    }
    if ((item.op === 'move' || item.op === 'copy') && typeof item.from !== 'string') {
      throw new PatchError(`${name}: operation ${index} (${item.op}) needs from`);
    }
    if (['add', 'replace', 'test'].includes(item.op) && !('value' in item)) {
      throw new PatchError(`${name}: operation ${index} (${item.op}) needs value`);
    }
    return item as unknown as PatchOperation;
  });
}

function tokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new PatchError(`"${pointer}" is not a JSON pointer`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function parentOf(root: unknown, pointer: string): { parent: unknown; key: string } {
  const path = tokens(pointer);
  const key = path.pop();
  if (key === undefined) throw new PatchError('the whole document cannot be the target');
  let parent = root;
  for (const token of path) {
    parent = child(parent, token, pointer);
  }
  return { parent, key };
}

function child(container: unknown, token: string, pointer: string): unknown {
  if (Array.isArray(container)) {
    const index = arrayIndex(container, token, pointer, false);
    return (container as unknown[])[index];
  }
  if (isRecord(container) && token in container) return container[token];
  throw new PatchError(`${pointer}: no "${token}"`);
}

function arrayIndex(array: unknown[], token: string, pointer: string, insert: boolean): number {
  if (insert && token === '-') return array.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`${pointer}: "${token}" is not an array index`);
  const index = Number(token);
  if (index > array.length || (!insert && index === array.length)) {
    throw new PatchError(`${pointer}: index ${index} is out of range`);
  }
  return index;
}

function get(root: unknown, pointer: string): unknown {
  let current = root;
  for (const token of tokens(pointer)) current = child(current, token, pointer);
  return current;
}

function remove(root: unknown, pointer: string): unknown {
  const { parent, key } = parentOf(root, pointer);
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, key, pointer, false);
    return (parent as unknown[]).splice(index, 1)[0];
  }
  if (isRecord(parent) && key in parent) {
    const removed = parent[key];
    // Deleting a computed key is the point of a `remove` operation.
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete
    delete parent[key];
    return removed;
  }
  throw new PatchError(`${pointer}: nothing to remove`);
}

function add(root: unknown, pointer: string, value: unknown): void {
  const { parent, key } = parentOf(root, pointer);
  if (Array.isArray(parent)) {
    (parent as unknown[]).splice(arrayIndex(parent, key, pointer, true), 0, value);
  } else if (isRecord(parent)) {
    parent[key] = value;
  } else {
    throw new PatchError(`${pointer}: the parent is not an object or array`);
  }
}

/** Applies `operations` to a copy of `document`; the input is never changed. */
export function applyPatch<T>(document: T, operations: readonly PatchOperation[]): T {
  const root = { document: cloneJson(document) };
  const at = (pointer: string) => `/document${pointer}`;
  for (const operation of operations) {
    switch (operation.op) {
      case 'add':
        add(root, at(operation.path), cloneJson(operation.value));
        break;
      case 'remove':
        remove(root, at(operation.path));
        break;
      case 'replace':
        remove(root, at(operation.path));
        add(root, at(operation.path), cloneJson(operation.value));
        break;
      case 'move': {
        const moved = remove(root, at(operation.from ?? ''));
        add(root, at(operation.path), moved);
        break;
      }
      case 'copy':
        add(root, at(operation.path), cloneJson(get(root, at(operation.from ?? ''))));
        break;
      case 'test': {
        const actual = get(root, at(operation.path));
        if (!isDeepStrictEqual(actual, operation.value)) {
          throw new PatchError(
            `test ${operation.path}: expected ${JSON.stringify(operation.value)}, found ${JSON.stringify(actual)}`,
          );
        }
        break;
      }
    }
  }
  return root.document;
}
