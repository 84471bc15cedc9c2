import { formatCount } from '../format/quantity.ts';

/** Server-side paging: which rows of how many, and the two buttons the tests know by name. */
export function Pager({ offset, limit, total, shown, onOffset }: { offset: number; limit: number; total: number; shown: number; onOffset: (offset: number) => void }) {
  const first = total === 0 ? 0 : offset + 1;
  const last = offset + shown;
  return (
    <div className="pager">
      <span className="pager__range">
        {formatCount(first)}–{formatCount(last)} of {formatCount(total)}
      </span>
      <button type="button" onClick={() => onOffset(Math.max(0, offset - limit))} disabled={offset === 0}>
        Previous page
      </button>
      <button type="button" onClick={() => onOffset(offset + limit)} disabled={offset + limit >= total}>
        Next page
      </button>
    </div>
  );
}
