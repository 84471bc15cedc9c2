import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A man in the middle between a real agent and the real server. It forwards everything; when told
 * to, it rewrites what `GET /v1/device/desired-state` answers, the way an attacker or a broken
 * cache would: tampered (a field changed, the signature kept), unsigned (the signature dropped) or
 * replayed (an older, genuinely signed document served again); withheld (the server's new documents
 * kept back, the agent told nothing changed, to deliver later or out of order); forged (made from
 * the server's current document by a function, e.g. re-signed with a stolen key).
 */
export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'tamper'; change: (payload: Record<string, unknown>) => void }
  | { kind: 'unsigned' }
  | { kind: 'replay'; document: unknown }
  | { kind: 'withhold' }
  | { kind: 'forge'; forge: (genuine: Record<string, unknown>) => unknown };

export type DesiredStateProxy = {
  url: string;
  setMode(mode: ProxyMode): void;
  /** Every desired-state document the server sent with status 200, in order. */
  documents: { generation: number; document: Record<string, unknown> }[];
  /** The server's documents kept back in `withhold` mode, once each, in order. */
  withheld: { generation: number; document: Record<string, unknown> }[];
  /** How many rewritten documents were served since the mode was last set. */
  rewrites(): number;
  close(): Promise<void>;
};

const DESIRED_PATH = '/v1/device/desired-state';

export async function startDesiredStateProxy(upstream: string): Promise<DesiredStateProxy> {
  const target = new URL(upstream);
  let mode: ProxyMode = { kind: 'pass' };
  let rewritten = 0;
  const documents: DesiredStateProxy['documents'] = [];
  const withheld: DesiredStateProxy['withheld'] = [];



  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const isDesired = req.method === 'GET' && req.url?.split('?')[0] === DESIRED_PATH;
    const current = mode;
    const headers = { ...req.headers };
    // A rewriting proxy always fetches the whole document, whatever the agent already has.
    if (isDesired && current.kind !== 'pass') delete headers['if-none-match'];
    const answer = await forwardRequest(target, req, body, headers);

    if (isDesired && answer.status === 200) {
      const document = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
      const generation = (document.payload as { generation: number }).generation;
      if (current.kind === 'pass') {
        documents.push({ generation, document });
      } else if (current.kind === 'withhold') {
        if (!withheld.some((w) => w.generation === generation)) withheld.push({ generation, document });
        const etag = req.headers['if-none-match'];
        res.writeHead(304, typeof etag === 'string' ? { etag } : {});
        res.end();
        return;
      } else {
        const forged = structuredClone(current.kind === 'replay' ? current.document : current.kind === 'forge' ? current.forge(structuredClone(document)) : document) as Record<string, unknown>;
        if (current.kind === 'tamper') current.change(forged.payload as Record<string, unknown>);
        if (current.kind === 'unsigned') delete forged.signature;
        rewritten++;
        const text = JSON.stringify(forged);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), etag: `"forged-${current.kind}-${rewritten}"` });
        res.end(text);
        return;
      }
    }
    const passed = { ...answer.headers };
    delete passed['transfer-encoding'];
    delete passed.connection;
    res.writeHead(answer.status, { ...passed, 'content-length': answer.body.length });
    res.end(answer.body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: 'proxy: upstream unreachable' } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    setMode(next) {
      mode = next;
      rewritten = 0;
    },
    documents,
    withheld,
    rewrites: () => rewritten,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type Forwarded = { status: number; headers: IncomingMessage['headers']; body: Buffer };

/** Sends a request on to `target` as it came (its body already read); resolves with the answer fully read. */
export function forwardRequest(target: URL, req: IncomingMessage, body: Buffer, headers: IncomingMessage['headers'] = req.headers): Promise<Forwarded> {
  return new Promise((resolve, reject) => {
    const out = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...headers, host: target.host }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    out.on('error', reject);
    out.end(body);
  });
}
