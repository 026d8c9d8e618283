import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { parseStun, STUN_HEADER_LENGTH, STUN_MAGIC_COOKIE, StunAttribute, verifyMessageIntegrity, type StunMessage } from '../../src/media/protocol/stun.ts';

/**
 * Just enough of a TURN client (RFC 8656) to ask a TURN server for an allocation with long-term credentials:
 * enough to prove that the credentials Amphi signs are the ones coturn accepts, from Node, over UDP, TCP or TLS.
 */

export interface TurnServerAddress {
  transport: 'udp' | 'tcp' | 'tls';
  host: string;
  port: number;
}

export interface AllocateResult {
  /** 200 for an allocation, else the STUN error code (401: credentials refused). */
  status: number;
  reason?: string;
  relayed?: { address: string; port: number };
  /** The allocation's lifetime the server granted, in seconds. */
  lifetimeSeconds?: number;
  /** Whether the success response's MESSAGE-INTEGRITY verified with the long-term key (the server knew the password). */
  integrityVerified?: boolean;
}

const ALLOCATE_REQUEST = 0x0003;
const ALLOCATE_SUCCESS = 0x0103;
const REFRESH_REQUEST = 0x0004;
const REFRESH_SUCCESS = 0x0104;
const Attr = { Lifetime: 0x000d, Realm: 0x0014, Nonce: 0x0015, XorRelayedAddress: 0x0016, RequestedTransport: 0x0019 } as const;
const UDP_PROTOCOL = 17;

