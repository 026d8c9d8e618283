import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { CloseCode } from './frames.ts';

/** The two legs of a relayed signaling connection: the client's, and the one to the hosting node. */
export type RelayLeg = 'client' | 'upstream';

export interface RelayLinkEvents {
  /** Both legs are closed; nothing of the link is left. */
  closed: [];
  /** `leg` stopped being read because the other leg's send buffer went over the high-water mark. */
  paused: [leg: RelayLeg];
}

/**
 * Sent to the surviving leg when the other one was lost without a close frame (1006, which
 * can't be sent). 4500 rather than 1011: the SDK reconnects on 1006 and 4500-4599 only; 1011
 * would fail a joining client for good (SignalingBadRequest) and leave a joined one unaware.
 */
export const LOST_LEG_CLOSE_CODE = CloseCode.InternalError;

/**
 * Two open WebSockets spliced together: each message goes to the other leg as it came (same
 * bytes, same binary/text kind), and a close on one leg closes the other with the same code
 * and reason. A leg is no longer read while the other leg's send buffer is over the high-water
 * mark, so a slow side slows its sender down through TCP instead of growing this process.
 */
export class RelayLink extends EventEmitter<RelayLinkEvents> {
  private ending = false;
  private openLegs = 2;
  /** Legs pinged by keepAlive() whose pong hasn't come back yet. */
  private readonly awaitingPong = new Set<WebSocket>();

  constructor(
    private readonly client: WebSocket,
    private readonly upstream: WebSocket,
    private readonly highWaterBytes: number,
    private readonly log: Logger,
  ) {
    super();
    this.splice(client, upstream, 'client');
    this.splice(upstream, client, 'upstream');
  }

  /**
   * One keep-alive round: a leg that hasn't answered the previous round's ping is dropped (its
   * peer is gone without a FIN), the others are pinged. A paused leg is skipped: its pong sits
   * unread behind the pause.
   */
  keepAlive(): void {
    for (const leg of [this.client, this.upstream]) {
      if (leg.readyState !== leg.OPEN || leg.isPaused) continue;
      if (this.awaitingPong.has(leg)) {
        this.log.info({ leg: this.nameOf(leg) }, 'relay leg stopped answering pings; dropping it');
        leg.terminate();
        continue;
      }
      this.awaitingPong.add(leg);
      leg.ping();
    }
  }

  /** Ends both legs: the client with a code its SDK answers by reconnecting, the hosting node as going away. */
  close(reason: string): void {
    if (this.ending) return;
    this.ending = true;
    this.resumeAll();
    if (this.client.readyState === this.client.OPEN) this.client.close(LOST_LEG_CLOSE_CODE, reason);
    if (this.upstream.readyState === this.upstream.OPEN) this.upstream.close(1001, reason);
  }

  private splice(from: WebSocket, to: WebSocket, fromLeg: RelayLeg): void {
    from.on('message', (data, isBinary) => {
      this.awaitingPong.delete(from);
      // binaryType is 'nodebuffer', so every message is one Buffer.
      to.send(data as Buffer, { binary: isBinary }, () => this.resumeIfDrained(from, to));
      if (!from.isPaused && to.bufferedAmount > this.highWaterBytes) {
        from.pause();
        this.emit('paused', fromLeg);
      }
    });
    from.on('pong', () => this.awaitingPong.delete(from));
    from.on('error', (error) => this.log.debug({ err: error, leg: fromLeg }, 'relay leg error'));
    from.on('close', (code, reason) => this.onLegClosed(fromLeg, to, code, reason));
  }

  /** Called as each forwarded message leaves for the kernel: reading resumes once the backlog is half gone. */
  private resumeIfDrained(from: WebSocket, to: WebSocket): void {
    if (!from.isPaused || to.bufferedAmount > this.highWaterBytes / 2) return;
    // Whatever the paused leg said meanwhile (a pong included) is read now: give it a fresh round.
    this.awaitingPong.delete(from);
    from.resume();
  }

  private onLegClosed(leg: RelayLeg, other: WebSocket, code: number, reason: Buffer): void {
    this.openLegs -= 1;
    this.awaitingPong.clear();
    if (!this.ending) {
      this.ending = true;
      this.log.debug({ leg, code, reason: reason.toString() }, 'relay leg closed; closing the other');
      this.resumeAll();
      closeLike(other, code, reason, leg);
    }
    if (this.openLegs === 0) this.emit('closed');
  }

  /** A paused leg would not read its peer's answer to our close frame. */
  private resumeAll(): void {
    for (const leg of [this.client, this.upstream]) if (leg.isPaused) leg.resume();
  }

  private nameOf(leg: WebSocket): RelayLeg {
    return leg === this.client ? 'client' : 'upstream';
  }
}

/** Closes `leg` as its partner was closed, translating the codes that can't go on the wire. */
function closeLike(leg: WebSocket, code: number, reason: Buffer, lostLeg: RelayLeg): void {
  if (leg.readyState !== leg.OPEN) return;
  // 1005: the partner's close frame had no code; send one without a code too.
  if (code === 1005) return leg.close();
  if (code === 1006) return leg.close(LOST_LEG_CLOSE_CODE, `${lostLeg} connection lost`);
  try {
    leg.close(code, reason);
  } catch {
    // A code ws won't send (it only delivers valid ones, but never let a close throw out of here).
    leg.close(LOST_LEG_CLOSE_CODE, `${lostLeg} closed with ${code}`);
  }
}
