import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
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
  const configured = configuredAccessKeys(config);
  if (configured) return { keys: configured, generated: false };
  const file = path.join(config.dataDir, DEV_KEYS_FILE);
  // The secret is as good as the file's mode: private, including copies made before this was enforced.
  ensurePrivateDirectory(config.dataDir);
  ensurePrivateFile(file);
  if (existsSync(file)) return { keys: [JSON.parse(readFileSync(file, 'utf8')) as AccessKey], generated: true };
  const key = generateKey();
  writeFileSync(file, JSON.stringify(key, null, 2) + '\n', { mode: PRIVATE_FILE_MODE });
  return { keys: [key], generated: true };
}

/**
 * The key pairs of a cluster node: the configured ones, or one development pair shared through Redis
 * (`<prefix>dev-credentials`): the first node to start stores the pair it generated (SET NX) and every node,
 * itself included, uses the pair Redis holds, so all nodes accept the same signatures.
 */
export async function resolveClusterAccessKeys(config: AmphiConfig, redis: Redis, prefix: string): Promise<{ keys: AccessKey[]; generated: boolean }> {
  const configured = configuredAccessKeys(config);
  if (configured) return { keys: configured, generated: false };
  const key = `${prefix}${CLUSTER_DEV_KEYS}`;
  await redis.set(key, JSON.stringify(generateKey()), 'NX');
  const stored = await redis.get(key);
  const pair = stored === null ? undefined : parseJson(stored);
  if (typeof pair?.accessKeyId !== 'string' || typeof pair.secretAccessKey !== 'string') {
    throw new Error(`Redis key ${key} does not hold a development key pair; delete it or configure keys`);
  }
  return { keys: [{ accessKeyId: pair.accessKeyId, secretAccessKey: pair.secretAccessKey }], generated: true };
}

/** Where a cluster's shared development key pair is kept in Redis, after the key prefix. */
export const CLUSTER_DEV_KEYS = 'dev-credentials';

function configuredAccessKeys(config: AmphiConfig): AccessKey[] | undefined {
  if (config.accessKeyId || config.secretAccessKey) {
    const ids = (config.accessKeyId ?? '').split(',').map((s) => s.trim());
    const secrets = (config.secretAccessKey ?? '').split(',').map((s) => s.trim());
    if (ids.length !== secrets.length || ids.some((id) => !id) || secrets.some((secret) => !secret)) {
      throw new Error('AMPHI_ACCESS_KEY_ID and AMPHI_SECRET_ACCESS_KEY must list the same number of non-empty values');
    }
    return ids.map((accessKeyId, i) => ({ accessKeyId, secretAccessKey: secrets[i]! }));
  }
  return undefined;
}

function generateKey(): AccessKey {
  return {
    accessKeyId: 'AKAM' + [...randomBytes(16)].map((b) => ALPHANUMERIC[b % 32]).join(''),
    secretAccessKey: randomBytes(30).toString('base64'),
  };
}

function parseJson(text: string): Partial<AccessKey> | undefined {
  try {
    return JSON.parse(text) as Partial<AccessKey>;
  } catch {
    return undefined;
  }
}
