import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The layout rules of ENGINEERING.md, checked on the tree: agent and server never import each
 * other; protocol imports none of the others; the CLI reaches the server only through its start
 * entry (for `driftless server` and `demo`) and the agent only through what `driftless agent`
 * needs; no `utils.ts` drawers, no `lib/` folders, no default exports, kebab-case names, and
 * relative imports that name an existing `.ts` file.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * What the CLI may use of the server and the agent; everything else it reaches through the HTTP API.
 * `driftless agent` assembles the agent from its parts: drivers, self-update slots and the channel to the server.
 */
const CLI_MAY_IMPORT = [/^src\/server\/server\.ts$/, /^src\/agent\/create-agent\.ts$/, /^src\/agent\/drivers\//, /^src\/agent\/enroll\//, /^src\/agent\/slots\//, /^src\/agent\/terminal\/device-channel\.ts$/];
/** Packages that belong to the management plane and have no place on a device. */
const SERVER_ONLY_PACKAGES = /^(fastify|@fastify\/|kysely|pg|commander)($|\/)/;
const LAYERS = ['agent', 'server', 'protocol', 'cli', 'sim'] as const;
type Layer = (typeof LAYERS)[number];

const layerOf = (path: string): Layer | null => {
  const match = /^src\/([^/]+)\//.exec(path);
  return match && (LAYERS as readonly string[]).includes(match[1]!) ? (match[1] as Layer) : null;
};
const isTest = (path: string) => path.endsWith('.test.ts');

/** Every module specifier a file imports or re-exports, statically, dynamically or as a type. */
function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** Names of default exports in a file, found on its syntax tree (comments and strings cannot fool it). */
function defaultExportsOf(path: string, text: string): string[] {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  for (const statement of source.statements) {
    if (ts.isExportAssignment(statement)) found.push(statement.isExportEquals ? 'export =' : 'export default');
    const modifiers = ts.canHaveModifiers(statement) ? (ts.getModifiers(statement) ?? []) : [];
    if (modifiers.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)) found.push('export default declaration');
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) if (element.name.text === 'default') found.push('export { … as default }');
    }
  }
  return found;
}

/** Every broken rule in a set of files (repository-relative POSIX path → text), one line each. */
function violations(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    const segments = path.split('/');
    const name = segments.at(-1)!;
    if (/^utils?\.ts$/.test(name)) out.push(`${path}: a utils drawer; put the helper in the domain that owns it`);
    if (segments.slice(0, -1).includes('lib')) out.push(`${path}: inside a lib/ folder`);
    if (!/^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+(-[a-z0-9]+)*)*$/.test(name)) out.push(`${path}: file name is not kebab-case`);
    for (const dir of segments.slice(0, -1)) if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(dir)) out.push(`${path}: folder "${dir}" is not kebab-case`);
    // Vite reads its configuration from a default export: the one allowed.
    if (path !== 'web/vite.config.ts') for (const kind of defaultExportsOf(path, text)) out.push(`${path}: ${kind} (named exports only)`);

    if (path.startsWith('web/')) {
      // The dashboard is a client of the public HTTP API like the CLI: it imports nothing of the product's code.
      for (const specifier of importsOf(text).filter((s) => s.startsWith('.'))) {
        const target = posix.normalize(posix.join(posix.dirname(path), specifier));
        if (!target.startsWith('web/')) out.push(`${path} imports ${target}: the dashboard uses the public HTTP API, not the product's code`);
      }
      continue;
    }
    if (!path.startsWith('src/')) continue;
    const from = layerOf(path);
    for (const specifier of importsOf(text)) {
      if (!specifier.startsWith('.')) {
        if (from === 'agent' && !isTest(path) && SERVER_ONLY_PACKAGES.test(specifier)) out.push(`${path}: the agent imports the server-side package "${specifier}"`);
        continue;
      }
      const target = posix.normalize(posix.join(posix.dirname(path), specifier));
      if (!specifier.endsWith('.ts')) out.push(`${path}: relative import "${specifier}" must name its .ts file`);
      else if (!files.has(target)) out.push(`${path}: imports "${specifier}", which does not exist`);
      const to = layerOf(target);
      const edge = `${path} imports ${target}`;
      if (!target.startsWith('src/')) {
        if (!isTest(path)) out.push(`${edge}: product code imports from outside src/`);
        continue;
      }
      if (from === to) continue;
      if (from === 'agent' && to === 'server') out.push(`${edge}: the agent never imports the server; both speak through protocol/`);
      if (from === 'server' && to === 'agent') out.push(`${edge}: the server never imports the agent; both speak through protocol/`);
      if (from === 'protocol' && to !== null) out.push(`${edge}: protocol/ imports none of the others`);
      if (from === 'cli' && (to === 'server' || to === 'agent') && !CLI_MAY_IMPORT.some((allowed) => allowed.test(target))) {
        out.push(`${edge}: the CLI uses the public HTTP API, not ${to} internals`);
      }
      if (to === 'cli') out.push(`${edge}: nothing imports the CLI; it is the outermost layer`);
    }
  }
  return out;
}

