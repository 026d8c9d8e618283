/** SRTP packet indices and replay protection (RFC 3711 §3.3.1, §3.3.2, Appendix A). */

/**
 * RFC 3711 Appendix A: the 48-bit index of `seq` given the highest index seen so far, choosing
 * ROC-1, ROC or ROC+1, whichever lands closest. Negative when the packet predates index 0.
 */
export function estimateRtpIndex(highestIndex: number, seq: number): number {
  const roc = Math.floor(highestIndex / 0x10000);
  const highestSeq = highestIndex % 0x10000;
  let guessedRoc = roc;
  if (highestSeq < 0x8000) {
    if (seq - highestSeq > 0x8000) guessedRoc = roc - 1;
  } else if (highestSeq - 0x8000 > seq) {
    guessedRoc = roc + 1;
  }
  return guessedRoc * 0x10000 + seq;
}

export const REPLAY_WINDOW_SIZE = 64;

/** The highest index received and a 64-bit bitmap of the ones just below it (bit n: highest - n). */
export class ReplayWindow {
  private newest: number;
  // The bitmap as two 32-bit halves, to stay in small integers.
  private recentBits = 1;
  private olderBits = 0;

  constructor(firstIndex: number) {
    this.newest = firstIndex;
  }

  get highest(): number {
    return this.newest;
  }

  accepts(index: number): boolean {
    const age = this.newest - index;
    if (age < 0) return true;
    if (age >= REPLAY_WINDOW_SIZE) return false;
    const bit = age < 32 ? (this.recentBits >>> age) & 1 : (this.olderBits >>> (age - 32)) & 1;
    return bit === 0;
  }

  record(index: number): void {
    const age = this.newest - index;
    if (age < 0) {
      const shift = -age;
      if (shift >= REPLAY_WINDOW_SIZE) {
        this.olderBits = 0;
        this.recentBits = 0;
      } else if (shift >= 32) {
        this.olderBits = this.recentBits << (shift - 32);
        this.recentBits = 0;
      } else {
        this.olderBits = (this.olderBits << shift) | (this.recentBits >>> (32 - shift));
        this.recentBits <<= shift;
      }
      this.recentBits |= 1;
      this.newest = index;
    } else if (age < 32) {
      this.recentBits |= 1 << age;
    } else if (age < REPLAY_WINDOW_SIZE) {
      this.olderBits |= 1 << (age - 32);
    }
  }
}
