import { describe, expect, it } from "vitest";
import { IdleLock, PING_EVERY_MS, lockMessage } from "../src/lib/idle";

const T0 = 1_000_000;
const s = (secs: number) => T0 + secs * 1000;

describe("IdleLock", () => {
  it("locks after the delay without activity, counted from the last activity", () => {
    const idle = new IdleLock(60, T0);
    expect(idle.shouldLock(s(59.999))).toBe(false);
    expect(idle.shouldLock(s(60))).toBe(true);

    const used = new IdleLock(60, T0);
    expect(used.activity(s(45))).toBe(true);
    expect(used.shouldLock(s(60))).toBe(false);
    expect(used.shouldLock(s(104))).toBe(false);
    expect(used.shouldLock(s(105))).toBe(true);
  });

  it("does not reopen on activity that comes after the delay (the tablet slept)", () => {
    const idle = new IdleLock(60, T0);
    expect(idle.activity(s(61))).toBe(false);
    expect(idle.shouldLock(s(61))).toBe(true);
    expect(idle.shouldLock(s(62))).toBe(true);
  });

  it("ignores an activity time older than one already seen", () => {
    const idle = new IdleLock(60, T0);
    idle.activity(s(50));
    idle.activity(s(10));
    expect(idle.shouldLock(s(100))).toBe(false);
    expect(idle.shouldLock(s(110))).toBe(true);
  });

  it("pings at most once per 20 s, and only after activity", () => {
    const idle = new IdleLock(120, T0);
    expect(idle.pingEveryMs).toBe(PING_EVERY_MS);
    // No activity: no ping, however long.
    expect(idle.shouldPing(s(30))).toBe(false);
    // Activity 5 s in: the ping waits for 20 s after sign-in.
    idle.activity(s(5));
    expect(idle.shouldPing(s(6))).toBe(false);
    expect(idle.shouldPing(s(19.9))).toBe(false);
    expect(idle.shouldPing(s(20))).toBe(true);
    // That ping was sent: not again without new activity.
    expect(idle.shouldPing(s(21))).toBe(false);
    expect(idle.shouldPing(s(60))).toBe(false);
    // Steady activity: one ping per 20 s.
    let pings = 0;
    for (let t = 61; t <= 120; t += 1) {
      idle.activity(s(t));
      if (idle.shouldPing(s(t))) pings += 1;
    }
    expect(pings).toBe(3); // at 61, 81, 101
  });

  it("never pings once the tablet is due to lock", () => {
    const idle = new IdleLock(60, T0);
    idle.activity(s(10));
    expect(idle.shouldPing(s(70))).toBe(false);
    expect(idle.shouldLock(s(70))).toBe(true);
  });

  it("pings at half the lock delay when that is under 20 s", () => {
    const idle = new IdleLock(10, T0);
    expect(idle.pingEveryMs).toBe(5_000);
    idle.activity(s(1));
    expect(idle.shouldPing(s(4.9))).toBe(false);
    expect(idle.shouldPing(s(5))).toBe(true);
  });
});

describe("lockMessage", () => {
  it("words the delay in seconds, or minutes from 120 s", () => {
    expect(lockMessage(60)).toBe("Locked after 60 s without use");
    expect(lockMessage(119)).toBe("Locked after 119 s without use");
    expect(lockMessage(120)).toBe("Locked after 2 min without use");
    expect(lockMessage(300)).toBe("Locked after 5 min without use");
    expect(lockMessage(150)).toBe("Locked after 2.5 min without use");
  });
});
