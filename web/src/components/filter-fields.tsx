import { useEffect, useId, useState } from 'react';
import type { SiteView } from '../api/resources.ts';
import { useDebounced } from '../live/use-debounced.ts';
import { usePoll } from '../live/use-poll.ts';

/** How long typing settles before a filter asks the server. */
export const TYPING_DEBOUNCE_MS = 250;

/**
 * A text filter that reports its value once typing pauses. Labels sit beside their controls (for=),
 * not around them: a wrapping label would fold the control's value into its accessible name.
 */
export function TextFilter({ label, value, onChange, placeholder, type = 'text', wide }: { label: string; value: string; onChange: (value: string) => void; placeholder?: string; type?: 'text' | 'search'; wide?: boolean }) {
  const [text, setText] = useState(value);
  const settled = useDebounced(text, TYPING_DEBOUNCE_MS);
  useEffect(() => {
    if (settled !== value) onChange(settled);
    // Only a settled change of the text reports; an outside change of `value` is taken below.
  }, [settled]);
  useEffect(() => {
    if (value !== settled) setText(value);
  }, [value]);
  const id = useId();
  return (
    <div className={wide ? 'field field--wide' : 'field'}>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type={type}
        value={text}
        placeholder={placeholder}
        onChange={(e) => setText(e.target.value)}
        // Enter applies at once instead of waiting for the pause in typing.
        onKeyDown={(e) => {
          if (e.key === 'Enter' && text !== value) onChange(text);
        }}
        spellCheck={false}
        autoComplete="off"
      />
    </div>
  );
}

/** A choice among fixed options, "any" first. */
export function SelectFilter({ label, value, onChange, options, anyLabel = 'Any' }: { label: string; value: string; onChange: (value: string) => void; options: readonly string[]; anyLabel?: string }) {
  const all = value && !options.includes(value) ? [value, ...options] : options;
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">{anyLabel}</option>
        {all.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The site filter: a select over the tenant's sites (a list that changes rarely, so asked seldom). */
export function SiteFilter({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const { data } = usePoll<SiteView[]>('/v1/sites', 30_000);
  const names = (data ?? []).map((s) => s.name).sort();
  return <SelectFilter label="Site" value={value} onChange={onChange} options={names} anyLabel="All sites" />;
}
