// The package as users install it, in a small Nest project of each kind: `npm pack`, then for each
// fixture a copy in a temporary directory that installs the tarball, builds (tsc, strict) and runs its
// e2e test. Exits non-zero if any fixture fails. Nothing is written under the repository but `dist/`,
// which `npm pack` builds.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const here = fileURLToPath(new URL('.', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'nest-sessions-projects-'));

/** Runs a command; resolves with its output, rejects with it on a non-zero exit. */
function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}\n${out}`))));
  });
}

const [major, minor] = process.versions.node.split('.').map(Number);
/**
 * Jest runs a CommonJS project's tests in its own module system, which can load Nest 12's ESM-only
 * packages only where Node can require() them from a VM context: Node 24.9 and later. Below that, the
 * Nest 12 CommonJS fixture runs under a Node 24 from the npm registry's `node` package.
 */
async function node24Bin() {
  if (major > 24 || (major === 24 && minor >= 9)) return undefined;
  const prefix = join(work, 'node24');
  await run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', 'node@24'], { cwd: work });
  const bin = join(prefix, 'node_modules', '.bin');
  const version = (await run(join(bin, 'node'), ['--version'])).trim();
  return { bin, version };
}

async function fixture(name, tarball, node24) {
  const started = Date.now();
  const dir = join(work, name);
  cpSync(join(here, name), dir, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  pkg.dependencies['nest-sessions'] = `file:${tarball}`;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  const needs24 = name === 'nest12-cjs-jest';
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  if (needs24 && node24) env.PATH = `${node24.bin}${delimiter}${env.PATH}`;
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, env });
  await run('npm', ['run', 'build'], { cwd: dir, env });
  await run('npm', ['run', 'test:e2e'], { cwd: dir, env });
  const on = needs24 && node24 ? ` (Node ${node24.version})` : '';
  return `${name}${on}: passed in ${((Date.now() - started) / 1000).toFixed(0)} s`;
}

/** What the tarball holds: the license, the README, both builds with their types; nothing else. */
function checkContents(files) {
  const problems = [];
  for (const needed of ['LICENSE', 'README.md', 'package.json', 'dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json']) {
    if (!files.includes(needed)) problems.push(`missing ${needed}`);
  }
  for (const file of files) {
    if (!/^(LICENSE|README\.md|package\.json|dist\/(esm|cjs)\/.+\.(js|d\.ts)|dist\/cjs\/package\.json)$/.test(file)) problems.push(`unexpected ${file}`);
  }
  if (problems.length > 0) throw new Error(`npm pack: ${problems.join(', ')}`);
  console.log(`  ✓ the tarball holds ${files.length} files: LICENSE, README, package.json, dist/esm and dist/cjs (no maps, tests, sample or bench)`);
}

const started = Date.now();
let failed = 0;
try {
  await run('npm', ['run', 'build'], { cwd: root });
  console.log((await run(process.execPath, [join(here, 'both-builds.mjs')])).trim());
  const packed = JSON.parse(await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root }));
  const tarball = join(work, packed[0].filename);
  checkContents(packed[0].files.map((f) => f.path));
  const node24 = await node24Bin();
  const names = readdirSync(here, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const results = await Promise.allSettled(names.map((name) => fixture(name, tarball, node24)));
  results.forEach((result, i) => {
    if (result.status === 'fulfilled') console.log(`  ✓ ${result.value}`);
    else {
      failed++;
      console.log(`  × ${names[i]}: ${result.reason.message.split('\n').slice(0, 60).join('\n    ')}`);
    }
  });
  console.log(`projects: ${names.length - failed} passed, ${failed} failed, in ${((Date.now() - started) / 1000).toFixed(0)} s`);
} catch (err) {
  failed++;
  console.error(err);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
