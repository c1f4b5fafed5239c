import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { moduleText, tsBlocks, type DocBlock } from './blocks.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Inside node_modules, so that the blocks find the project's own dependencies (and git ignores it). */
const work = `${root}node_modules/.cache/nest-sessions-doc-check`;
const DOCS = [
  'README.md',
  ...readdirSync(`${root}docs`)
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/**
 * The package as users get it: its declarations built from the sources (internals stripped), under the
 * package's name, with an ESM and a CommonJS entry as the published package has.
 */
function buildPackage(): void {
  rmSync(work, { recursive: true, force: true });
  const pkg = `${work}/node_modules/nest-sessions`;
  execFileSync(
    process.execPath,
    [
      `${root}node_modules/typescript/bin/tsc`,
      '-p',
      `${root}tsconfig.build.json`,
      '--outDir',
      `${pkg}/esm`,
      '--emitDeclarationOnly',
      '--declarationMap',
      'false',
    ],
    { stdio: 'pipe' },
  );
  cpSync(`${pkg}/esm`, `${pkg}/cjs`, { recursive: true });
  writeFileSync(`${pkg}/esm/package.json`, JSON.stringify({ type: 'module' }));
  writeFileSync(`${pkg}/cjs/package.json`, JSON.stringify({ type: 'commonjs' }));
  // The package's own exports and typesVersions, pointing at the declarations built here.
  const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as Record<string, unknown>;
  const here = (value: unknown): unknown => JSON.parse(JSON.stringify(value).replaceAll('./dist/', './'));
  writeFileSync(
    `${pkg}/package.json`,
    JSON.stringify({
      name: 'nest-sessions',
      types: here(manifest.types),
      typesVersions: here(manifest.typesVersions),
      exports: here(manifest.exports),
    }),
  );
}

interface Placed {
  block: DocBlock;
  path: string;
}

/** Writes the blocks of every document as modules of a project of `type`; blocks named by `file` keep their name. */
function place(type: 'module' | 'commonjs'): Placed[] {
  const dir = `${work}/${type}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/package.json`, JSON.stringify({ type }));
  const placed: Placed[] = [];
  for (const doc of DOCS) {
    const docDir = `${dir}/${doc.replace(/[^\w]/g, '_')}`;
    mkdirSync(docDir, { recursive: true });
    for (const block of tsBlocks(`${root}${doc}`, doc)) {
      if (block.kind === 'skip') continue;
      const path = `${docDir}/${block.file ?? `line-${block.line}.ts`}`;
      writeFileSync(path, moduleText(block));
      placed.push({ block, path });
    }
  }
  return placed;
}

/** Type-checks the placed blocks; one message per problem, naming the document and line of the block. */
function check(placed: Placed[], options: ts.CompilerOptions): string[] {
  const program = ts.createProgram(
    placed.map((p) => p.path),
    {
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      types: ['node'],
      typeRoots: [`${root}node_modules/@types`],
      strict: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      ...options,
    },
  );
  const byPath = new Map(placed.map((p) => [p.path, p.block]));
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const block = d.file && byPath.get(d.file.fileName);
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!block || !d.file || d.start === undefined) return `TS${d.code}: ${text}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const offset = block.kind === 'module' ? 0 : moduleText(block).split('\n').indexOf(block.code.split('\n')[0]!);
    return `${block.source}:${block.line + 1 + line - offset} (block at line ${block.line}): TS${d.code}: ${text}`;
  });
}

describe('the TypeScript blocks of the README and docs', () => {
  beforeAll(buildPackage, 120_000);

  it('are found, and every marker is one the checker knows', () => {
    const blocks = DOCS.flatMap((doc) => tsBlocks(`${root}${doc}`, doc));
    expect(blocks.filter((b) => b.source === 'README.md').length).toBeGreaterThan(10);
  });

  it('type-check under strict against the built package, in an ESM project (NodeNext)', () => {
    expect(check(place('module'), { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext })).toEqual([]);
  }, 120_000);

  it('type-check under strict in a CommonJS project as `nest new` makes it (module commonjs, node resolution)', () => {
    expect(check(place('commonjs'), { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 })).toEqual([]);
  }, 120_000);
});

describe("the README's PostgreSQL migration SQL", () => {
  it('is what postgresSessionTableSql() gives, byte for byte', async () => {
    const { postgresSessionTableSql } = await import('../../src/index.js');
    const readme = readFileSync(`${root}README.md`, 'utf8');
    const block = /To create the tables in your migrations[\s\S]*?```sql\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(block).toBe(postgresSessionTableSql());
  });
});

describe("the README's quick start", () => {
  it('is what every fixture project of test/projects runs, byte for byte', () => {
    const blocks = tsBlocks(`${root}README.md`, 'README.md');
    const projects = readdirSync(`${root}test/projects`, { withFileTypes: true }).filter((d) => d.isDirectory());
    expect(projects.length).toBe(3);
    for (const file of ['app.module.ts', 'main.ts']) {
      const block = blocks.find((b) => b.file === file);
      expect(block, file).toBeDefined();
      for (const project of projects) {
        expect(readFileSync(`${root}test/projects/${project.name}/src/${file}`, 'utf8'), `${project.name}/src/${file}`).toBe(
          `${block!.code}\n`,
        );
      }
    }
  });
});
