import { sha256Hex } from '../../protocol/canonical.ts';
import type { Strategy } from '../../protocol/resources.ts';

/**
 * Pure decisions of progressive delivery: the strategy with its defaults, how many devices each
 * wave reaches, which devices go first, and whether a site's maintenance window is open.
 */

export type NormalStrategy = {
  waves: { devices?: number; percent?: number; bakeMs: number }[];
  maxFailurePercent: number;
  onFailure: 'rollback' | 'pause';
  maxParallel: number;
  updateTimeoutMs: number;
};

/** With no strategy: 1%, 10%, 50%, then everyone; halt past 5% failures and roll back. */
export const DEFAULT_WAVES = [{ percent: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }] as const;

export function durationMs(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  const match = /^([0-9]+)(s|m|h)$/.exec(text);
  if (!match) return fallbackMs;
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'];
}

export function normalizeStrategy(strategy: Strategy | undefined): NormalStrategy {
  const waves = (strategy?.waves ?? DEFAULT_WAVES).map((w) => ({
    ...('devices' in w && w.devices !== undefined ? { devices: w.devices } : {}),
    ...('percent' in w && w.percent !== undefined ? { percent: w.percent } : {}),
    bakeMs: durationMs('bake' in w ? w.bake : undefined, 0),
  }));
  return {
    waves,
    maxFailurePercent: strategy?.maxFailurePercent ?? 5,
    onFailure: strategy?.onFailure ?? 'rollback',
    maxParallel: strategy?.maxParallel ?? Number.MAX_SAFE_INTEGER,
    updateTimeoutMs: durationMs(strategy?.updateTimeout, 10 * 60_000),
  };
}

/**
 * How many devices have been reached by the end of each wave (cumulative), for a fleet of
 * `fleet` devices. `devices: n` adds n; `percent: p` reaches p% rounded up; every wave that
 * reaches no new device still counts (it is shown and skipped); the last wave reaches everyone.
 */
export function cumulativeTargets(waves: NormalStrategy['waves'], fleet: number): number[] {
  const out: number[] = [];
  let reached = 0;
  waves.forEach((wave, i) => {
    if (i === waves.length - 1) reached = fleet;
    else if (wave.devices !== undefined) reached += wave.devices;
    else reached = Math.max(reached, Math.ceil(((wave.percent ?? 100) * fleet) / 100));
    reached = Math.min(reached, fleet);
    out.push(reached);
  });
  return out;
}

export type Candidate = { name: string; site: string | null; region: string | null; hardware: string | null; online: boolean };

/**
 * Orders devices for the next wave so the first ones are representative. In a seeded hash order
 * (online devices first), each device ranks by how many devices of its region, its site and its
 * hardware come before it. Then, in tiers: the first device of each region (preferring one that
 * is also the first on its hardware), the first on each hardware kind, the first at each site,
 * then everyone else, second devices of each site before third ones. So the first R devices cover
 * every region, and the first S+H every site and hardware kind, even when one dimension is the same
 * for the whole fleet (every agent reports the same arch). Online devices before offline ones.
 * Deterministic: the same inputs and seed give the same order, whatever order they come in.
 */
export function orderForWave(candidates: readonly Candidate[], seed: string): { device: Candidate; reason: string }[] {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const hashed = candidates.map((c) => ({ c, h: sha256Hex(`${seed}\u0000${c.name}`) })).sort((a, b) => Number(b.c.online) - Number(a.c.online) || cmp(a.h, b.h));
  const seen = { region: new Map<string, number>(), site: new Map<string, number>(), hardware: new Map<string, number>() };
  const ranked = hashed.map(({ c }, index) => {
    const rank = (kind: keyof typeof seen, value: string | null) => {
      const key = value ?? '(none)';
      const n = seen[kind].get(key) ?? 0;
      seen[kind].set(key, n + 1);
      return n;
    };
    const firsts = { region: rank('region', c.region), site: rank('site', c.site), hardware: rank('hardware', c.hardware) };
    const tier = firsts.region === 0 ? (firsts.hardware === 0 ? 0 : 1) : firsts.hardware === 0 ? 2 : firsts.site === 0 ? 3 : 4;
    return { c, index, tier, firsts };
  });
  ranked.sort(
    (a, b) =>
      Number(b.c.online) - Number(a.c.online) ||
      a.tier - b.tier ||
      a.firsts.site - b.firsts.site ||
      a.firsts.region - b.firsts.region ||
      a.firsts.hardware - b.firsts.hardware ||
      a.index - b.index,
  );
  return ranked.map(({ c, firsts }) => {
    const novel = [
      firsts.region === 0 && c.region ? `first in region ${c.region}` : null,
      firsts.site === 0 && c.site ? `first at site ${c.site}` : null,
      firsts.hardware === 0 && c.hardware ? `first on hardware ${c.hardware}` : null,
    ].filter(Boolean);
    return {
      device: c,
      reason: novel.length > 0 ? novel.join(', ') : `spread: ${firsts.site} of its site, ${firsts.region} of its region and ${firsts.hardware} of its hardware went before it`,
    };
  });
}

// ---- maintenance windows, in the site's IANA time zone ----

export type Window = { days?: readonly ('mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun')[]; start: string; duration: string };
const weekdays = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** The wall-clock date and time in a time zone, from Intl (which knows every DST rule). */
export function localTime(nowMs: number, timeZone: string): { day: (typeof weekdays)[number]; minutes: number; date: string } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    weekday: 'short',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).formatToParts(new Date(nowMs));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  const day = get('weekday').toLowerCase().slice(0, 3) as (typeof weekdays)[number];
  return { day, minutes: Number(get('hour')) * 60 + Number(get('minute')), date: `${get('year')}-${get('month')}-${get('day')}` };
}

/**
 * Whether any window is open now, judged on the local wall clock: a window that starts at 23:00
 * and lasts 3h is open until 02:00 the next local day; `days` name the day a window starts.
 * No windows means always open.
 */
export function windowOpen(windows: readonly Window[] | undefined, timeZone: string | undefined, nowMs: number): boolean {
  if (!windows || windows.length === 0) return true;
  const here = localTime(nowMs, timeZone ?? 'UTC');
  const today = weekdays.indexOf(here.day);
  return windows.some((w) => {
    const [h, m] = w.start.split(':').map(Number) as [number, number];
    const start = h * 60 + m;
    const length = durationMs(w.duration, 0) / 60_000;
    const runsOn = (day: (typeof weekdays)[number]) => !w.days || w.days.length === 0 || w.days.includes(day);
    // The window that began today, or one that began up to six days ago and runs on past midnight
    // (a weekend-long one, say). Looking further back adds nothing: the same weekday's window a week
    // later began later and ends later, so it is open whenever the older one would be.
    for (let daysAgo = 0; daysAgo < 7; daysAgo++) {
      const minutes = here.minutes + daysAgo * 1440; // since the start of that day
      if (minutes >= start + length) break; // that day's window has ended, and every earlier one too
      if (minutes >= start && runsOn(weekdays[(today + 7 - daysAgo) % 7]!)) return true;
    }
    return false;
  });
}
