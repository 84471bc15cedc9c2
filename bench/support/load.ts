import { Agent, request } from 'node:http';

export type LoadResult = { requests: number; notModified: number; errors: number; seconds: number; perSecond: number };

/**
 * Closed-loop load: `connections` keep-alive connections, each sending the next request as soon
 * as the previous answer arrived, for `seconds`. Only 304 answers count as served.
 */
export async function runLoad(opts: {
  url: string;
  connections: number;
  seconds: number;
  headersFor: (i: number) => Record<string, string>;
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const target = new URL(opts.url);
  let requests = 0;
  let notModified = 0;
  let errors = 0;
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();

  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const req = request({ host: target.hostname, port: target.port, path: target.pathname, agent, headers: opts.headersFor(i) }, (res) => {
        if (res.statusCode === 304) notModified++;
        else errors++;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });

  await Promise.all(
    Array.from({ length: opts.connections }, async (_, worker) => {
      for (let i = worker; performance.now() < deadline; i += opts.connections) {
        requests++;
        await one(i);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { requests, notModified, errors, seconds, perSecond: notModified / seconds };
}
