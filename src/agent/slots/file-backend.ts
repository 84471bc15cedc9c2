import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { isValid } from '../../protocol/validate.ts';
import { createDirFileSystem, createDirStorage, readJson, writeJson } from '../storage/storage.ts';
import { initialSlotsState, SlotsState, type SlotName } from './slots.ts';

/**
 * Where slot contents live and how a slot is booted. The commit-or-revert logic (slots.ts) does
 * not care: this file backend keeps each slot as one file under `<slots>/a/` and `<slots>/b/`
 * and boots it as a child process of the launcher. A partition backend for OS bundles implements
 * the same three operations on block devices: `install` writes the image to the inactive
 * partition and fsyncs it, `digest` hashes what the partition holds, and `entry` names what the
 * bootloader boots (there the boot decision runs in the bootloader or initramfs, over the same
 * state document, and a boot is a reboot).
 */
export type SlotBackend = {
  /** Writes a release into a slot, durably (whole or not at all). Never called for the running or committed slot. */
  install(slot: SlotName, bytes: Uint8Array): void;
  /** The SHA-256 of what the slot holds, read back from storage (null when empty): an install is verified by it. */
  digest(slot: SlotName): string | null;
  /** How to run the release in a slot: a program and the arguments that come before the agent's own. */
  entry(slot: SlotName): { command: string; args: string[] };
};

const ENTRY = 'agent.mjs';
const STATE = 'state.json';

/** Slots as files: each release is one module run by this Node (in production, one single executable). */
export function createFileSlotBackend(slotsDir: string, opts: { execPath?: string; nodeArgs?: readonly string[] } = {}): SlotBackend {
  const files = (slot: SlotName) => createDirFileSystem(join(slotsDir, slot));
  return {
    install(slot, bytes) {
      const fs = files(slot);
      fs.writeFile(`${ENTRY}.tmp`, bytes);
      fs.fsync(`${ENTRY}.tmp`);
      fs.rename(`${ENTRY}.tmp`, ENTRY);
      fs.syncDir();
      // The slot's directory itself must survive a power cut too.
      createDirFileSystem(slotsDir).syncDir();
    },
    digest(slot) {
      const bytes = files(slot).read(ENTRY);
      return bytes === null ? null : createHash('sha256').update(bytes).digest('hex');
    },
    entry(slot) {
      return { command: opts.execPath ?? process.execPath, args: [...(opts.nodeArgs ?? ['--disable-warning=ExperimentalWarning']), join(slotsDir, slot, ENTRY)] };
    },
  };
}

const isState = (value: unknown): value is SlotsState => isValid(SlotsState, value);

/**
 * The slots state document, written only by the launcher. It lives in the slots directory through
 * its own Storage (opening a Storage removes stray temporary files, so it must not share a
 * directory with anyone else's).
 */
export function openSlotsState(slotsDir: string): { load(): SlotsState; save(state: SlotsState): void } {
  const storage = createDirStorage(slotsDir);
  return {
    load: () => readJson(storage, STATE, isState) ?? initialSlotsState(),
    save: (state) => writeJson(storage, STATE, state),
  };
}

/** The state as the launcher last wrote it, for readers (the agent): no Storage is opened, nothing is cleaned up. */
export function readSlotsState(slotsDir: string): SlotsState {
  const bytes = createDirFileSystem(slotsDir).read(STATE);
  if (bytes === null) return initialSlotsState();
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isState(value) ? value : initialSlotsState();
  } catch {
    return initialSlotsState();
  }
}
