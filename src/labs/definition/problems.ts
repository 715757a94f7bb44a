/**
 * Validation problems with positions: `templates/net-101/lab.yaml:14:7 machines[1].memory: expected
 * a "512Mi"-style quantity (Mi or Gi), got 512`. YAML positions come from `yaml`'s parseDocument
 * (node ranges + LineCounter); zod issues are mapped onto the nearest node that exists.
 */
import { isMap, isNode, isPair, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';
import type { ZodIssue } from 'zod';

export interface Problem {
  file: string;
  line: number;
  col: number;
  /** Where in the document (`machines[1].memory`), or what (`variable`, `image`, `syntax`). */
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col} ${p.path}: ${p.message}`;
}

export function sortProblems(ps: Problem[]): Problem[] {
  return [...ps].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col);
}

export type YamlPath = ReadonlyArray<string | number>;

export function pathString(path: YamlPath): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s ? `.${k}` : k;
  return s || '(document)';
}

/** A short rendering of a found value: 512, "512", true, a list, a map, nothing. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return 'a list';
  return 'a map';
}

/** Positions inside one parsed YAML file. */
export class YamlPositions {
  /** `data` is the document as plain data (doc.toJS()), computed once by the caller. */
  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly data: unknown,
  ) {}

  private pos(offset: number): { line: number; col: number } {
    const p = this.lines.linePos(offset);
    return { line: p.line, col: p.col };
  }

  /** The node at path, or the deepest existing ancestor; with key=true, the map key of the last segment. */
  locate(path: YamlPath, o: { key?: boolean } = {}): { line: number; col: number } {
    let node: unknown = this.doc.contents;
    let best: { range?: [number, number, number] | null } | undefined = isNode(node) ? (node as Node) : undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
        if (!pair) break;
        if (last && o.key && isNode(pair.key)) {
          best = pair.key as Node;
          break;
        }
        node = pair.value;
        if (isNode(node)) best = node as Node;
        else { best = isNode(pair.key) ? (pair.key as Node) : best; break; }
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        if (!isNode(node)) break;
        best = node as Node;
      } else break;
    }
    const off = best?.range?.[0] ?? 0;
    return this.pos(off);
  }

  /** The value at path in the plain data (for "got …"). */
  valueAt(path: YamlPath): unknown {
    let v: unknown = this.data;
    for (const seg of path) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Record<string | number, unknown>)[seg];
    }
    return v;
  }

  problem(path: YamlPath, message: string, o: { key?: boolean } = {}): Problem {
    return { file: this.file, ...this.locate(path, o), path: pathString(path), message };
  }

  /** One Problem per zod issue (unknown keys: one per key, at the key). */
  fromZod(issue: ZodIssue, allowedKeys: (path: YamlPath) => string[] | undefined = () => undefined): Problem[] {
    const path = issue.path;
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(path)?.join(', ');
      return issue.keys.map((k) =>
        this.problem([...path, k], `expected ${allowed ? `one of ${allowed}` : 'a known key'}, got unknown key "${k}"`, { key: true }),
      );
    }
    if (issue.code === 'invalid_union') {
      const inner = issue.unionErrors[0]?.issues[0];
      if (inner) return this.fromZod(inner, allowedKeys);
    }
    const found = describeValue(this.valueAt(path));
    let msg = issue.message;
    if (!msg.startsWith('expected')) {
      if (issue.code === 'invalid_type') msg = `expected ${issue.expected}`;
      else msg = `expected ${msg.charAt(0).toLowerCase()}${msg.slice(1)}`;
    }
    return [this.problem(path, `${msg}, got ${found}`)];
  }
}

export { LineCounter };
