import { Type } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';

/** Query strings arrive as text: a count is digits, read as a number after validation. */
export const Count = (max: number) => Type.String({ pattern: '^[0-9]{1,15}$', description: `a whole number, at most ${max}` });

/** A validated `Count` as a number: `fallback` when absent, refused above `max`. */
export function readCount(text: string | undefined, fallback: number, max: number, field: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (value > max) throw new DriftlessError('invalid-input', `querystring: ${field}: must be at most ${max}`);
  return value;
}
