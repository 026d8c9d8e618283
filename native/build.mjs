// Builds the native send path (binding.gyp) with node-gyp against the running Node's own headers, never a
// download. Run by `npm ci` (postinstall) and `npm run build:native`. It never fails the install: without a
// compiler or headers it says so, and Amphi protects and sends RTP with its TypeScript path instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = dirname(dirname(process.execPath));
const nodeGyp = [process.env.npm_config_node_gyp, join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')].find(
  (candidate) => candidate && existsSync(candidate),
);
const fallback = (reason) => {
  console.log(`amphi: the native send path was not built (${reason}); RTP will be protected and sent by the TypeScript path`);
  process.exit(0);
};

if (!nodeGyp) fallback('node-gyp not found');
const args = [nodeGyp, 'rebuild'];
// The system's headers when npm names none: node-gyp would otherwise try to download them.
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
const build = spawnSync(process.execPath, args, { cwd: here, stdio: ['ignore', 'inherit', 'inherit'] });
if (build.status !== 0) fallback(build.error ? build.error.message : `node-gyp exited with ${build.status}; its output is above`);
console.log('amphi: the native send path was built (native/build/Release/amphi_native.node)');
