import { createServer } from 'node:http';

/** The baseline: a bare Node HTTP server answering every request with 304, as cheaply as Node can. */
const server = createServer((request, response) => {
  response.writeHead(304, { etag: '"g1-baseline"' });
  response.end();
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
