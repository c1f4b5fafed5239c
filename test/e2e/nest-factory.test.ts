import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORMS } from '../fixtures/app.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The sample as `npm start` runs it: compiled by tsc, started by plain Node through NestFactory.create.
 * Nest checks some things only on that path, and only outside the test runner's module loading (a
 * global enhancer's shape, for one), so this is the test that sees what users see.
 */
beforeAll(() => {
  execFileSync('npm', ['run', '--silent', 'build:sample'], { cwd: root, stdio: 'ignore' });
}, 120_000);

describe.each(PLATFORMS)('the compiled sample, started by Node, on %s', (platform) => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill();
    child = undefined;
  });

  it('starts and keeps a session over a real socket', async () => {
    const port = await freePort();
    child = spawn(process.execPath, ['sample/dist/main.js'], { cwd: root, env: { ...process.env, PORT: String(port), ADAPTER: platform } });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the sample did not start:\n${output}`)), 30_000);
      const read = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Sample app on')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child!.stdout!.on('data', read);
      child!.stderr!.on('data', read);
      child!.once('exit', (code) => reject(new Error(`the sample exited with code ${code}:\n${output}`)));
    });
    const first = await fetch(`http://127.0.0.1:${port}/`);
    expect(await first.json()).toEqual({ visits: 1, user: null });
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    const second = await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie } });
    expect(await second.json()).toEqual({ visits: 2, user: null });
    expect(output).not.toMatch(/ERROR/);
  }, 60_000);
});

describe('the built package', () => {
  const files = () =>
    readdirSync(`${root}/dist`, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.d.ts') || f.endsWith('.js'));
  const read = (f: string) => readFileSync(`${root}/dist/${f}`, 'utf8');

  it('ships no @internal member in its type declarations', () => {
    const declarations = files().filter((f) => f.endsWith('.d.ts'));
    for (const build of ['esm', 'cjs']) {
      expect(declarations).toContain(`${build}/index.d.ts`);
      expect(declarations).toContain(`${build}/stores/server-store.d.ts`);
    }
    const text = declarations.map(read).join('\n');
    for (const internal of [
      '_pending',
      '_data(',
      '_rollback',
      '_committed',
      'attach(',
      'SessionHandle',
      'PendingChange',
      'storeContext',
      'warnHeadersSent',
      'warnNeverSaved',
      'notHttp',
      'takesSession',
      'handleOfRequest',
      'unavailable(',
      'SESSIONS_MODULE_MARK',
    ]) {
      expect(text, internal).not.toContain(internal);
    }
  });

  it("imports none of Nest's internal paths", () => {
    for (const file of files()) expect(read(file), file).not.toMatch(/@nestjs\/[a-z-]+\/(?!['"])/);
  });
});
