import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { canonicalJson, contentHash } from './canonical.ts';
import { DriftlessError } from './errors.ts';
import { parseManifest } from './manifest.ts';
import { applicableKinds } from './resources.ts';
import { generateKeyPair, loadPrivateKey, loadPublicKey, signText, signValue, verifyText, verifyValue } from './signing.ts';
import { isValid, parseAs, problems, shown } from './validate.ts';
import { pathsOf, replaced } from '../../test/support/hostile-input.ts';

/**
 * Every decoder of outside input, fed random and hostile input: schemas of every protocol module
 * (found by walking the folder, so a new message is fuzzed without anyone remembering to), the
 * manifest parser, canonical JSON and signature checks. Nothing may throw anything but a
 * DriftlessError, every message is short and names the field, and every call is quick.
 * DRIFTLESS_FUZZ_RUNS raises the number of runs (default 100 per property) for a longer soak.
 */

const RUNS = Number(process.env.DRIFTLESS_FUZZ_RUNS ?? 100);
const HERE = dirname(fileURLToPath(import.meta.url));

const isSchema = (value: unknown): value is TSchema => value !== null && typeof value === 'object' && Kind in value;

/** Every TypeBox schema exported by a protocol module: [module:name, schema]. */
async function protocolSchemas(): Promise<[string, TSchema][]> {
  const out: [string, TSchema][] = [];
  for (const file of readdirSync(HERE).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort()) {
    const module = (await import(`./${file}`)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(module)) if (isSchema(value)) out.push([`${file.replace(/\.ts$/, '')}:${name}`, value]);
  }
  return out;
}

function nested(depth: number, wrap: (inner: unknown) => unknown, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = wrap(value);
  return value;
}

/** Inputs no random generator is likely to make, each a known way to hurt a decoder. */
const HOSTILE: Record<string, () => unknown> = {
  'deep object': () => nested(20_000, (inner) => ({ a: inner })),
  'deep array': () => nested(20_000, (inner) => [inner]),
  'deep value under every common field': () => {
    const deep = nested(20_000, (inner) => ({ kind: inner }));
    return { kind: deep, type: deep, seq: deep, name: deep, records: [deep], resources: [deep], components: [deep], payload: deep };
  },
  'megabyte strings': () => ({ kind: 'x'.repeat(1 << 20), type: 'y'.repeat(1 << 20), name: 'z'.repeat(1 << 20), ['k'.repeat(1 << 20)]: 1 }),
  'long array': () => Array.from({ length: 100_000 }, () => ({})),
  '__proto__ members': () => JSON.parse('{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"kind":"log"}') as unknown,
  'no prototype': () => Object.assign(Object.create(null) as object, { kind: 'metric' }),
  'non-JSON numbers': () => ({ seq: NaN, generation: Infinity, value: -Infinity, dropped: -0, port: 1e308 }),
  'lone surrogates': () => ({ name: '\ud800', kind: '\udfff', message: 'a\u0000b' }),
};

function assertProblemsAreClear(where: string, found: ReturnType<typeof problems>): void {
  for (const problem of found) {
    assert.equal(typeof problem.field, 'string', where);
    assert.ok(problem.message.length > 0, `${where}: empty message`);
    assert.ok(problem.field.length + problem.message.length < 600, `${where}: a ${problem.field.length + problem.message.length}-character problem`);
  }
}

/** The decoder contract: problems agree with isValid, parseAs returns the value or throws one clear invalid-input. */
function decode(where: string, schema: TSchema, value: unknown): void {
  const started = performance.now();
  const found = problems(schema, value, 5);
  assert.ok(found.length <= 5);
  assertProblemsAreClear(where, found);
  assert.equal(isValid(schema, value), found.length === 0, `${where}: isValid and problems disagree`);
  try {
    assert.equal(parseAs(schema, value, 'input'), value);
  } catch (error) {
    assert.ok(error instanceof DriftlessError, `${where}: threw ${String(error)}`);
    assert.equal(error.code, 'invalid-input');
    assert.match(error.message, /^input: /);
    assert.ok(error.message.length < 600, `${where}: a ${error.message.length}-character message`);
  }
  assert.ok(performance.now() - started < 2_000, `${where}: took ${Math.round(performance.now() - started)} ms`);
}

/** A valid instance of a schema where TypeBox can make one (formats and patterns it cannot fill are skipped). */
function sampleOf(schema: TSchema): unknown {
  try {
    return Value.Create(schema);
  } catch {
    return undefined;
  }
}


