/**
 * The gaps in one incoming RTP stream, and when to ask its sender for them again (generic NACK,
 * RFC 4585 §6.2.1). A gap is asked for once it has been missing a little while (a packet that
 * merely arrives out of order is not asked for), then again every RETRY_MS until it arrives, it
 * was asked MAX_ASKS times, or it is too old to matter (receivers have asked for a key frame by
 * then). Everything is driven by arriving packets: no timers.
 */

/** A gap younger than this may be reordering, not loss. */
const REORDER_HOLD_MS = 20;
/** Asks again after about a round trip of a distant client. */
const RETRY_MS = 120;
const MAX_ASKS = 4;
const GIVE_UP_MS = 1_000;
/** A jump larger than this is a restart or a long outage, for a key frame to repair, not NACKs. */
const MAX_GAP = 256;
/** Gaps are forgotten only when asked for; while nobody watches none are, so the oldest make room. */
const MAX_TRACKED = 512;

interface Gap {
  since: number;
  asks: number;
  lastAskedAt: number;
}

export class MissingPackets {
  private highest = -1;
  /** By sequence number, in the order they went missing (ascending, modulo wrap-around). */
  private readonly gaps = new Map<number, Gap>();

  /** Notes an arrival; true if it filled a gap (a late or a repaired packet). */
  received(seq: number, now: number): boolean {
    if (this.highest < 0) {
      this.highest = seq;
      return false;
    }
    const ahead = (seq - this.highest) & 0xffff;
    if (ahead === 0) return false;
    if (ahead >= 0x8000) return this.gaps.delete(seq);
    if (ahead > MAX_GAP) this.gaps.clear();
    else {
      for (let missing = (this.highest + 1) & 0xffff; missing !== seq; missing = (missing + 1) & 0xffff) {
        this.gaps.set(missing, { since: now, asks: 0, lastAskedAt: -Infinity });
      }
    }
    this.highest = seq;
    if (this.gaps.size > MAX_TRACKED) {
      for (const oldest of this.gaps.keys()) {
        if (this.gaps.size <= MAX_TRACKED) break;
        this.gaps.delete(oldest);
      }
    }
    return false;
  }

  /** The sequence numbers to ask for now, ascending (counted as asked); forgets gaps past hope. */
  due(now: number): number[] {
    if (this.gaps.size === 0) return [];
    const ask: number[] = [];
    for (const [seq, gap] of this.gaps) {
      if (gap.asks >= MAX_ASKS || now - gap.since > GIVE_UP_MS) {
        this.gaps.delete(seq);
      } else if (now - gap.since >= REORDER_HOLD_MS && now - gap.lastAskedAt >= RETRY_MS) {
        gap.asks++;
        gap.lastAskedAt = now;
        ask.push(seq);
      }
    }
    return ask;
  }

  /** Gaps being tracked now. */
  get size(): number {
    return this.gaps.size;
  }
}
