import http from 'node:http';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { TEST_KEY } from './helpers.ts';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export interface RawRequest {
  method: string;
  /** Raw, already percent-encoded path. */
  path: string;
  query?: Record<string, string>;
  body?: string | Buffer;
  headers?: Record<string, string>;
  key?: { accessKeyId: string; secretAccessKey: string };
  signingDate?: Date;
  region?: string;
  service?: string;
  /** Unsigned when false. */
  sign?: boolean;
  /** Changes the request after signing (tampering). */
  afterSigning?: (request: { path: string; headers: Record<string, string>; body: string | Buffer }) => void;
}

/** Sends a request signed by the same smithy signer the AWS SDK uses, with full control over every byte. */
export async function rawRequest(baseUrl: string, request: RawRequest): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const body = request.body ?? '';
  const headers: Record<string, string> = { host: url.host, ...request.headers };
  if (body.length > 0 && !headers['content-type']) headers['content-type'] = 'application/json';
  let path = request.path;
  const queryString = Object.entries(request.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  if (request.sign !== false) {
    const signer = new SignatureV4({
      credentials: request.key ?? TEST_KEY,
      region: request.region ?? 'us-east-1',
      service: request.service ?? 'chime',
      sha256: Sha256,
      uriEscapePath: true,
    });
    const signed = await signer.sign(
      { method: request.method, protocol: 'http:', hostname: url.hostname, port: Number(url.port), path, query: request.query ?? {}, headers, body },
      request.signingDate ? { signingDate: request.signingDate } : {},
    );
    Object.assign(headers, signed.headers);
  }
  const mutable = { path, headers, body };
  request.afterSigning?.(mutable);
  path = mutable.path;
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      { host: url.hostname, port: url.port, method: request.method, path: queryString ? `${path}?${queryString}` : path, headers: mutable.headers },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(mutable.body);
  });
}
