import { connect, type Socket } from 'node:net';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { TEST_KEY } from './helpers.ts';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A signed API call kept in flight on its own connection: its headers are sent (with `Expect: 100-continue`, so
 * the server's "100 Continue" says it has taken the call in), then half its body; the rest only when `finish()` is
 * called. The answer is read until the server closes the connection; a reset fails it.
 */
export class SlowRequest {
  private received = '';
  private failure: Error | undefined;
  private ended = false;
  private readonly changes = new Set<() => void>();

  private constructor(
    private readonly socket: Socket,
    private readonly rest: Buffer,
  ) {
    socket.on('data', (chunk: Buffer) => this.update(() => (this.received += chunk.toString())));
    socket.on('error', (error) => this.update(() => (this.failure = error)));
    socket.on('close', () => this.update(() => (this.ended = true)));
  }

  static async start(baseUrl: string, method: string, path: string, body: string): Promise<SlowRequest> {
    const url = new URL(baseUrl);
    const signer = new SignatureV4({ credentials: TEST_KEY, region: 'us-east-1', service: 'chime', sha256: Sha256, uriEscapePath: true });
    const signed = await signer.sign({
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path,
      query: {},
      headers: { host: url.host, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const socket = connect(Number(url.port), url.hostname);
    const bytes = Buffer.from(body);
    const half = Math.floor(bytes.length / 2);
    const request = new SlowRequest(socket, bytes.subarray(half));
    const head = Object.entries({ ...signed.headers, expect: '100-continue' }).map(([name, value]) => `${name}: ${value}\r\n`);
    socket.write(`${method} ${path} HTTP/1.1\r\n${head.join('')}\r\n`);
    await request.until(() => /^HTTP\/1\.1 100 /.test(request.received), 'a 100 Continue');
    socket.write(bytes.subarray(0, half));
    return request;
  }

  /** Sends the rest of the body and waits for the answer and the end of the connection. */
  async finish(): Promise<HttpAnswer> {
    this.socket.write(this.rest);
    await this.until(() => this.ended, 'the answer and the end of the connection');
    return parseAnswer(this.received.replace(/^HTTP\/1\.1 100 [^\r]*\r\n\r\n/, ''));
  }

  /** Resolves once the server closed the connection (not failing on a reset). */
  async closed(): Promise<void> {
    await new Promise<void>((resolve) => (this.ended ? resolve() : this.socket.once('close', () => resolve())));
  }

  private update(change: () => void): void {
    change();
    for (const check of this.changes) check();
  }

  private until(condition: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure) reject(new Error(`the connection failed while waiting for ${what}: ${this.failure.message}`));
        else if (condition()) resolve();
        else if (this.ended) reject(new Error(`the connection closed before ${what}; received: ${JSON.stringify(this.received)}`));
        else return;
        this.changes.delete(check);
      };
      this.changes.add(check);
      check();
    });
  }
}

function parseAnswer(text: string): HttpAnswer {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) throw new Error(`not an HTTP answer: ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1]);
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status, headers, body: text.slice(split + 4) };
}
