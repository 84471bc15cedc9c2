/**
 * A component as devices name it in events, `deployment.component`, in the words of the
 * components table: the component, and its Deployment in brackets when the two names differ.
 */
export function componentLabel(key: string): { component: string; deployment: string | null } {
  const dot = key.indexOf('.');
  if (dot <= 0 || dot === key.length - 1) return { component: key, deployment: null };
  const deployment = key.slice(0, dot);
  const component = key.slice(dot + 1);
  return { component, deployment: deployment === component ? null : deployment };
}