const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.anything({ maxDepth: 3, withNullPrototype: true, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withObjectString: true }),
  fc.constantFrom(...Object.values(HOSTILE)).map((make) => make()),
);

describe('protocol schemas, fed random and hostile values', async () => {
  const schemas = await protocolSchemas();

  test('the walk finds the schemas of every protocol module', () => {
    const names = schemas.map(([name]) => name);
    for (const expected of ['messages:EnrollRequest', 'messages:StatusReport', 'messages:TelemetryBatch', 'messages:SignedDesiredState', 'resources:DeploymentResource', 'resources:SiteResource']) {
      assert.ok(names.includes(expected), `${expected} not found among ${names.length} schemas`);
    }
  });

  test('every hostile input, on every schema', () => {
    for (const [hostile, make] of Object.entries(HOSTILE)) {
      const value = make();
      for (const [name, schema] of schemas) decode(`${name} ← ${hostile}`, schema, value);
    }
  });

  test('property: random values on every schema', () => {
    fc.assert(
      fc.property(fc.constantFrom(...schemas), anyValue, ([name, schema], value) => decode(name, schema, value)),
      { numRuns: RUNS * 10 },
    );
  });

  test('property: near-valid values, one member replaced by anything, on every schema', () => {
    const samples = schemas.map(([name, schema]) => [name, schema, sampleOf(schema)] as const).filter(([, , sample]) => sample !== undefined);
    // TypeBox cannot fill a pattern or a format: schemas with one are covered by the other properties.
    assert.ok(samples.length >= 20, `only ${samples.length} of ${schemas.length} schemas could be sampled`);
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.nat(), anyValue, ([name, schema, sample], pick, replacement) => {
        const paths = pathsOf(sample);
        decode(name, schema, replaced(sample, paths[pick % paths.length]!, replacement));
      }),
      { numRuns: RUNS * 10 },
    );
  });

  test('regression: a literal compared with a deeply nested value names its kind instead of overflowing the stack', () => {
    const deep = nested(20_000, (inner) => ({ kind: inner }));
    const found = problems(applicableKinds.Site, { apiVersion: deep, kind: 'Site', metadata: { name: 's' }, spec: {} }, 1);
    assert.deepEqual(found.map((p) => `${p.field}: ${p.message}`), ['apiVersion: must be "driftless/v1", not a mapping']);
  });

  test('regression: a megabyte-long value or key is not echoed whole in the message', () => {
    const [literal] = problems(applicableKinds.Site, { apiVersion: 'v'.repeat(1 << 20), kind: 'Site', metadata: { name: 's' }, spec: {} }, 1);
    assert.match(literal!.message, /^must be "driftless\/v1", not "v{60}…"$/);
    const [unknown] = problems(applicableKinds.Site, { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 's' }, spec: { ['k'.repeat(1 << 20)]: 1 } }, 1);
    assert.ok(unknown!.message.length < 120 && unknown!.field.length <= 201, unknown!.message.slice(0, 200));
  });

  test('shown: what a message says of a value', () => {
    assert.equal(shown('abc'), '"abc"');
    assert.equal(shown(5), '5');
    assert.equal(shown(null), 'null');
    assert.equal(shown([1]), 'an array');
    assert.equal(shown({}), 'a mapping');
    assert.equal(shown(undefined), 'nothing');
    assert.equal(shown(10n), 'a bigint');
  });
});

describe('canonical JSON', () => {
  test('property: any JSON value survives, with sorted keys, and canonicalising twice changes nothing', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = canonicalJson(value);
        assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
        assert.equal(canonicalJson(JSON.parse(text)), text);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('property: the hash does not depend on key order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        assert.equal(contentHash(reversed), contentHash(record));
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('a __proto__ member is kept as data; a non-finite number or a cycle is refused with a TypeError or RangeError, never a crash', () => {
    assert.equal(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1}}')), '{"__proto__":{"x":1},"b":1}');
    assert.throws(() => canonicalJson({ x: NaN }), TypeError);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    assert.throws(() => canonicalJson(cycle), (error: unknown) => error instanceof TypeError || error instanceof RangeError);
  });
});

describe('signatures, fed garbage', () => {
  const keys = generateKeyPair();
  const privateKey = loadPrivateKey(keys.privateKey);
  const publicKey = loadPublicKey(keys.publicKey);

  test('property: a garbage signature or text never verifies and never throws', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.oneof(fc.string({ unit: 'binary' }), fc.base64String(), fc.constant(signText(privateKey, 'x'))), (text, signature) => {
        const verdict = verifyText(publicKey, text, signature);
        assert.equal(typeof verdict, 'boolean');
        if (verdict) assert.equal(text, 'x');
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('property: a signed value with any one member changed no longer verifies', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1 }), fc.jsonValue({ maxDepth: 2 }), fc.nat(), (value, replacement, pick) => {
        const signature = signValue(privateKey, value);
        assert.ok(verifyValue(publicKey, value, signature));
        const key = Object.keys(value)[pick % Object.keys(value).length]!;
        const changed = { ...value, [key]: replacement };
        if (canonicalJson(changed) !== canonicalJson(value)) assert.equal(verifyValue(publicKey, changed, signature), false);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test('property: a garbage public key is refused with an error, never loaded as something else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.base64String(), fc.string({ unit: 'binary' }), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64'))), (text) => {
        try {
          const key = loadPublicKey(text);
          assert.equal(key.asymmetricKeyType, 'ed25519');
        } catch (error) {
          assert.ok(error instanceof Error);
        }
      }),
      { numRuns: RUNS * 5 },
    );
  });
});

