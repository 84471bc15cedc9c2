export type SortOrder = 'asc' | 'desc';

/** A column header that sorts: a button inside the th, and aria-sort on the th itself. */
export function SortableHeader<C extends string>({
  column,
  label,
  sort,
  order,
  onSort,
  numeric,
}: {
  column: C;
  label: string;
  sort: C;
  order: SortOrder;
  onSort: (column: C, order: SortOrder) => void;
  numeric?: boolean;
}) {
  const active = sort === column;
  const next: SortOrder = active && order === 'asc' ? 'desc' : 'asc';
  return (
    <th scope="col" aria-sort={active ? (order === 'asc' ? 'ascending' : 'descending') : 'none'} className={numeric ? 'num' : undefined}>
      <button type="button" className="sort-button" onClick={() => onSort(column, next)}>
        {label}
        <span className="sort-button__arrow" aria-hidden="true">
          {active ? (order === 'asc' ? '▲' : '▼') : '↕'}
        </span>
      </button>
    </th>
  );
}
