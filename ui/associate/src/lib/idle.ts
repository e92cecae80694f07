// When the tablet locks itself, and when it tells the Rust side the
// associate is still there. Pure: every answer is for the time it is given.

/** Keep-alives go at most this often while the associate is active. */
export const PING_EVERY_MS = 20_000;

export class IdleLock {
  /** Locks after this long without activity. */
  readonly lockAfterMs: number;
  /**
   * Keep-alive spacing: `PING_EVERY_MS`, or half the lock delay when that is
   * shorter (else the Rust side's session, kept open only by commands, would
   * lock before the tablet does).
   */
  readonly pingEveryMs: number;
  private lastActivityMs: number;
  private lastPingMs: number;
  private activeSincePing = false;

  /** `startMs`: when the associate signed in (that counts as activity and as a ping). */
  constructor(idleLockSecs: number, startMs: number, pingEveryMs = PING_EVERY_MS) {
    this.lockAfterMs = Math.max(1, idleLockSecs) * 1000;
    this.pingEveryMs = Math.min(pingEveryMs, this.lockAfterMs / 2);
    this.lastActivityMs = startMs;
    this.lastPingMs = startMs;
  }

  /**
   * The associate touched or typed at `nowMs`. Activity that comes once the
   * lock delay has passed (the tablet slept, no timer ran) does not reopen
   * the session: the answer is then false and `shouldLock` stays true.
   */
  activity(nowMs: number): boolean {
    if (this.shouldLock(nowMs)) return false;
    this.lastActivityMs = Math.max(this.lastActivityMs, nowMs);
    this.activeSincePing = true;
    return true;
  }

  /** Idle for the lock delay or longer. */
  shouldLock(nowMs: number): boolean {
    return nowMs - this.lastActivityMs >= this.lockAfterMs;
  }

  /**
   * Whether to send a keep-alive now: there was activity since the last one,
   * which was at least `pingEveryMs` ago, and the tablet is not due to lock.
   * A true answer counts as the ping being sent.
   */
  shouldPing(nowMs: number): boolean {
    if (!this.activeSincePing || this.shouldLock(nowMs)) return false;
    if (nowMs - this.lastPingMs < this.pingEveryMs) return false;
    this.lastPingMs = nowMs;
    this.activeSincePing = false;
    return true;
  }
}

/** What the sign-in screen says after an idle lock. */
export function lockMessage(idleLockSecs: number): string {
  if (idleLockSecs < 120) return `Locked after ${idleLockSecs} s without use`;
  const minutes = idleLockSecs / 60;
  const shown = Number.isInteger(minutes) ? String(minutes) : minutes.toFixed(1);
  return `Locked after ${shown} min without use`;
}
