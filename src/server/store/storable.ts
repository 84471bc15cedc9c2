/**
 * A value as both engines can keep it: PostgreSQL refuses the NUL character in text (a log line
 * of a process that writes binary, say), so NUL becomes U+FFFD, on SQLite too, so that both read
 * back the same and one odd record never fails a whole batch of writes.
 */
export function storable<T>(value: T): T {
  return (typeof value === 'string' && value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value) as T;
}
