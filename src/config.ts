import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { isMediaRegion, MEDIA_REGIONS } from './meetings/regions.ts';
import { JOURNAL_FSYNC_POLICIES } from './store/journal-fsync.ts';
import { parseTurnUris } from './signaling/turn-credentials.ts';

/**
 * Every setting, with its command-line flag and environment variable. The variable names
 * are part of Amphi's interface: deployment scripts rely on them.
 */
export const SETTINGS = {
  host: {
    flag: 'host',
    env: 'AMPHI_HOST',
    help: 'Address the HTTP API and signaling listen on',
    default: '(127.0.0.1 with development keys, else 0.0.0.0)',
  },
  port: { flag: 'port', env: 'AMPHI_PORT', help: 'Port of the HTTP API and signaling WebSocket', default: '8080' },
  publicUrl: {
    flag: 'public-url',
    env: 'AMPHI_PUBLIC_URL',
    help: 'Base URL clients reach Amphi at (behind a proxy: the proxy\'s URL); MediaPlacement URLs derive from it',
    default: 'http://127.0.0.1:<port>',
  },
  accessKeyId: {
    flag: 'access-key-id',
    env: 'AMPHI_ACCESS_KEY_ID',
    help: 'Access key id(s) accepted for SigV4, comma-separated; unset: a development pair is generated in the data directory',
    default: '(generated)',
  },
  secretAccessKey: {
    flag: 'secret-access-key',
    env: 'AMPHI_SECRET_ACCESS_KEY',
    help: 'Secret key(s), comma-separated, in the order of the access key ids',
    default: '(generated)',
  },
  dataDir: { flag: 'data-dir', env: 'AMPHI_DATA_DIR', help: 'Where meetings, attendees and development keys are kept', default: './data' },
  journalFsync: {
    flag: 'journal-fsync',
    env: 'AMPHI_JOURNAL_FSYNC',
    help: 'When the journal is flushed to disk: always (before a change is acknowledged), interval (every second) or never (the OS decides)',
    default: 'always',
  },
  accountId: { flag: 'account-id', env: 'AMPHI_ACCOUNT_ID', help: '12-digit account id used in meeting ARNs', default: '000000000000' },
  maxReplicasPerPrimary: {
    flag: 'max-replicas-per-primary',
    env: 'AMPHI_MAX_REPLICAS_PER_PRIMARY',
    help: 'Replica meetings a primary may have',
    default: '4',
  },
  maxMeetings: { flag: 'max-meetings', env: 'AMPHI_MAX_MEETINGS', help: 'Active meetings at once (the service quota)', default: '250' },
  apiRateLimit: {
    flag: 'api-rate-limit',
    env: 'AMPHI_API_RATE_LIMIT',
    help: 'Requests per second per operation and access key, burst twice that; 0 turns throttling off',
    default: '0',
  },
  maxSocketsPerAddress: {
    flag: 'max-sockets-per-address',
    env: 'AMPHI_MAX_SOCKETS_PER_ADDRESS',
    help: 'Signaling WebSockets open at once from one client address (relayed ones count under the client\'s); over it: HTTP 429; 0 turns the cap off',
    default: '100',
  },
  rtcPort: {
    flag: 'rtc-port',
    env: 'AMPHI_RTC_PORT',
    help: 'UDP port of the first media worker, shared by all its attendees; worker i uses this + i (0: any free ports)',
    default: '40000',
  },
  mediaWorkers: {
    flag: 'media-workers',
    env: 'AMPHI_MEDIA_WORKERS',
    help: 'Media worker threads, each with its own UDP port; each new meeting goes to the least loaded (default: one per core)',
    default: String(availableParallelism()),
  },
  rtcAnnouncedIp: {
    flag: 'rtc-announced-ip',
    env: 'AMPHI_RTC_ANNOUNCED_IP',
    help: 'IPv4 address put in ICE candidates: the address clients reach the media port at',
    default: '127.0.0.1',
  },
  drainSeconds: {
    flag: 'drain-seconds',
    env: 'AMPHI_DRAIN_SECONDS',
    help: 'On SIGTERM or SIGINT: seconds of answering 503 (API, /healthz, new signaling) so load balancers move away, before calls in flight are finished and the node stops; 0: stop at once',
    default: '10',
  },
  metrics: {
    flag: 'metrics',
    env: 'AMPHI_METRICS',
    help: 'on: GET /metrics serves Prometheus metrics (unauthenticated); off: no such route',
    default: 'on',
  },
  demo: {
    flag: 'demo',
    env: 'AMPHI_DEMO',
    help: 'on: the webinar demo page at / (and its endpoints under /demo/api); off: none',
    default: '(on with development keys, else off)',
  },
  demoSeatsPerReplica: {
    flag: 'demo-seats-per-replica',
    env: 'AMPHI_DEMO_SEATS_PER_REPLICA',
    help: 'A demo and test setting: viewers the demo seats in one replica before it creates the next',
    default: '250',
  },
  logLevel: { flag: 'log-level', env: 'AMPHI_LOG_LEVEL', help: 'fatal, error, warn, info, debug or trace', default: 'info' },
  redisUrl: {
    flag: 'redis-url',
    env: 'AMPHI_REDIS_URL',
    help: 'Redis shared by the nodes of a cluster, e.g. redis://127.0.0.1:6379; set: cluster mode, this process is one node',
    default: '(unset: embedded single node)',
  },
  nodeId: {
    flag: 'node-id',
    env: 'AMPHI_NODE_ID',
    help: 'Unique name of this node in the cluster',
    default: '(host name:port)',
  },
  regions: {
    flag: 'regions',
    env: 'AMPHI_REGIONS',
    help: 'Comma-separated MediaRegions whose media sessions this node hosts in a cluster',
    default: '(any region)',
  },
  webhookUrl: {
    flag: 'webhook-url',
    env: 'AMPHI_WEBHOOK_URL',
    help: 'Where meeting lifecycle events are POSTed as JSON (the shape the service sends to EventBridge); needs --webhook-secret',
    default: '(unset: no events sent)',
  },
  webhookSecret: {
    flag: 'webhook-secret',
    env: 'AMPHI_WEBHOOK_SECRET',
    help: 'Key of the HMAC-SHA256 signature of each event (x-amphi-signature header)',
    default: '(unset)',
  },
  turnUris: {
    flag: 'turn-uris',
    env: 'AMPHI_TURN_URIS',
    help: 'Comma-separated turn:/turns: URIs of the TURN server (coturn) handed to clients; set: every attendee\'s media goes through TURN',
    default: '(unset: no TURN)',
  },
  turnSecret: {
    flag: 'turn-secret',
    env: 'AMPHI_TURN_SECRET',
    help: 'The TURN server\'s shared secret (coturn\'s static-auth-secret) that signs the credentials',
    default: '(unset)',
  },
  turnTtl: {
    flag: 'turn-ttl',
    env: 'AMPHI_TURN_TTL',
    help: 'Seconds a TURN credential stays valid',
    default: '86400',
  },
} as const;

