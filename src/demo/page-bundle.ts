import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';

const pageDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'page');

export interface PageAsset {
  contentType: string;
  body: Buffer;
}

/** The page's files by URL path. */
export type PageAssets = Map<string, PageAsset>;

/**
 * Builds the demo page once, on first request, and keeps it in memory: the page's TypeScript and the unmodified
 * amazon-chime-sdk-js from node_modules bundled by esbuild (minified), beside its HTML and CSS.
 */
export class PageBundle {
  private built: Promise<PageAssets> | undefined;

  assets(): Promise<PageAssets> {
    this.built ??= build();
    // A failed build is tried again at the next request rather than remembered.
    this.built.catch(() => (this.built = undefined));
    return this.built;
  }
}

async function build(): Promise<PageAssets> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [path.join(pageDir, 'app.ts')],
    bundle: true,
    write: false,
    outdir: '/',
    platform: 'browser',
    format: 'iife',
    target: 'chrome110',
    // The SDK references Node's `global`.
    define: { global: 'globalThis', 'process.env.NODE_ENV': '"production"' },
    plugins: [withoutMessaging],
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const script = result.outputFiles.find((file) => file.path.endsWith('.js'));
  if (!script) throw new Error('esbuild produced no script');
  return new Map([
    ['/', { contentType: 'text/html; charset=utf-8', body: await readFile(path.join(pageDir, 'index.html')) }],
    ['/demo/app.css', { contentType: 'text/css; charset=utf-8', body: await readFile(path.join(pageDir, 'app.css')) }],
    ['/demo/app.js', { contentType: 'text/javascript; charset=utf-8', body: Buffer.from(script.contents) }],
  ]);
}

/**
 * The SDK's package index imports the messaging client, whose Node-only credential providers don't resolve for a
 * browser; the page never runs messaging code, so it gets an empty module.
 */
const withoutMessaging: Plugin = {
  name: 'amphi-demo-without-messaging',
  setup(build) {
    build.onResolve({ filter: /^@aws-sdk\/client-chime-sdk-messaging$/ }, (args) => ({ path: args.path, namespace: 'empty' }));
    build.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};