function attribute(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc(4 + ((value.length + 3) & ~3));
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

/** A request of `type`; with a key, MESSAGE-INTEGRITY over everything before it. */
function stunRequest(type: number, attributes: Buffer[], key?: Buffer): Buffer {
  const transactionId = randomBytes(12);
  const body = Buffer.concat(attributes);
  const header = Buffer.alloc(STUN_HEADER_LENGTH);
  header.writeUInt16BE(type, 0);
  header.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  if (!key) {
    header.writeUInt16BE(body.length, 2);
    return Buffer.concat([header, body]);
  }
  header.writeUInt16BE(body.length + 24, 2);
  const integrity = createHmac('sha1', key).update(Buffer.concat([header, body])).digest();
  return Buffer.concat([header, body, attribute(StunAttribute.MessageIntegrity, integrity)]);
}

/** The raw value of an attribute the project's parser does not decode (REALM, NONCE, XOR-RELAYED-ADDRESS). */
function rawAttribute(packet: Buffer, type: number): Buffer | undefined {
  const end = STUN_HEADER_LENGTH + packet.readUInt16BE(2);
  for (let offset = STUN_HEADER_LENGTH; offset + 4 <= end; ) {
    const length = packet.readUInt16BE(offset + 2);
    if (packet.readUInt16BE(offset) === type) return packet.subarray(offset + 4, offset + 4 + length);
    offset += 4 + ((length + 3) & ~3);
  }
  return undefined;
}

function xorIpv4(value: Buffer): { address: string; port: number } | undefined {
  if (value.length !== 8 || value[1] !== 0x01) return undefined;
  const port = value.readUInt16BE(2) ^ (STUN_MAGIC_COOKIE >>> 16);
  const raw = (value.readUInt32BE(4) ^ STUN_MAGIC_COOKIE) >>> 0;
  return { address: `${raw >>> 24}.${(raw >>> 16) & 0xff}.${(raw >>> 8) & 0xff}.${raw & 0xff}`, port };
}

/** One request, one answer (matched by transaction id), on a connection of its own. */
interface StunExchange {
  ask(request: Buffer): Promise<StunMessage>;
  close(): void;
}

function openExchange(server: TurnServerAddress, timeoutMs: number): Promise<StunExchange> {
  const waiting = new Map<string, (message: StunMessage) => void>();
  const deliver = (packet: Buffer) => {
    const message = parseStun(packet);
    if (message) waiting.get(message.transactionId.toString('hex'))?.(message);
  };
  const ask = (send: (request: Buffer) => void) => (request: Buffer) =>
    new Promise<StunMessage>((resolve, reject) => {
      const id = request.subarray(8, 20).toString('hex');
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`no answer from ${server.transport}:${server.host}:${server.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, (message) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(message);
      });
      send(request);
    });

  if (server.transport === 'udp') {
    const socket = createSocket('udp4');
    socket.on('message', deliver);
    socket.on('error', () => socket.close());
    return Promise.resolve({ ask: ask((request) => socket.send(request, server.port, server.host)), close: () => socket.close() });
  }
  return new Promise((resolve, reject) => {
    const onConnect = () => resolve({ ask: ask((request) => socket.write(request)), close: () => socket.destroy() });
    const socket: Socket =
      server.transport === 'tls'
        ? connectTls({ host: server.host, port: server.port, rejectUnauthorized: false }, onConnect)
        : connectTcp({ host: server.host, port: server.port }, onConnect);
    socket.once('error', reject);
    // STUN over a stream: each message's length is in its header.
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= STUN_HEADER_LENGTH) {
        const length = STUN_HEADER_LENGTH + pending.readUInt16BE(2);
        if (pending.length < length) break;
        deliver(pending.subarray(0, length));
        pending = pending.subarray(length);
      }
    });
  });
}

/** An allocation kept open on its connection, to be refreshed with the credentials that made it. */
export interface TurnAllocation {
  result: AllocateResult;
  /** A Refresh request (RFC 8656 §7) signed as the Allocate was: 200 and the lifetime granted, or the server's error code. */
  refresh(): Promise<{ status: number; lifetimeSeconds?: number }>;
  close(): void;
}

/**
 * Asks `server` for a UDP relay. Without credentials the answer is the server's challenge (401); with them the
 * challenge is answered with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY keyed MD5(username:realm:password).
 */
export async function turnAllocate(
  server: TurnServerAddress,
  credentials: { username: string; password: string } | undefined,
  timeoutMs = 2_000,
): Promise<AllocateResult> {
  const allocation = await openAllocation(server, credentials, timeoutMs);
  allocation.close();
  return allocation.result;
}

export async function openAllocation(
  server: TurnServerAddress,
  credentials: { username: string; password: string } | undefined,
  timeoutMs = 2_000,
): Promise<TurnAllocation> {
  const exchange = await openExchange(server, timeoutMs);
  type Refresh = TurnAllocation['refresh'];
  const done = (result: AllocateResult, refresh: Refresh = () => Promise.resolve({ status: result.status })): TurnAllocation => ({
    result,
    refresh,
    close: () => exchange.close(),
  });
  try {
    const transport = attribute(Attr.RequestedTransport, Buffer.from([UDP_PROTOCOL, 0, 0, 0]));
    const challenge = await exchange.ask(stunRequest(ALLOCATE_REQUEST, [transport]));
    if (challenge.type === ALLOCATE_SUCCESS) return done({ status: 200 });
    const realm = rawAttribute(challenge.packet, Attr.Realm);
    const nonce = rawAttribute(challenge.packet, Attr.Nonce);
    if (!credentials || challenge.errorCode?.code !== 401 || !realm || !nonce) {
      return done({ status: challenge.errorCode?.code ?? 0, reason: challenge.errorCode?.reason });
    }
    const key = createHash('md5').update(`${credentials.username}:${realm.toString('utf8')}:${credentials.password}`).digest();
    const identity = [attribute(StunAttribute.Username, Buffer.from(credentials.username)), attribute(Attr.Realm, realm), attribute(Attr.Nonce, nonce)];
    const answer = await exchange.ask(stunRequest(ALLOCATE_REQUEST, [transport, ...identity], key));
    if (answer.type !== ALLOCATE_SUCCESS) return done({ status: answer.errorCode?.code ?? 0, reason: answer.errorCode?.reason });
    const relayedValue = rawAttribute(answer.packet, Attr.XorRelayedAddress);
    const lifetime = rawAttribute(answer.packet, Attr.Lifetime);
    const refresh = async () => {
      const refreshed = await exchange.ask(stunRequest(REFRESH_REQUEST, [attribute(Attr.Lifetime, Buffer.from([0, 0, 2, 88])), ...identity], key));
      if (refreshed.type !== REFRESH_SUCCESS) return { status: refreshed.errorCode?.code ?? 0 };
      const granted = rawAttribute(refreshed.packet, Attr.Lifetime);
      return { status: 200, lifetimeSeconds: granted?.length === 4 ? granted.readUInt32BE(0) : undefined };
    };
    return done(
      {
        status: 200,
        relayed: relayedValue && xorIpv4(relayedValue),
        lifetimeSeconds: lifetime?.length === 4 ? lifetime.readUInt32BE(0) : undefined,
        integrityVerified: verifyMessageIntegrity(answer, key),
      },
      refresh,
    );
  } catch (error) {
    exchange.close();
    throw error;
  }
}
