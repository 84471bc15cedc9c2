import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { DriftlessError } from './errors.ts';
import { applicableKinds, type AppliedResource } from './resources.ts';
import { resourceProblems } from './rules.ts';
import { clip, problems, type Problem } from './validate.ts';

/** Deeper than any resource goes; a deeper document is refused before it is built (a stack-overflow attempt). */
const MAX_DEPTH = 64;

/**
 * Reads a manifest file: one or more YAML documents, each a resource. Any problem is one error
 * naming the file, the line and the field; nothing partial is returned.
 */
export function parseManifest(text: string, file: string): AppliedResource[] {
  const lines = new LineCounter();
  // logLevel 'error': no process warnings (a collection used as a key); such keys then fail the schema like any bad field.
  let documents: ReturnType<typeof parseAllDocuments>;
  try {
    documents = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  } catch (error) {
    throw new DriftlessError('invalid-input', `${file}: YAML: ${error instanceof RangeError ? `nested too deeply (at most ${MAX_DEPTH} levels)` : clip((error as Error).message, 200)}`);
  }
  if (!Array.isArray(documents)) return [];
  const out: AppliedResource[] = [];
  for (const doc of documents) {
    const syntax = doc.errors[0];
    if (syntax) {
      const { line } = lines.linePos(syntax.pos[0]);
      // The parser records its own stack overflow on a deeply nested document as a syntax error.
      const why = /call stack/i.test(syntax.message) ? `nested too deeply (at most ${MAX_DEPTH} levels)` : clip(syntax.message.split('\n')[0] ?? '', 200);
      throw new DriftlessError('invalid-input', `${file}:${line}: YAML: ${why}`);
    }
    // An empty document between separators (or after a trailing `---`) parses as a null scalar with no source.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null && !doc.contents.source)) continue;
    const docLine = lines.linePos((doc.contents as YamlNode).range?.[0] ?? 0).line;
    const tooDeep = deeperThan(doc.contents as YamlNode, MAX_DEPTH);
    if (tooDeep) throw new DriftlessError('invalid-input', `${file}:${lines.linePos(tooDeep.range?.[0] ?? 0).line}: YAML: nested too deeply (at most ${MAX_DEPTH} levels)`);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // An unresolved alias or an alias bomb is found only when the document is built.
      const why = error instanceof RangeError ? `nested too deeply (at most ${MAX_DEPTH} levels)` : clip((error as Error).message, 200);
      throw new DriftlessError('invalid-input', `${file}:${docLine}: YAML: ${why}`);
    }
    const at = (problem: Problem) => {
      const { line } = lines.linePos(offsetOf(doc.contents as YamlNode, problem.path));
      return new DriftlessError('invalid-input', `${file}:${line}: ${problem.field}: ${problem.message}`);
    };
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DriftlessError('invalid-input', `${file}:${docLine}: a resource must be a mapping with apiVersion, kind, metadata and spec`);
    }
    const kind = (value as { kind?: unknown }).kind;
    if (typeof kind !== 'string' || !Object.hasOwn(applicableKinds, kind)) {
      throw at({ path: ['kind'], field: 'kind', message: `must be one of ${Object.keys(applicableKinds).join(', ')}${typeof kind === 'string' ? `, not "${clip(kind, 60)}"` : ''}` });
    }
    const schema = applicableKinds[kind as keyof typeof applicableKinds];
    const [schemaProblem] = problems(schema, value, 1);
    if (schemaProblem) throw at(schemaProblem);
    const [ruleProblem] = resourceProblems(value as AppliedResource);
    if (ruleProblem) throw at(ruleProblem);
    out.push(value as AppliedResource);
  }
  return out;
}

/** The first node nested deeper than `max` collections (found without recursion, so depth cannot overflow the stack). */
function deeperThan(root: YamlNode, max: number): YamlNode | null {
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (isMap(node) || isSeq(node)) {
      if (depth >= max) return node as YamlNode;
      for (const item of node.items as unknown[]) {
        if (isPair(item)) stack.push([item.key, depth + 1], [item.value, depth + 1]);
        else stack.push([item, depth + 1]);
      }
    }
  }
  return null;
}

/** The source offset of the deepest node on a path that exists: the key itself for a field, so an unknown field points at its own line. */
function offsetOf(root: YamlNode, path: readonly string[]): number {
  let node: YamlNode = root;
  let offset = root.range?.[0] ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown } | null)?.value) === part);
      if (!pair) break;
      offset = (pair.key as YamlNode).range?.[0] ?? offset;
      if (!pair.value) break;
      node = pair.value as YamlNode;
    } else if (isSeq(node)) {
      const item = node.items[Number(part)] as YamlNode | undefined;
      if (!item) break;
      node = item;
      offset = item.range?.[0] ?? offset;
    } else break;
  }
  return offset;
}
