// Builds the test page (page/app.ts + the official amazon-chime-sdk-js) with esbuild and serves it on 127.0.0.1.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const pageDir = path.join(here, 'page');
const repoRoot = path.resolve(here, '..', '..', '..');

/**
 * Modules the SDK's package index imports that cannot (and need not) run in the page:
 * the messaging client pulls Node-only credential providers that don't resolve for platform=browser.
 */
const STUBBED_MODULES = [/^@aws-sdk\/client-chime-sdk-messaging$/];

const stubPlugin: Plugin = {
  name: 'amphi-stubs',
  setup(b) {
    for (const filter of STUBBED_MODULES) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'amphi-stub' }));
    }
    // An empty CommonJS module: the SDK only touches these exports inside messaging code the page never runs.
    b.onLoad({ filter: /.*/, namespace: 'amphi-stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

/** A hash of everything the bundle depends on, so one build is reused for a whole test run (and across runs). */
function bundleKey(): string {
  const hash = createHash('sha256');
  for (const file of readdirSync(pageDir).sort()) hash.update(file).update(readFileSync(path.join(pageDir, file)));
  hash.update(readFileSync(path.join(here, 'api.ts')));
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const file of ['package-lock.json', 'node_modules/amazon-chime-sdk-js/package.json', 'node_modules/esbuild/package.json']) {
    const full = path.join(repoRoot, file);
    if (existsSync(full)) hash.update(readFileSync(full));
  }
  return hash.digest('hex').slice(0, 16);
}

async function buildInto(dir: string): Promise<void> {
  const result = await build({
    entryPoints: [path.join(pageDir, 'app.ts')],
    outfile: path.join(dir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'chrome120',
    // The SDK references Node's `global` (CSPMonitor).
    define: { global: 'globalThis', 'process.env.NODE_ENV': '"production"' },
    plugins: [stubPlugin],
    sourcemap: 'linked',
    minify: false,
    logLevel: 'silent',
    absWorkingDir: repoRoot,
  });
  if (result.errors.length) throw new Error(`esbuild failed: ${JSON.stringify(result.errors)}`);
  writeFileSync(path.join(dir, 'index.html'), readFileSync(path.join(pageDir, 'index.html')));
}

let bundleDir: Promise<string> | undefined;

/**
 * Builds the page once per process into a temp dir keyed by the content hash of its inputs; a later process
 * (node --test runs each file in its own) reuses a complete build. Returns the directory.
 */
export function buildPage(): Promise<string> {
  bundleDir ??= (async () => {
    const dir = path.join(tmpdir(), `amphi-browser-page-${bundleKey()}`);
    if (existsSync(path.join(dir, 'index.html')) && existsSync(path.join(dir, 'app.js'))) return dir;
    const staging = `${dir}.${process.pid}.${Date.now()}`;
    mkdirSync(staging, { recursive: true });
    try {
      await buildInto(staging);
      try {
        renameSync(staging, dir);
      } catch (error) {
        // Another process won the race: its build is identical.
        if (!existsSync(path.join(dir, 'index.html'))) throw error;
        rmSync(staging, { recursive: true, force: true });
      }
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    return dir;
  })();
  bundleDir.catch(() => {
    bundleDir = undefined;
  });
  return bundleDir;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

export interface PageServer {
  /** http://127.0.0.1:<port>/ — the page (index.html). */
  url: string;
  close(): Promise<void>;
}

/** A static file server for `dir` on `host` (default 127.0.0.1), any free port (GET/HEAD only, no directory listing, no caching). */
export async function servePage(dir: string, host = '127.0.0.1'): Promise<PageServer> {
  const root = path.resolve(dir);
  const server: Server = createServer((request, response) => {
    const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
    const file = path.resolve(root, `.${pathname === '/' ? '/index.html' : pathname}`);
    if ((request.method !== 'GET' && request.method !== 'HEAD') || !file.startsWith(root + path.sep) || !existsSync(file)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const body = readFileSync(file);
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-store',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** buildPage() + servePage(). */
export async function startPageServer(): Promise<PageServer> {
  return servePage(await buildPage());
}
