/**
 * Health is an ordered scale with one worst-of rule, so it rolls up the same way from a probe to
 * a component, a device, a wave and a rollout.
 */
export const healthOrder = ['healthy', 'progressing', 'degraded', 'failed'] as const;
export type Health = (typeof healthOrder)[number];

export function worstOf(values: Iterable<Health>): Health {
  let worst: Health = 'healthy';
  for (const value of values) if (healthOrder.indexOf(value) > healthOrder.indexOf(worst)) worst = value;
  return worst;
}

/** The outcome of waiting for one instance to become healthy. */
export type ProbeResult = { ok: true; detail: string } | { ok: false; detail: string };
