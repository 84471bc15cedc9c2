import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { AgentToServer, chunksOf, decodeFrame, encodeFrame, MAX_FRAME_CHARS, OperatorToServer, ServerToAgent, ServerToOperator, toBase64 } from './channel.ts';
import { DriftlessError } from './errors.ts';

const SESSION = '0b4f7c1e-9a43-4a55-8a0e-1d2f3c4b5a69';

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => error instanceof DriftlessError && error.code === 'invalid-input' && pattern.test(error.message));
}

describe('channel frames', () => {
  test('every kind of frame survives encode and decode', () => {
    const toAgent: ServerToAgent[] = [
      { type: 'open-terminal', session: SESSION, cols: 120, rows: 30 },
      { type: 'open-exec', session: SESSION, command: ['uname', '-a'], component: 'web', timeoutSeconds: 60 },
      { type: 'input', session: SESSION, data: toBase64('ls\r') },
      { type: 'resize', session: SESSION, cols: 80, rows: 24 },
      { type: 'close', session: SESSION },
      { type: 'hint', what: 'desired-state' },
    ];
    for (const frame of toAgent) assert.deepEqual(decodeFrame(ServerToAgent, encodeFrame(frame)), frame);
    const toServer: AgentToServer[] = [
      { type: 'hello', agentVersion: '0.1.0', remoteShell: false },
      { type: 'opened', session: SESSION },
      { type: 'output', session: SESSION, data: toBase64(Buffer.from([0, 255, 27])) },
      { type: 'exit', session: SESSION, exitCode: 130 },
      { type: 'exit', session: SESSION, exitCode: 124, timedOut: true },
      { type: 'error', session: SESSION, code: 'refused', message: 'no remote shells here' },
    ];
    for (const frame of toServer) assert.deepEqual(decodeFrame(AgentToServer, Buffer.from(encodeFrame(frame))), frame);
    assert.deepEqual(decodeFrame(OperatorToServer, encodeFrame({ type: 'resize', cols: 100, rows: 20 })), { type: 'resize', cols: 100, rows: 20 });
    assert.deepEqual(decodeFrame(ServerToOperator, encodeFrame({ type: 'exit', exitCode: 0 })), { type: 'exit', exitCode: 0 });
  });

  test('a frame that does not fit is refused naming the field', () => {
    refused(() => decodeFrame(ServerToAgent, '{"type":"resize","session":"0b4f7c1e-9a43","cols":0,"rows":24}'), /frame: cols/);
    refused(() => decodeFrame(ServerToAgent, `{"type":"open-exec","session":"${SESSION}","command":[],"timeoutSeconds":5}`), /frame: command/);
    refused(() => decodeFrame(ServerToAgent, `{"type":"open-exec","session":"${SESSION}","command":["ls"],"timeoutSeconds":99999}`), /frame: timeoutSeconds/);
    refused(() => decodeFrame(AgentToServer, `{"type":"output","session":"../../etc","data":"aGk="}`), /frame: session/);
    refused(() => decodeFrame(AgentToServer, `{"type":"output","session":"${SESSION}","data":"not base64!"}`), /frame: data/);
    refused(() => decodeFrame(AgentToServer, `{"type":"exit","session":"${SESSION}","exitCode":0,"extra":1}`), /unknown field "extra"/);
    refused(() => decodeFrame(AgentToServer, '{"type":"launch-missiles"}'), /frame: type/);
    refused(() => decodeFrame(OperatorToServer, '{"type":"hint","what":"desired-state"}'), /frame/);
    refused(() => decodeFrame(AgentToServer, 'not json'), /not JSON/);
    refused(() => decodeFrame(AgentToServer, Buffer.from('{}'), true), /binary frames/);
    refused(() => decodeFrame(AgentToServer, 'x'.repeat(MAX_FRAME_CHARS + 1)), /longer than/);
  });

  test('data is chunked to fit a frame, and every chunk decodes', () => {
    const bytes = Buffer.alloc(200_000, 7);
    const chunks = chunksOf(bytes);
    assert.ok(chunks.length > 1);
    assert.deepEqual(Buffer.concat(chunks), bytes);
    for (const chunk of chunks) decodeFrame(AgentToServer, encodeFrame({ type: 'output', session: SESSION, data: toBase64(chunk) }));
  });

  test('hostile input never crashes a decoder: it parses or is refused as invalid input', () => {
    const schemas = [ServerToAgent, AgentToServer, OperatorToServer, ServerToOperator] as const;
    const frameLike = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ type: fc.constantFrom('open-terminal', 'open-exec', 'input', 'resize', 'close', 'hint', 'hello', 'output', 'exit', 'error', 'opened'), session: fc.string(), data: fc.string(), cols: fc.integer(), rows: fc.integer(), command: fc.array(fc.string()), exitCode: fc.integer() }, { requiredKeys: ['type'] }).map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(fc.constantFrom(...schemas), frameLike, fc.boolean(), (schema, text, binary) => {
        try {
          decodeFrame(schema, text, binary);
        } catch (error) {
          assert.ok(error instanceof DriftlessError && error.code === 'invalid-input', `unexpected ${String(error)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
