import type { Storage } from './storage.ts';

/**
 * Storage that lives and dies with the process: for simulated agents, thousands to a process,
 * where a file per write would measure the disk instead of the agent. Every write is "durable"
 * at once, which is the contract callers rely on (they never see a torn or lost write here).
 */
export function createMemoryStorage(): Storage {
  const files = new Map<string, string>();
  return {
    read: (name) => files.get(name) ?? null,
    write(name, text) {
      files.set(name, text);
    },
    remove(name) {
      files.delete(name);
    },
    list: (prefix) => [...files.keys()].filter((name) => name.startsWith(prefix)).sort(),
  };
}
