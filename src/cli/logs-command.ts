import { DriftlessError } from '../protocol/errors.ts';
import type { DeviceView } from '../protocol/resources.ts';
import type { Api } from './api-client.ts';
import { age, type OutputFormat } from './output.ts';

type LogPage = { logs: { seq: number; at: string; component: string; line: string }[]; next: number; dropped: number };

export type LogsOptions = { follow: boolean; tail: number; timestamps: boolean; format: OutputFormat; intervalMs?: number; signal?: AbortSignal };

/**
 * `driftless logs DEVICE [COMPONENT] [-f]`: the device's component output as uploaded from its
 * outbox. Following polls for lines after the last one shown; a device that is offline keeps its
 * lines and sends them when it is back, so following it just waits.
 */
export async function logsCommand(api: Api, device: string, component: string | undefined, opts: LogsOptions): Promise<void> {
  const path = (query: string) => `/v1/devices/${encodeURIComponent(device)}/logs?${component ? `component=${encodeURIComponent(component)}&` : ''}${query}`;
  const first = await api.get<LogPage>(path(`tail=${opts.tail}`));
  if (opts.format === 'json' || opts.format === 'yaml') {
    if (opts.follow) throw new DriftlessError('invalid-input', '--follow prints lines as they come; it cannot be combined with -o json');
    process.stdout.write(`${JSON.stringify(first.logs, null, 2)}\n`);
    return;
  }
  const print = (page: LogPage) => {
    let text = '';
    for (const entry of page.logs) {
      text += `${opts.timestamps ? `${entry.at} ` : ''}${component ? '' : `[${entry.component}] `}${entry.line}\n`;
    }
    if (text) process.stdout.write(text);
  };
  print(first);
  if (first.dropped > 0) process.stderr.write(`driftless: ${device} dropped ${first.dropped} telemetry records while its outbox was full\n`);
  if (!opts.follow) return;

  const view = await api.get<DeviceView>(`/v1/devices/${encodeURIComponent(device)}`);
  if (!view.online) process.stderr.write(`driftless: ${device} is offline (last seen ${age(view.lastSeen)} ago); its lines arrive when it reconnects\n`);
  let next = first.next;
  while (!opts.signal?.aborted) {
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 1000));
    for (;;) {
      const page = await api.get<LogPage>(path(`after=${next}&limit=1000`));
      print(page);
      next = page.next;
      if (page.logs.length < 1000) break;
    }
  }
}
