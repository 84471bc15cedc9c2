import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeBase64, encodeBase64, inputFrame, parseServerFrame, terminalProtocols, terminalUrl, type ClientFrame, type ServerFrame } from './terminal-frames.ts';

/** What the server sends (src/protocol/channel.ts `toBase64`): Node's own base64 of the raw bytes. */
const serverBase64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

describe('base64 of terminal bytes', () => {
  test('any bytes survive the round trip, and agree with the server’s encoding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const data = encodeBase64(bytes);
        assert.equal(data, serverBase64(bytes));
        assert.deepEqual(decodeBase64(data), bytes);
        assert.deepEqual(decodeBase64(serverBase64(bytes)), bytes);
      }),
    );
  });

  test('a chunk larger than one String.fromCharCode batch (32 KiB) comes back whole', () => {
    const bytes = new Uint8Array(3 * 0x8000 + 17).map((_, i) => (i * 131 + 7) % 256);
    assert.equal(encodeBase64(bytes), serverBase64(bytes));
    assert.deepEqual(decodeBase64(encodeBase64(bytes)), bytes);
  });

  test('invalid UTF-8 stays byte-exact (no replacement characters)', () => {
    const bytes = Uint8Array.from([0xff, 0xfe, 0xc3, 0x28, 0x80, 0xed, 0xa0, 0x80, 0xf8, 0x00, 0x1b, 0x5b, 0x6d]);
    assert.deepEqual(decodeBase64(serverBase64(bytes)), bytes);
  });

  test('a multi-byte character split across output frames reads whole once the frames are joined', () => {
    const text = 'é ü 世界 🙂 \u{1F468}\u200D\u{1F469}\u200D\u{1F467} done';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (const frames of [[bytes.subarray(0, cut), bytes.subarray(cut)], [bytes.subarray(0, cut), bytes.subarray(cut, cut + 1), bytes.subarray(cut + 1)]]) {
        const received = frames.map((part) => {
          const frame = parseServerFrame(JSON.stringify({ type: 'output', data: serverBase64(part) }));
          assert.equal(frame?.type, 'output');
          return decodeBase64((frame as Extract<ServerFrame, { type: 'output' }>).data);
        });
        assert.deepEqual(concat(received), bytes);
        // A terminal fed the pieces one by one (a streaming decoder) shows the text unbroken.
        const decoder = new TextDecoder();
        assert.equal(received.map((part) => decoder.decode(part, { stream: true })).join('') + decoder.decode(), text);
      }
    }
  });

  test('typed text is sent as its UTF-8 bytes', () => {
    const sent = (typed: string) => {
      const frame = inputFrame(typed);
      assert.equal(frame.type, 'input');
      return decodeBase64((frame as Extract<ClientFrame, { type: 'input' }>).data);
    };
    assert.deepEqual(inputFrame('ls -l\r'), { type: 'input', data: serverBase64(Buffer.from('ls -l\r')) });
    assert.deepEqual(sent('é'), Uint8Array.from([0xc3, 0xa9]));
    assert.deepEqual(sent('\x03'), Uint8Array.from([0x03]));
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (typed) => assert.equal(new TextDecoder().decode(sent(typed)), typed)));
  });
});

