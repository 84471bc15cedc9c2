import { AsyncLocalStorage } from 'node:async_hooks';
import type { Store } from '../store/store.ts';

/**
 * The store as API routes see it: every call goes to the view of the calling request's tenant
 * (`store.forTenant(request.tenant)`), found from the request being handled. A route cannot
 * forget to confine itself, and a call outside an authenticated request is an error, never a
 * look at every tenant's fleet.
 */
export type TenantScope = {
  /** Runs the rest of a request (its handler and all it awaits) as `tenant`. */
  run(tenant: string | null, next: () => void): void;
  /** The tenant of the request being handled, if any. */
  current(): string | null;
  /** A Store whose every method resolves to the current request's tenant view. */
  store(server: Store): Store;
};

export function createTenantScope(): TenantScope {
  const context = new AsyncLocalStorage<{ tenant: string | null }>();
  const current = () => context.getStore()?.tenant ?? null;
  return {
    run: (tenant, next) => context.run({ tenant }, next),
    current,
    store(server) {
      const views = new Map<string, Store>();
      return new Proxy(server, {
        get(target, property) {
          const tenant = current();
          if (tenant === null) throw new Error(`store.${String(property)} called outside an authenticated request: no tenant to confine it to`);
          let view = views.get(tenant);
          if (!view) views.set(tenant, (view = target.forTenant(tenant)));
          const value: unknown = Reflect.get(view, property);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(view) : value;
        },
      });
    },
  };
}
