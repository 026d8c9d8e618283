import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AccessKey } from './api/sigv4.ts';
import type { AmphiConfig } from './config.ts';
import { ensurePrivateDirectory, ensurePrivateFile, PRIVATE_FILE_MODE } from './util/private-files.ts';

const DEV_KEYS_FILE = 'dev-credentials.json';
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * The key pairs SigV4 accepts: the configured ones (comma-separated lists), or a development
 * pair generated once and kept in the data directory so clients keep working across restarts.
 */
export function resolveAccessKeys(config: AmphiConfig): { keys: AccessKey[]; generated: boolean } {
  if (config.accessKeyId || config.secretAccessKey) {
    const ids = (config.accessKeyId ?? '').split(',').map((s) => s.trim());
    const secrets = (config.secretAccessKey ?? '').split(',').map((s) => s.trim());
    if (ids.length !== secrets.length || ids.some((id) => !id) || secrets.some((secret) => !secret)) {
      throw new Error('AMPHI_ACCESS_KEY_ID and AMPHI_SECRET_ACCESS_KEY must list the same number of non-empty values');
    }
    return { keys: ids.map((accessKeyId, i) => ({ accessKeyId, secretAccessKey: secrets[i]! })), generated: false };
  }
  const file = path.join(config.dataDir, DEV_KEYS_FILE);
  // The secret is as good as the file's mode: private, including copies made before this was enforced.
  ensurePrivateDirectory(config.dataDir);
  ensurePrivateFile(file);
  if (existsSync(file)) return { keys: [JSON.parse(readFileSync(file, 'utf8')) as AccessKey], generated: true };
  const key: AccessKey = {
    accessKeyId: 'AKAM' + [...randomBytes(16)].map((b) => ALPHANUMERIC[b % 32]).join(''),
    secretAccessKey: randomBytes(30).toString('base64'),
  };
  writeFileSync(file, JSON.stringify(key, null, 2) + '\n', { mode: PRIVATE_FILE_MODE });
  return { keys: [key], generated: true };
}