describe('parseServerFrame', () => {
  test('reads each kind of frame the server sends', () => {
    const frames: ServerFrame[] = [
      { type: 'opened', recording: 'rec-2024-07-19-0001' },
      { type: 'output', data: serverBase64(Buffer.from('hello\r\n')) },
      { type: 'output', data: '' },
      { type: 'exit', exitCode: 0 },
      { type: 'exit', exitCode: 130 },
      { type: 'exit', exitCode: -1 },
      { type: 'error', code: 'device-offline', message: 'dev-1 is offline' },
    ];
    for (const frame of frames) assert.deepEqual(parseServerFrame(JSON.stringify(frame)), frame);
  });

  test('ignores what is not a text frame, not JSON, or not an object', () => {
    for (const input of [undefined, null, 42, new ArrayBuffer(4), new Uint8Array([123, 125]), { type: 'output', data: '' }]) assert.equal(parseServerFrame(input), null);
    for (const text of ['', 'output', '{', '{"type":"output",', 'null', '42', 'true', '"output"', '[]', '["output"]', '{}']) assert.equal(parseServerFrame(text), null, text);
  });

  test('ignores frames of an unknown type', () => {
    for (const type of ['input', 'resize', 'OUTPUT', 'ping', '', 7, null]) assert.equal(parseServerFrame(JSON.stringify({ type, data: '' })), null, String(type));
  });

  test('ignores a known frame that lacks its fields or has them of the wrong kind', () => {
    const malformed = [
      { type: 'opened' },
      { type: 'opened', recording: 5 },
      { type: 'output' },
      { type: 'output', data: 5 },
      { type: 'output', data: null },
      { type: 'output', data: '!!!!' },
      { type: 'output', data: 'A' },
      { type: 'output', data: 'aGVsbG8' }, // unpadded: the server always pads
      { type: 'output', data: 'aGVs bG8=' },
      { type: 'exit' },
      { type: 'exit', exitCode: '0' },
      { type: 'exit', exitCode: 1.5 },
      { type: 'exit', exitCode: null },
      { type: 'error', message: 'no code' },
      { type: 'error', code: 'x' },
      { type: 'error', code: 1, message: 'm' },
    ];
    for (const frame of malformed) assert.equal(parseServerFrame(JSON.stringify(frame)), null, JSON.stringify(frame));
  });

  test('keeps only the fields it knows', () => {
    assert.deepEqual(parseServerFrame('{"type":"exit","exitCode":2,"extra":{"deep":true}}'), { type: 'exit', exitCode: 2 });
  });

  test('never throws, and what it returns can be used as it says', () => {
    const text = fc.oneof(
      fc.string(),
      fc.json(),
      fc.record({ type: fc.constantFrom('opened', 'output', 'exit', 'error', 'other'), data: fc.oneof(fc.string(), fc.base64String(), fc.integer()), recording: fc.anything(), exitCode: fc.anything(), code: fc.anything(), message: fc.anything() }, { requiredKeys: ['type'] }).map((frame) => JSON.stringify(frame)),
    );
    fc.assert(
      fc.property(text, (input) => {
        const frame = parseServerFrame(input);
        if (frame === null) return;
        switch (frame.type) {
          case 'opened':
            assert.equal(typeof frame.recording, 'string');
            break;
          case 'output':
            decodeBase64(frame.data); // must not throw
            break;
          case 'exit':
            assert.ok(Number.isInteger(frame.exitCode));
            break;
          case 'error':
            assert.equal(typeof frame.code, 'string');
            assert.equal(typeof frame.message, 'string');
            break;
          default:
            assert.fail(`unknown frame ${JSON.stringify(frame)}`);
        }
      }),
    );
  });
});

describe('the terminal socket', () => {
  // terminalUrl reads the page's own address; outside a browser, a stand-in `window` carries it.
  const setPage = (href: string) => Object.defineProperty(globalThis, 'window', { value: { location: new URL(href) }, configurable: true, writable: true });
  let hadWindow = false;
  before(() => {
    hadWindow = 'window' in globalThis;
  });
  after(() => {
    if (!hadWindow) delete (globalThis as { window?: unknown }).window;
  });

  test('ws:// beside a page served over http, with the size in the query', () => {
    setPage('http://127.0.0.1:7480/devices/dev-1');
    assert.equal(terminalUrl('dev-1', 80, 24), 'ws://127.0.0.1:7480/v1/devices/dev-1/terminal?cols=80&rows=24');
  });

  test('wss:// beside a page served over https, on the page’s own host and port', () => {
    setPage('https://fleet.example.com:8443/devices/dev-1?tab=terminal#x');
    assert.equal(terminalUrl('dev-1', 120, 40), 'wss://fleet.example.com:8443/v1/devices/dev-1/terminal?cols=120&rows=40');
    setPage('https://fleet.example.com/');
    assert.equal(terminalUrl('dev-1', 80, 24), 'wss://fleet.example.com/v1/devices/dev-1/terminal?cols=80&rows=24');
  });

  test('the device name is one path segment, whatever it contains', () => {
    setPage('http://localhost:5173/');
    assert.equal(terminalUrl('a b/c?d#é', 80, 24), 'ws://localhost:5173/v1/devices/a%20b%2Fc%3Fd%23%C3%A9/terminal?cols=80&rows=24');
  });

  test('offers the terminal subprotocol and the token as a bearer subprotocol', () => {
    assert.deepEqual(terminalProtocols('abc.DEF-123_x'), ['driftless.terminal', 'driftless.bearer.abc.DEF-123_x']);
    assert.ok(terminalProtocols('t')[1]!.startsWith('driftless.bearer.'));
  });
});
