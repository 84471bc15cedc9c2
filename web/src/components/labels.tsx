/** Labels as the chips operators know from selectors: key=value. */
export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (entries.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="labels">
      {entries.map(([k, v]) => (
        <li key={k} className="label-chip">
          {k}={v}
        </li>
      ))}
    </ul>
  );
}