describe('manifest parser, fed random and hostile YAML', () => {
  /** The parser's contract: valid resources, or one DriftlessError naming the file, short, quickly. */
  function parsed(text: string): void {
    const started = performance.now();
    try {
      for (const resource of parseManifest(text, 'fuzz.yaml')) {
        const kind = (resource as { kind: keyof typeof applicableKinds }).kind;
        assert.ok(isValid(applicableKinds[kind], resource), 'a resource that its schema refuses was returned');
      }
    } catch (error) {
      assert.ok(error instanceof DriftlessError, `threw ${String(error)} for ${JSON.stringify(text.slice(0, 80))}`);
      assert.equal(error.code, 'invalid-input');
      assert.match(error.message, /^fuzz\.yaml(:\d+)?: /);
      assert.ok(error.message.length < 600, `a ${error.message.length}-character message`);
    }
    assert.ok(performance.now() - started < 3_000, `took ${Math.round(performance.now() - started)} ms for ${JSON.stringify(text.slice(0, 80))}`);
  }

  const SITE = 'apiVersion: driftless/v1\nkind: Site\nmetadata: { name: store-12 }\nspec: { timeZone: Europe/Amsterdam }\n';
  const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (const [i, letter] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) laughs.push(`${letter}: &${letter} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`);

  const hostile: Record<string, string> = {
    'billion laughs': `${laughs.join('\n')}\n`,
    'billion laughs inside a resource': `apiVersion: driftless/v1\nkind: Site\nmetadata: { name: s, labels: &l { a: b } }\nspec: { timeZone: UTC, x: [${Array(200).fill('*l').join(',')}] }\n`,
    'deep flow sequence': `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
    'deep flow mapping': `${'{a: '.repeat(5_000)}1${'}'.repeat(5_000)}`,
    'deep block mapping': Array.from({ length: 2_000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'),
    'nested just past the limit': `kind: ${'['.repeat(70)}${']'.repeat(70)}\n`,
    'huge numbers': 'apiVersion: driftless/v1\nkind: Site\nmetadata: { name: s }\nspec: { timeZone: UTC, n: 1e999999, m: -0x7fffffffffffffffffffffffffffffff, o: .inf, p: .nan }\n',
    '__proto__ keys': 'apiVersion: driftless/v1\nkind: Site\n__proto__: { kind: Deployment }\nmetadata: { name: s, __proto__: { admin: true } }\nspec: { timeZone: UTC }\n',
    'constructor as kind': 'kind: constructor\n',
    'merge key': 'base: &b { kind: Site }\n<<: *b\n',
    'JS function tag': 'kind: !!js/function "function () { return 1 }"\n',
    'binary and set tags': 'kind: !!binary aGVsbG8=\nset: !!set { a, b }\n',
    'unknown tag': 'kind: !<tag:evil.example,2024:x> Site\n',
    'self-referencing alias': 'a: &a [*a]\n',
    'unresolved alias': 'kind: *nope\n',
    'duplicate keys': 'kind: Site\nkind: Deployment\n',
    'complex key': '? [a, b]\n: 1\nkind: Site\n',
    'megabyte kind': `kind: ${'x'.repeat(1 << 20)}\n`,
    'megabyte key': `${'k'.repeat(1 << 20)}: 1\n`,
    'many empty documents': '---\n'.repeat(20_000),
    'replacement characters (invalid UTF-8 read as text)': Buffer.from([0x6b, 0x69, 0x6e, 0x64, 0x3a, 0x20, 0xff, 0xfe, 0xc3, 0x28, 0x0a]).toString('utf8'),
    'lone surrogates': 'kind: "\\ud800\\udfff\\ud800"\nname: \ud800\n',
    'NUL and control characters': 'kind: Site\u0000\u0001\u001b[31m\n',
    'byte order mark': `\ufeff${SITE}`,
    'YAML 1.1 directive': `%YAML 1.1\n---\n${SITE}`,
    'CRLF line ends': SITE.replace(/\n/g, '\r\n'),
    'tabs for indentation': 'kind: Site\nmetadata:\n\tname: s\n',
    'a valid document between garbage': `${SITE}---\n: : :\n`,
  };

  for (const [name, text] of Object.entries(hostile)) test(`hostile: ${name}`, () => parsed(text));

  test('regression: deeply nested YAML is refused as nested too deeply, naming the limit', () => {
    for (const text of [hostile['deep flow sequence']!, hostile['deep flow mapping']!, hostile['nested just past the limit']!]) {
      assert.throws(() => parseManifest(text, 'deep.yaml'), /^DriftlessError: deep\.yaml:\d+: YAML: nested too deeply \(at most 64 levels\)$/);
    }
  });

  test('regression: an alias bomb is refused, not expanded', () => {
    assert.throws(() => parseManifest(hostile['billion laughs']!, 'lol.yaml'), /lol\.yaml:1: YAML: Excessive alias count/);
  });

  test('regression: a megabyte-long kind is named by its first characters only', () => {
    assert.throws(() => parseManifest(hostile['megabyte kind']!, 'big.yaml'), (error: unknown) => error instanceof DriftlessError && /not "x{60}…"$/.test(error.message));
  });

  test('property: random text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), parsed), { numRuns: RUNS * 5 });
  });

  const token = fc.constantFrom(
    'apiVersion: driftless/v1', 'kind: Site', 'kind: Deployment', 'kind: Device', 'metadata:', 'name: s', 'spec:', 'timeZone: UTC', 'labels: { a: b }',
    '---', '- ', '  ', '    ', ': ', '&a ', '*a', '<<: *a', '!!str ', '!!map ', '? ', '[', ']', '{', '}', ',', '"', "'", '#', '|', '>', '\n', '\t', '~', 'null', '1e9', '0x1F', '__proto__:',
  );
  const yamlish = fc.array(token, { maxLength: 60 }).map((parts) => parts.join(''));

  test('property: random text made of YAML tokens and resource fields', () => {
    fc.assert(fc.property(yamlish, parsed), { numRuns: RUNS * 10 });
  });

  test('property: a valid resource with one member replaced by anything is either valid or refused clearly', () => {
    const site = { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 'store-12', labels: { region: 'eu' } }, spec: { timeZone: 'Europe/Amsterdam' } };
    const paths = pathsOf(site);
    fc.assert(
      fc.property(fc.nat(), fc.jsonValue({ maxDepth: 3 }), (pick, replacement) => parsed(stringify(replaced(site, paths[pick % paths.length]!, replacement)))),
      { numRuns: RUNS * 5 },
    );
  });
});

describe('terminal and exec frames, fed garbage', async () => {
  const channel = (await import('./channel.ts').catch(() => null)) as { decodeFrame?: (schema: TSchema, raw: unknown, isBinary?: boolean) => unknown } & Record<string, unknown>;
  const decodeFrame = channel?.decodeFrame;
  const frameSchemas = Object.entries(channel ?? {}).filter(([name, value]) => isSchema(value) && /To(Agent|Server|Operator)$/.test(name)) as [string, TSchema][];

  test('property: any text, bytes or JSON is a frame or an invalid-input refusal', { skip: !decodeFrame || frameSchemas.length === 0 }, () => {
    const raw = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
      fc.constantFrom(`${'{"type":'.repeat(20_000)}1${'}'.repeat(20_000)}`, `[${'['.repeat(100_000)}${']'.repeat(100_000)}]`, 'x'.repeat(200_000), '{"__proto__":{"type":"input"}}', null, 42),
    );
    fc.assert(
      fc.property(fc.constantFrom(...frameSchemas), raw, fc.boolean(), ([, schema], frame, isBinary) => {
        try {
          decodeFrame!(schema, frame, isBinary);
        } catch (error) {
          assert.ok(error instanceof DriftlessError, `threw ${String(error)}`);
          assert.equal(error.code, 'invalid-input');
          assert.ok(error.message.length < 600);
        }
      }),
      { numRuns: RUNS * 10 },
    );
  });
});
