import type { ISdkDataMessagePayload } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';

const DATA_TOPIC = /^[a-zA-Z0-9_-]{1,36}$/;
const DATA_MAX_BYTES = 2048;
const DATA_MAX_LIFETIME_MS = 5 * 60_000;
const DATA_BUFFERED_MAX = 1024;
/** Per connection: sustained data messages per second, and burst. */
const DATA_RATE = 10;
export const DATA_BURST = 20;

/** One connection's allowance of data messages: a token bucket. */
export class DataAllowance {
  private tokens = DATA_BURST;
  constructor(private refilledAt: number) {}

  /** Takes one message's token if there is one. */
  take(now: number): boolean {
    this.tokens = Math.min(DATA_BURST, this.tokens + ((now - this.refilledAt) / 1000) * DATA_RATE);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface DataSender {
  attendeeId: string;
  externalUserId: string;
}

/** What became of a client's DATA_MESSAGE: the messages to deliver, and those that go back refused. */
export interface PostedData {
  delivered: ISdkDataMessagePayload[];
  refused: ISdkDataMessagePayload[];
}

/**
 * A meeting's data messages: each one checked (topic, size, the sender's allowance) and stamped with its sender
 * and ingest time; those with a lifetime are kept for clients that join later.
 */
export class DataMessageBoard {
  private readonly buffered: { payload: ISdkDataMessagePayload; expiresAt: number }[] = [];

  post(messages: ISdkDataMessagePayload[], sender: DataSender, allowance: DataAllowance, now: number): PostedData {
    const delivered: ISdkDataMessagePayload[] = [];
    const refused: ISdkDataMessagePayload[] = [];
    for (const message of messages.slice(0, DATA_BURST)) {
      const stamped = stamp(message, sender);
      if (!DATA_TOPIC.test(stamped.topic) || stamped.data.length > DATA_MAX_BYTES || !allowance.take(now)) {
        refused.push(stamped);
        continue;
      }
      const payload = { ...stamped, ingestTimeNs: epochNanos(now) };
      delivered.push(payload);
      if (stamped.lifetimeMs > 0) {
        if (this.buffered.length >= DATA_BUFFERED_MAX) this.buffered.shift();
        this.buffered.push({ payload, expiresAt: now + stamped.lifetimeMs });
      }
    }
    return { delivered, refused };
  }

  /** The messages still alive, for a client that joins now. */
  live(now: number): ISdkDataMessagePayload[] {
    return this.buffered.filter((entry) => entry.expiresAt > now).map((entry) => entry.payload);
  }
}

/** Messages that may not be sent at all, as they go back to their sender. */
export function refuseAll(messages: ISdkDataMessagePayload[], sender: DataSender): ISdkDataMessagePayload[] {
  return messages.slice(0, DATA_BURST).map((message) => stamp(message, sender));
}

/** A message with its sender, its lifetime within the limit, and ingest time 0 (refused, until it is delivered). */
function stamp(message: ISdkDataMessagePayload, sender: DataSender) {
  return {
    topic: message.topic ?? '',
    data: message.data ?? new Uint8Array(),
    lifetimeMs: Math.max(0, Math.min(Number(message.lifetimeMs ?? 0), DATA_MAX_LIFETIME_MS)),
    senderAttendeeId: sender.attendeeId,
    senderExternalUserId: sender.externalUserId,
    // The client reports a message that comes back with ingest time 0 as throttled or rejected.
    ingestTimeNs: 0 as ISdkDataMessagePayload['ingestTimeNs'],
  };
}

/** The bits of a protobuf int64, which the SDK's encoder (built without long.js) writes exactly. */
type Int64Bits = Extract<NonNullable<ISdkDataMessagePayload['ingestTimeNs']>, object>;

/** Milliseconds since the epoch in nanoseconds, exact: ms × 10⁶ is past a double's integers. */
function epochNanos(ms: number): Int64Bits {
  const nanos = BigInt(ms) * 1_000_000n;
  const bits = { low: Number(BigInt.asIntN(32, nanos)), high: Number(BigInt.asIntN(32, nanos >> 32n)), unsigned: false };
  return bits as unknown as Int64Bits;
}
