/**
 * An Amphi node whose meetings, attendees and join tokens live in Redis, for bench/api/cluster.ts.
 * It reads the same settings as `amphi serve` (the environment ServerProcess sets) and differs in one
 * thing only: startAmphi gets a RedisMeetingStore on AMPHI_BENCH_REDIS_URL instead of opening the
 * journal. The calls the benchmark times (CreateAttendee, BatchCreateAttendee) use the store alone:
 * they publish no event and revoke no token, so the event bus and revocations stay the local ones.
 */
import { startAmphi } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { RedisMeetingStore } from '../../src/store/redis-store.ts';

const redisUrl = process.env.AMPHI_BENCH_REDIS_URL;
if (!redisUrl) {
  process.stderr.write('cluster-node: AMPHI_BENCH_REDIS_URL is not set\n');
  process.exit(2);
}

const config = loadConfig(process.argv.slice(2));
const store = await RedisMeetingStore.open(redisUrl);
const amphi = await startAmphi(config, { store });
amphi.logger.info({ url: amphi.url, redisUrl }, 'Amphi is listening, meetings in Redis');

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  amphi.close().then(
    () => process.exit(0),
    (error: unknown) => {
      amphi.logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
