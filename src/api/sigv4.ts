import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { forbidden, invalidSignature, unauthorized } from '../meetings/errors.ts';
import { MEDIA_REGIONS } from '../meetings/regions.ts';
import type { Clock } from '../util/clock.ts';

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignedRequest {
  method: string;
  /** The request target exactly as received: percent-encoded path and raw query. */
  rawUrl: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** SigV4's signing name for Chime SDK Meetings, not "chime-sdk-meetings". */
export const SIGNING_SERVICE = 'chime';
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** node:crypto behind the hash interface the smithy signer takes. */
class NodeSha256 {
  private hash: Hash | Hmac;
  private readonly secret: string | Uint8Array | undefined;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.secret = secret === undefined || typeof secret === 'string' ? secret : toBytes(secret);
    this.hash = this.fresh();
  }
  private fresh() {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', this.secret);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? data : toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Verifies AWS Signature Version 4 the way the service does: recompute the signature from
 * the request as received and compare. The canonical request uses the raw, still-encoded
 * path (the signer encodes it once more, the rule for services other than S3) and the
 * query decoded by hand, because URLSearchParams would turn '+' into a space.
 *
 * Nothing a client chooses grows memory here: the credential scope is checked against known
 * values before anything else, and the only cache holds one signer per configured key (the
 * scope's region is passed to each signing, not baked into a signer).
 */
export class SigV4Verifier {
  private readonly signers: Map<string, SignatureV4>;
  private readonly regions: ReadonlySet<string>;

  constructor(
    keys: readonly AccessKey[],
    private readonly clock: Clock,
    private readonly maxSkewMs = 5 * 60_000,
    /** Regions a credential scope may name; every media region, which includes the service's API regions. */
    signingRegions: readonly string[] = MEDIA_REGIONS,
  ) {
    this.regions = new Set(signingRegions);
    this.signers = new Map(keys.map((key) => [key.accessKeyId, signerFor(key)]));
  }

  /** How many signers are held: one per configured key, whatever clients send. */
  get signerCount(): number {
    return this.signers.size;
  }

  /** Resolves to the caller's access key id, or throws Unauthorized/Forbidden/InvalidSignature. */
  async verify(request: SignedRequest): Promise<string> {
    const authorization = single(request.headers.authorization);
    if (!authorization) throw unauthorized('Missing Authentication Token: the request must be signed with AWS Signature Version 4');
    const parsed = parseAuthorization(authorization);
    const { accessKeyId, scopeDate, region } = this.checkScope(parsed.credential);
    const signer = this.signers.get(accessKeyId);
    if (signer === undefined) throw unauthorized('The security token included in the request is invalid');

    const amzDate = single(request.headers['x-amz-date']);
    const signingDate = amzDate ? parseAmzDate(amzDate) : undefined;
    if (!amzDate || !signingDate) throw forbidden('The request must carry a valid X-Amz-Date header (YYYYMMDDTHHMMSSZ)');
    if (scopeDate !== amzDate.slice(0, 8)) {
      throw invalidSignature(`Date in Credential scope does not match YYYYMMDD from X-Amz-Date: '${scopeDate}' != '${amzDate.slice(0, 8)}'`);
    }
    const now = this.clock.now();
    if (Math.abs(now - signingDate.getTime()) > this.maxSkewMs) {
      throw forbidden(
        `Signature expired: ${amzDate} is outside the ${this.maxSkewMs / 60_000} minute window around the server time ${formatAmzDate(new Date(now))}`,
      );
    }

    const signedHeaders = parsed.signedHeaders.split(';');
    if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
      throw forbidden('SignedHeaders must include host and x-amz-date');
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) {
      const value = request.headers[name];
      if (value === undefined) throw forbidden(`Signed header ${name} is missing from the request`);
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }

    // The signer trusts x-amz-content-sha256 when present, so the body must be checked against it here.
    const bodyHash = request.body.length === 0 ? EMPTY_SHA256 : createHash('sha256').update(request.body).digest('hex');
    const declaredHash = single(request.headers['x-amz-content-sha256']);
    if (declaredHash !== undefined && declaredHash !== bodyHash) {
      throw forbidden("The provided 'x-amz-content-sha256' header does not match what was computed");
    }

    const queryStart = request.rawUrl.indexOf('?');
    const path = queryStart < 0 ? request.rawUrl : request.rawUrl.slice(0, queryStart);
    const query = queryStart < 0 ? {} : parseQuery(request.rawUrl.slice(queryStart + 1));
    const signed = await signer.sign(
      {
        method: request.method,
        protocol: 'http:',
        hostname: headers.host ?? '',
        path,
        query,
        headers,
        body: request.body.length === 0 ? undefined : request.body,
      },
      { signingDate, signingRegion: region, signableHeaders: new Set(signedHeaders), unsignableHeaders: new Set() },
    );
    const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1] ?? '';
    if (!constantTimeEqual(expected, parsed.signature)) {
      throw forbidden('The request signature we calculated does not match the signature you provided');
    }
    return accessKeyId;
  }

  /** `<key id>/<YYYYMMDD>/<region>/chime/aws4_request`, each part checked before it is used for anything. */
  private checkScope(credential: string) {
    const parts = credential.split('/');
    const [accessKeyId, scopeDate, region, service, terminator] = parts;
    if (parts.length !== 5 || !accessKeyId || terminator !== 'aws4_request') {
      throw invalidSignature(`Credential should be <access key id>/<YYYYMMDD>/<region>/${SIGNING_SERVICE}/aws4_request, not '${echo(credential)}'`);
    }
    if (service !== SIGNING_SERVICE) {
      throw invalidSignature(`Credential should be scoped to correct service: '${SIGNING_SERVICE}', not '${echo(service ?? '')}'`);
    }
    if (!region || !this.regions.has(region)) {
      throw invalidSignature(`Credential should be scoped to a valid region, not '${echo(region ?? '')}'`);
    }
    if (!scopeDate || !/^\d{8}$/.test(scopeDate)) {
      throw invalidSignature(`Credential should be scoped to a date in YYYYMMDD form, not '${echo(scopeDate ?? '')}'`);
    }
    return { accessKeyId, scopeDate, region };
  }
}

function signerFor({ accessKeyId, secretAccessKey }: AccessKey): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId, secretAccessKey },
    // Only a default: every signing names the region of the request's credential scope.
    region: 'us-east-1',
    service: SIGNING_SERVICE,
    sha256: NodeSha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
}

/** Client text quoted back in an error, cut short so a huge value is not echoed whole. */
function echo(text: string): string {
  return text.length <= 64 ? text : `${text.slice(0, 64)}...`;
}

function parseAuthorization(header: string) {
  const match = /^AWS4-HMAC-SHA256\s+(.+)$/.exec(header);
  const fields = new Map<string, string>();
  for (const part of match?.[1]?.split(',') ?? []) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) {
    throw unauthorized('Authorization header requires Credential, SignedHeaders and Signature (AWS4-HMAC-SHA256)');
  }
  return { credential, signedHeaders: signedHeaders.toLowerCase(), signature };
}

/** Decodes a raw query string; a '+' stays a '+'. Throws BadRequest-free: bad escapes are kept verbatim. */
export function parseQuery(raw: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = safeDecode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : safeDecode(pair.slice(eq + 1));
    const previous = query[key];
    if (previous === undefined) query[key] = value;
    else query[key] = Array.isArray(previous) ? [...previous, value] : [previous, value];
  }
  return query;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function formatAmzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
