import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { DriftlessError } from './errors.ts';

// TypeBox knows no string formats until told; the protocol uses one. Registering is idempotent.
const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => isoTime.test(value) && !Number.isNaN(Date.parse(value)));

/** Compiled validators, one per schema object, built on first use. */
const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checkerFor<T extends TSchema>(schema: T): TypeCheck<T> {
  let check = checks.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    checks.set(schema, check);
  }
  return check as TypeCheck<T>;
}

/** One problem with an input: the path of the field (`spec.template.components[0].image`) and what is wrong. */
export type Problem = { path: string[]; field: string; message: string };

export function pathToField(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number' || /^[0-9]+$/.test(String(part))) out += `[${part}]`;
    else out += out ? `.${part}` : String(part);
  }
  return out || '(document)';
}

/** Text cut to a length an error message can carry: an input's own key or value may be megabytes. */
export function clip(text: string, max = 80): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/**
 * A value as an error message shows it: a short scalar, or only what kind of thing it is. Never
 * the whole of a huge input, nor JSON.stringify of a deeply nested one (which overflows the stack).
 */
export function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(clip(value, 60));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value === undefined) return 'nothing';
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
}

function describe(error: ValueError): Problem {
  const path = error.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const field = clip(pathToField(path), 200);
  const key = clip(String(path.at(-1)), 80);
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      // A record (labels, env) names its keys by pattern: the key is malformed, not unknown.
      const keyPattern = Object.keys((error.schema.patternProperties as Record<string, unknown> | undefined) ?? {})[0];
      if (keyPattern) return { path, field, message: `key "${key}" does not match ${keyPattern}` };
      return { path, field, message: `unknown field "${key}"` };
    }
    case ValueErrorType.ObjectRequiredProperty:
      return { path, field, message: `missing required field "${key}"` };
    case ValueErrorType.Literal:
      return { path, field, message: `must be ${JSON.stringify(error.schema.const)}, not ${shown(error.value)}` };
    case ValueErrorType.Union: {
      const literals = (error.schema.anyOf as TSchema[] | undefined)?.filter((s) => 'const' in s).map((s) => JSON.stringify(s.const));
      if (literals && literals.length > 0) return { path, field, message: `must be one of ${literals.join(', ')}` };
      return describeTaggedUnion(error) ?? { path, field, message: error.message.toLowerCase() };
    }
    case ValueErrorType.StringPattern:
      return { path, field, message: error.schema.description ? `must be ${error.schema.description}` : `does not match ${error.schema.pattern}` };
    default:
      return { path, field, message: error.message.charAt(0).toLowerCase() + error.message.slice(1) };
  }
}

/**
 * A union of objects told apart by a literal field (telemetry records by `kind`) fails as a whole
 * ("expected union value"), which names nothing. The member whose literals all match is the one
 * the input meant: its own first problem is the useful one. When no member's literal matches,
 * the shared literal field is what is wrong.
 */
function describeTaggedUnion(error: ValueError): Problem | null {
  const members = (error.errors ?? []).map((iterator) => [...iterator]);
  if (members.length === 0) return null;
  const meant = members.filter((errors) => errors.length > 0 && !errors.some((e) => e.type === ValueErrorType.Literal));
  if (meant.length === 1) return describe(meant[0]![0]!);
  const literalErrors = members.map((errors) => errors.filter((e) => e.type === ValueErrorType.Literal));
  const tag = literalErrors[0]?.find((candidate) => literalErrors.every((errors) => errors.some((e) => e.path === candidate.path)));
  if (!tag) return null;
  const choices = [...new Set(literalErrors.map((errors) => JSON.stringify(errors.find((e) => e.path === tag.path)!.schema.const)))];
  const path = tag.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return { path, field: clip(pathToField(path), 200), message: `must be one of ${choices.join(', ')}, not ${shown(tag.value)}` };
}

/** The first few problems, most specific first: a union's own error is reported after its members'. */
export function problems(schema: TSchema, value: unknown, limit = 5): Problem[] {
  const out: Problem[] = [];
  for (const error of checkerFor(schema).Errors(value)) {
    out.push(describe(error));
    if (out.length >= limit) break;
  }
  return out;
}

export function isValid<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return checkerFor(schema).Check(value);
}

/**
 * Returns the value typed by its schema, or throws one `invalid-input` error naming the field.
 * `where` says what was being read ("request body", "deployment.yaml").
 */
export function parseAs<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  if (checkerFor(schema).Check(value)) return value;
  const [first] = problems(schema, value, 1);
  throw new DriftlessError('invalid-input', `${where}: ${first ? `${first.field}: ${first.message}` : 'invalid'}`);
}
