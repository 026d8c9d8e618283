import { loadConfig, settingsHelp } from '../config.ts';
import { startAmphi } from '../app.ts';

const USAGE = `Usage: amphi serve [options]

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

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === 'serve') await serve(rest);
  else if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
  else {
    process.stderr.write(`amphi: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
  }
} catch (error) {
  process.stderr.write(`amphi: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
