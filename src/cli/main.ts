import { readFileSync } from 'node:fs';
import { loadConfig, settingsHelp, type AmphiConfig } from '../config.ts';
import { startAmphi, type Amphi } from '../app.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const USAGE = `Usage: amphi serve [options]
       amphi --version

Runs an Amphi node: the Chime SDK Meetings API and signaling on one port.
Every option can also be given as the environment variable beside it.

${settingsHelp()}
`;

async function serve(argv: string[]): Promise<void> {
  const config = loadConfig(argv);
  const amphi = await startAmphi(config);
  const { logger } = amphi;
  logger.info({ url: amphi.url, publicUrl: amphi.publicUrl, dataDir: config.dataDir }, 'Amphi is listening');
  if (amphi.generatedKeys) {
    const key = amphi.accessKeys[0]!;
    process.stdout.write(firstRunHelp(amphi, config));
    // Printed on purpose: without configured keys this development pair is the only way in.
    logger.warn(
      { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      'using the development key pair kept in the data directory; set AMPHI_ACCESS_KEY_ID and AMPHI_SECRET_ACCESS_KEY in production',
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    amphi.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** What a newcomer needs to try it, in plain words beside the JSON logs: the endpoint, the keys, a first call. */
function firstRunHelp(amphi: Amphi, config: AmphiConfig): string {
  const key = amphi.accessKeys[0]!;
  const endpoint = amphi.publicUrl;
  return [
    '',
    `  Amphi ${VERSION} is listening on ${endpoint}${amphi.listenAddress === '127.0.0.1' ? ' (this machine only: --host 0.0.0.0 opens it)' : ''}`,
    '',
    `  Development keys (generated, kept in ${config.dataDir}/dev-credentials.json):`,
    `    export AWS_ACCESS_KEY_ID=${key.accessKeyId} AWS_SECRET_ACCESS_KEY=${key.secretAccessKey} AWS_REGION=us-east-1`,
    '',
    '  Then, with the AWS CLI (or any AWS SDK pointed at the same endpoint):',
    `    aws chime-sdk-meetings create-meeting --endpoint-url ${endpoint} \\`,
    '      --client-request-token first-meeting --media-region us-east-1 --external-meeting-id first-meeting',
    '',
    '  A meeting nobody joins is deleted after 5 minutes, as in the real service.',
    '',
    '',
  ].join('\n');
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'serve') await serve(rest);
  else if (command === '--version' || command === '-v' || command === 'version') process.stdout.write(`amphi ${VERSION}\n`);
  else if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
  else {
    process.stderr.write(`amphi: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
  }
} catch (error) {
  process.stderr.write(`amphi: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
