import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { killPids, run, runOk } from './child.ts';
import { uniqueTag } from './fleet.ts';

/**
 * A private LAN on this machine: a bridge in the root namespace with the first address of a /24,
 * and "hosts", each its own Linux network namespace joined to the bridge by a veth pair. An agent
 * run inside a host has its own loopback and ports (three agents can all serve on :8080) and
 * reaches the server on the bridge address. Only ever addresses from 10.213.0.0/16, which this
 * helper claims one /24 at a time; nothing leaves the machine (no routes, no forwarding set up).
 * Later tests cut links by taking a host's veth down.
 */

export type LanHost = {
  /** Network namespace name. */
  ns: string;
  address: string;
  /** The root-namespace end of its veth pair, to cut or restore the link. */
  link: string;
  /** Prefix for a command to run inside the host: `ip netns exec NS`. */
  wrap: readonly string[];
  /** Takes the host's link down (a partition) or up again. */
  setLink(up: boolean): Promise<void>;
};

export type Lan = {
  bridge: string;
  /** The bridge's address, where a server in the root namespace listens for the LAN. */
  gateway: string;
  subnet: string;
  hosts: LanHost[];
  addHost(): Promise<LanHost>;
  cleanup(): Promise<void>;
};

const ip = (args: string[]) => runOk('ip', args);

/** Requires root and iproute2; fails with what to do otherwise (tests never skip for a missing tool). */
async function assertCanCreate(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('network namespace tests need root: run the tests as root (see scripts/setup-system.sh)');
  const probe = await run('ip', ['netns', 'list']).catch((e: unknown) => ({ code: -1, stderr: String(e), stdout: '' }));
  if (probe.code !== 0) throw new Error(`\`ip netns\` is not usable (${probe.stderr.trim()}): run \`bash scripts/setup-system.sh\` as root (it installs iproute2)`);
}

function addressesInUse(): string {
  try {
    return readFileSync('/proc/net/fib_trie', 'utf8');
  } catch {
    return '';
  }
}

/**
 * Claims a free 10.213.X.0/24: the bridge is named after X, so creating it is the lock between
 * test files running at the same time; a subnet with any address already on this machine is skipped.
 */
async function claimSubnet(): Promise<{ subnet: string; bridge: string }> {
  const start = randomInt(256);
  for (let i = 0; i < 256; i++) {
    const x = (start + i) % 256;
    const subnet = `10.213.${x}`;
    if (addressesInUse().includes(`${subnet}.`)) continue;
    const bridge = `dlbr213-${x}`;
    const made = await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    if (made.code !== 0) continue; // taken by another test file right now
    return { subnet, bridge };
  }
  throw new Error('no free 10.213.X.0/24 subnet for a test LAN');
}