export type SettingName = keyof typeof SETTINGS;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const configSchema = z.object({
  host: z.string().min(1).optional(),
  port: int(0, 65535),
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  accessKeyId: z.string().optional(),
  secretAccessKey: z.string().optional(),
  dataDir: z.string().min(1),
  journalFsync: z.enum(JOURNAL_FSYNC_POLICIES),
  accountId: z.string().regex(/^\d{12}$/, 'must be 12 digits'),
  maxReplicasPerPrimary: int(0, 1000),
  maxMeetings: int(1, 1_000_000),
  apiRateLimit: z.coerce.number().min(0),
  maxSocketsPerAddress: int(0, 1_000_000),
  rtcPort: int(0, 65535),
  rtcAnnouncedIp: z.ipv4(),
  mediaWorkers: int(1, 64),
  drainSeconds: z.coerce.number().min(0).max(3600),
  metrics: z.enum(['on', 'off']).transform((value) => value === 'on'),
  demo: z.enum(['on', 'off']).transform((value) => value === 'on').optional(),
  demoSeatsPerReplica: int(1, 250),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  redisUrl: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,100}$/, 'must be 1 to 100 letters, digits, dots, colons, dashes or underscores')
    .optional(),
  regions: z
    .string()
    .transform((list) => list.split(',').map((region) => region.trim()).filter(Boolean))
    .check((ctx) => {
      const unknown = ctx.value.filter((region) => !isMediaRegion(region));
      if (unknown.length > 0) {
        ctx.issues.push({
          code: 'custom',
          input: ctx.value,
          message: `unknown media region${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${MEDIA_REGIONS.join(', ')})`,
        });
      }
      if (ctx.value.length === 0) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'names no region; leave it unset to host any region' });
    })
    .optional(),
  webhookUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  webhookSecret: z.string().optional(),
  turnUris: z
    .string()
    .transform((list, ctx) => {
      try {
        return parseTurnUris(list);
      } catch (error) {
        ctx.issues.push({ code: 'custom', input: list, message: (error as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
  turnSecret: z.string().min(1).optional(),
  turnTtl: int(1, 365 * 86_400),
}).check((ctx) => {
  if (ctx.value.turnUris && ctx.value.turnUris.length > 0 && !ctx.value.turnSecret) {
    ctx.issues.push({ code: 'custom', input: ctx.value, path: ['turnSecret'], message: 'is needed with --turn-uris: it signs the TURN credentials' });
  }
});

export type AmphiConfig = z.infer<typeof configSchema>;

/** Reads settings from flags first, then the environment, then defaults. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AmphiConfig {
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((setting) => [setting.flag, { type: 'string' as const }]),
  );
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const raw: Record<string, string | undefined> = {};
  for (const [name, setting] of Object.entries(SETTINGS)) {
    const fromFlag = values[setting.flag];
    const value = typeof fromFlag === 'string' ? fromFlag : env[setting.env];
    raw[name] = value !== undefined && value !== '' ? value : setting.default.startsWith('(') || setting.default.includes('<') ? undefined : setting.default;
  }
  const result = configSchema
    .check((ctx) => {
      // Unsigned events could be forged by anyone who can reach the receiver.
      if (ctx.value.webhookUrl && !ctx.value.webhookSecret) {
        ctx.issues.push({ code: 'custom', input: ctx.value, path: ['webhookSecret'], message: 'is required with --webhook-url (events are signed with it)' });
      }
    })
    .safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const setting = SETTINGS[issue.path[0] as SettingName];
      return `${setting ? `--${setting.flag} / ${setting.env}` : String(issue.path[0])}: ${issue.message}`;
    });
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return result.data;
}

export function settingsHelp(): string {
  return Object.values(SETTINGS)
    .map((s) => `  --${s.flag.padEnd(26)} ${s.env.padEnd(32)} ${s.help} (default: ${s.default})`)
    .join('\n');
}