function readTree(...dirs: string[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of dirs.filter((d) => existsSync(join(ROOT, d)))) {
    for (const entry of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })) {
      const full = join(ROOT, dir, entry);
      const path = relative(ROOT, full).split(sep).join('/');
      if (path.startsWith('web/dist/') || path.includes('/node_modules/')) continue;
      if (/\.tsx?$/.test(path) && statSync(full).isFile()) files.set(path, readFileSync(full, 'utf8'));
    }
  }
  return files;
}

describe('architecture rules', () => {
  test('the checker catches each kind of violation', () => {
    const planted = new Map<string, string>([
      ['src/agent/plan/plan.ts', "import { x } from '../../server/store/store.ts';\nimport { Kysely } from 'kysely';"],
      ['src/server/store/store.ts', "export type { Y } from '../../agent/ledger/ledger.ts';\nconst m = await import('../app');"],
      ['src/server/app.ts', ''],
      ['src/agent/ledger/ledger.ts', 'export default 1;'],
      ['src/protocol/messages.ts', "import type { Store } from '../server/store/store.ts';\nimport { main } from '../cli/main.ts';"],
      ['src/cli/main.ts', "import { startServer } from '../server/server.ts';\nimport { createAgent } from '../agent/create-agent.ts';\nimport { plan } from '../agent/plan/plan.ts';\nimport { buildApp } from '../server/app.ts';\nimport { x } from '../../test/support/fleet.ts';"],
      ['src/server/server.ts', 'const a = 1;\nexport { a as default };'],
      ['src/agent/create-agent.ts', 'export default function createAgent() {}'],
      ['src/server/fleet/utils.ts', ''],
      ['src/agent/lib/helpers.ts', ''],
      ['src/agent/health/healthCheck.ts', ''],
      ['test/support/fleet.ts', ''],
      ['web/src/pages/device-page.tsx', "import { DeviceView } from '../../../src/protocol/resources.ts';\nexport default function DevicePage() {}"],
      ['web/vite.config.ts', 'export default {};'],
    ]);
    const found = violations(planted);
    const expect = [
      'src/agent/plan/plan.ts imports src/server/store/store.ts: the agent never imports the server',
      'src/agent/plan/plan.ts: the agent imports the server-side package "kysely"',
      'src/server/store/store.ts imports src/agent/ledger/ledger.ts: the server never imports the agent',
      'src/server/store/store.ts: relative import "../app" must name its .ts file',
      'src/agent/ledger/ledger.ts: export default',
      'src/protocol/messages.ts imports src/server/store/store.ts: protocol/ imports none of the others',
      'src/protocol/messages.ts imports src/cli/main.ts: nothing imports the CLI',
      'src/protocol/messages.ts imports src/cli/main.ts: protocol/ imports none of the others',
      'src/cli/main.ts imports src/agent/plan/plan.ts: the CLI uses the public HTTP API, not agent internals',
      'src/cli/main.ts imports src/server/app.ts: the CLI uses the public HTTP API, not server internals',
      'src/cli/main.ts imports test/support/fleet.ts: product code imports from outside src/',
      'src/server/server.ts: export { … as default }',
      'src/agent/create-agent.ts: export default declaration',
      'src/server/fleet/utils.ts: a utils drawer',
      'src/agent/lib/helpers.ts: inside a lib/ folder',
      'src/agent/health/healthCheck.ts: file name is not kebab-case',
      'web/src/pages/device-page.tsx: export default declaration',
      'web/src/pages/device-page.tsx imports src/protocol/resources.ts: the dashboard uses the public HTTP API',
      'src/cli/main.ts imports src/server/server.ts',
      'src/cli/main.ts imports src/agent/create-agent.ts',
    ];
    for (const line of expect.slice(0, -2)) assert.ok(found.some((v) => v.startsWith(line)), `missed: ${line}\nfound:\n${found.join('\n')}`);
    for (const allowed of expect.slice(-2)) assert.ok(!found.some((v) => v.startsWith(allowed)), `wrongly refused: ${allowed}`);
    assert.equal(found.length, expect.length - 2, `unexpected:\n${found.join('\n')}`);
  });

  test('import extraction sees static, type-only, re-exported and dynamic imports', () => {
    const text = "import a from './a.ts';\nimport type { B } from './b.ts';\nexport * from './c.ts';\nexport { d } from './d.ts';\nconst e = await import('./e.ts');\ntype F = import('./f.ts').F;\n// import x from './comment.ts'\nconst s = \"import y from './string.ts'\";";
    assert.deepEqual(importsOf(text).sort(), ['./a.ts', './b.ts', './c.ts', './d.ts', './e.ts', './f.ts']);
  });

  test('the source tree keeps every rule', () => {
    const files = readTree('src', 'test', 'bench', 'scripts', 'web');
    assert.ok([...files.keys()].filter((p) => p.startsWith('src/')).length > 40, 'the scan found the source tree');
    const cliToServer = [...files].filter(([p]) => p.startsWith('src/cli/')).flatMap(([p, text]) => importsOf(text).map((s) => posix.normalize(posix.join(posix.dirname(p), s))));
    assert.ok(cliToServer.includes('src/server/server.ts'), 'the scan reads imports: the CLI starts the server through server.ts');
    assert.deepEqual(violations(files), []);
  });
});