export async function createLan(): Promise<Lan> {
  await assertCanCreate();
  const { subnet, bridge } = await claimSubnet();
  const gateway = `${subnet}.1`;
  const tag = uniqueTag();
  const hosts: LanHost[] = [];
  const lan: Lan = {
    bridge,
    gateway,
    subnet,
    hosts,
    async addHost() {
      const index = hosts.length + 1;
      if (index > 200) throw new Error('a test LAN holds at most 200 hosts');
      const ns = `dl-${tag}-${index}`;
      const link = `dlv${tag}${index}`; // 15 characters at most, the kernel's limit
      const peer = `dlp${tag}${index}`;
      const address = `${subnet}.${10 + index}`;
      await ip(['netns', 'add', ns]);
      const host: LanHost = {
        ns,
        address,
        link,
        wrap: ['ip', 'netns', 'exec', ns],
        async setLink(up) {
          await ip(['link', 'set', link, up ? 'up' : 'down']);
        },
      };
      hosts.push(host);
      await ip(['link', 'add', link, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
      await ip(['link', 'set', link, 'master', bridge]);
      await ip(['link', 'set', link, 'up']);
      await ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      return host;
    },
    async cleanup() {
      for (const host of hosts) {
        // Whatever still runs in the namespace was started by this test (agents, their workloads).
        const pids = await run('ip', ['netns', 'pids', host.ns]);
        killPids(pids.stdout.split(/\s+/).filter(Boolean).map(Number));
        await run('ip', ['netns', 'del', host.ns]);
        await run('ip', ['link', 'del', host.link]);
      }
      await run('ip', ['link', 'del', bridge]);
    },
  };
  try {
    await ip(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
  } catch (error) {
    await lan.cleanup();
    throw error;
  }
  return lan;
}

export type LinkDegradation = {
  /** Takes the loss and the bandwidth cap away again; safe to call twice. */
  restore(): Promise<void>;
};

export type DegradeOptions = {
  /** Packets dropped at random, in each direction, in percent (0 for none). */
  lossPercent?: number;
  /** A `tc tbf` cap on each end of the veth, in kbit/s (omit for none). */
  rateKbit?: number;
  /** The token bucket's size, in kbit. */
  burstKbit?: number;
  /** How long a packet may wait in the bucket's queue before it is dropped. */
  queueLatencyMs?: number;
};

/**
 * Degrades a host's link the ways this kernel allows without `netem`: random loss with nftables
 * (`numgen random`, a table of this helper's own inside the host's namespace, on its input and
 * output through eth0: both directions) and a bandwidth cap with `tc tbf` on each end of the veth.
 * Latency comes from a TCP proxy (tcp-proxy.ts). Everything lives on the host's own devices and
 * namespace, so `lan.cleanup()` removes it too when a failing test never calls `restore()`.
 */
export async function degradeLink(host: LanHost, opts: DegradeOptions): Promise<LinkDegradation> {
  const loss = opts.lossPercent ?? 0;
  if (!(loss >= 0 && loss <= 100)) throw new Error(`lossPercent must be within 0..100, got ${loss}`);
  const table = `dl_loss_${uniqueTag()}`;
  const inNs = (command: string, args: string[]) => runOk('ip', ['netns', 'exec', host.ns, command, ...args]);
  const undo: (() => Promise<unknown>)[] = [];
  const restore = async () => {
    while (undo.length > 0) await undo.pop()!();
  };
  try {
    if (loss > 0) {
      await assertTool('nft', 'nftables');
      const rules = `table inet ${table} {
  chain loss_in { type filter hook input priority -150; policy accept; iifname "eth0" numgen random mod 100 < ${loss} counter drop; }
  chain loss_out { type filter hook output priority -150; policy accept; oifname "eth0" numgen random mod 100 < ${loss} counter drop; }
}
`;
      const made = await runWithInput(['ip', 'netns', 'exec', host.ns, 'nft', '-f', '-'], rules);
      if (made.code !== 0) throw new Error(`nft could not add the loss rules in ${host.ns}: ${made.stderr.trim()}`);
      undo.push(() => run('ip', ['netns', 'exec', host.ns, 'nft', 'delete', 'table', 'inet', table]));
    }
    if (opts.rateKbit !== undefined) {
      await assertTool('tc', 'iproute2');
      const tbf = ['root', 'tbf', 'rate', `${opts.rateKbit}kbit`, 'burst', `${opts.burstKbit ?? 16}kbit`, 'latency', `${opts.queueLatencyMs ?? 400}ms`];
      await runOk('tc', ['qdisc', 'add', 'dev', host.link, ...tbf]);
      undo.push(() => run('tc', ['qdisc', 'del', 'dev', host.link, 'root']));
      await inNs('tc', ['qdisc', 'add', 'dev', 'eth0', ...tbf]);
      undo.push(() => run('ip', ['netns', 'exec', host.ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']));
    }
  } catch (error) {
    await restore();
    throw error;
  }
  return { restore };
}

/** What is applied to a host's link right now, for failure messages and to prove a restore. */
export async function linkShaping(host: LanHost): Promise<{ nftTables: string[]; qdiscs: string[]; droppedPackets: number }> {
  const tables = await run('ip', ['netns', 'exec', host.ns, 'nft', 'list', 'tables']);
  const ruleset = await run('ip', ['netns', 'exec', host.ns, 'nft', 'list', 'ruleset']);
  const droppedPackets = [...ruleset.stdout.matchAll(/counter packets (\d+) bytes \d+ drop/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  const outer = await run('tc', ['qdisc', 'show', 'dev', host.link]);
  const inner = await run('ip', ['netns', 'exec', host.ns, 'tc', 'qdisc', 'show', 'dev', 'eth0']);
  return {
    nftTables: tables.stdout.split('\n').map((l) => l.trim()).filter((l) => l.includes('dl_loss_')),
    qdiscs: [...outer.stdout.split('\n'), ...inner.stdout.split('\n')].map((l) => l.trim()).filter((l) => l.startsWith('qdisc tbf')),
    droppedPackets,
  };
}

/** Fails (never skips) when a tool is missing, saying how to fix the machine. */
async function assertTool(command: 'nft' | 'tc', debianPackage: string): Promise<void> {
  const probe = await run(command, [command === 'tc' ? '-V' : '--version']).catch(() => ({ code: -1 }));
  if (probe.code !== 0) {
    throw new Error(`\`${command}\` is not usable: run \`bash scripts/setup-system.sh\` as root (it installs ${debianPackage})`);
  }
}

function runWithInput(argv: readonly string[], input: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', (e) => resolve({ code: null, stderr: String(e) }));
    child.once('close', (code) => resolve({ code, stderr }));
    child.stdin.end(input);
  });
}
