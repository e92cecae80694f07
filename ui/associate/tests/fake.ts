// A fake Rust side for the app tests: the commands the app may call, with
// the argument shapes the DTOs fix, a little state (who is signed in, the
// client's profile, the outbox count) and the refusals the core sends.
import { mockIPC } from "@tauri-apps/api/mocks";
import type {
  ApiError,
  Client360,
  HeldCoupon,
  LockedStaff,
  MemberHit,
  Offer,
  Preference,
  SignedIn,
  StoreView,
  SyncStatus,
} from "../src/bindings";

export const hit: MemberHit = {
  memberId: 2296,
  displayName: "Oliver Martin",
  cardNumber: "2947003289668",
  phone: "+1 614-555-0142",
  email: "oliver.martin.2296@example.com",
};

export const ALEX = { staffId: 1001, pin: "2468", displayName: "Alex Moreau", role: "associate" };
export const SAM = { staffId: 2001, pin: "1357", displayName: "Sam Lee", role: "manager" };

export const OFFER: Offer = {
  couponId: 31,
  description: "$2 off oat milk",
  pRedeem: 0.42,
  expectedValueCents: 84,
  reason: "Buys oat milk most weeks",
};

export interface Call {
  cmd: string;
  args: unknown;
}

export interface FakeOptions {
  /** Who is signed in when the app starts (`whoami`). */
  signedIn?: SignedIn | null;
  idleLockSecs?: number;
  /** `client_offers` answers `no_model`. */
  noModel?: boolean;
}

export interface Fake {
  calls: Call[];
  /** The calls of one command, their arguments. */
  argsOf(cmd: string): unknown[];
  /** The session locks itself on the Rust side (the next command is `signed_out`). */
  expire(): void;
  state: {
    signedIn: SignedIn | null;
    pending: number;
    preferences: Preference[];
    notes: { author: string; body: string; createdAt: string }[];
    personalization: boolean;
    marketing: boolean;
    erasureRequestedAt: string | null;
    held: HeldCoupon[];
    issued: number[];
    lockedOut: LockedStaff[];
  };
}

const SIGNED_OUT: ApiError = { code: "signed_out", message: "Sign in first" };
const LOCKED_SELF: ApiError = {
  code: "signed_out",
  message: "The tablet locked itself after a while unused: sign in again",
};

export function signedIn(who: typeof ALEX, idleLockSecs = 120): SignedIn {
  return { staffId: who.staffId, displayName: who.displayName, role: who.role, idleLockSecs };
}

/** Installs the fake with mockIPC. */
export function installFake(options: FakeOptions = {}): Fake {
  const idleLockSecs = options.idleLockSecs ?? 120;
  let expired = false;
  const fake: Fake = {
    calls: [],
    argsOf: (cmd) => fake.calls.filter((c) => c.cmd === cmd).map((c) => c.args),
    expire: () => {
      expired = true;
    },
    state: {
      signedIn: options.signedIn ?? null,
      pending: 0,
      preferences: [{ kind: "dietary", value: "vegetarian" }],
      notes: [],
      personalization: true,
      marketing: false,
      erasureRequestedAt: null,
      held: [],
      issued: [],
      lockedOut: [
        { staffId: 1003, displayName: "Jo Tran", failures: 5, lockedUntil: "2017-10-20 12:15:00" },
      ],
    },
  };
  const s = fake.state;

  function guard(): SignedIn {
    if (expired) {
      expired = false;
      s.signedIn = null;
      throw LOCKED_SELF;
    }
    if (!s.signedIn) throw SIGNED_OUT;
    return s.signedIn;
  }

  function client(): Client360 {
    return {
      profile: {
        memberId: hit.memberId,
        displayName: hit.displayName,
        phone: hit.phone,
        email: hit.email,
        tier: "gold",
        homeStore: "Store 368",
        personalization: s.personalization,
        marketing: s.marketing,
        enrolledOn: "2015-03-02",
        cards: [hit.cardNumber!],
        preferences: s.preferences.map((p) => ({ ...p })),
        notes: s.notes.map((n) => ({ ...n })),
      },
      history: [
        {
          basketId: 1,
          store: "Store 368",
          purchasedAt: "2017-10-19 10:00:00",
          totalCents: 1234,
          lines: [{ productId: 8, name: "Sourdough loaf", quantity: 1, cents: 1234 }],
        },
      ],
      spend: [{ month: "2017-10", department: "GROCERY", cents: 1234 }],
      buyAgain: [
        {
          productId: 7,
          name: "Oat milk",
          department: "GROCERY",
          priceCents: 299,
          location: "Aisle 4",
          reason: "you buy this every week or so",
        },
      ],
      discover: [],
      personal: true,
      notice: null,
      historyShown: true,
      erasureRequestedAt: s.erasureRequestedAt,
    };
  }

  function sync(): SyncStatus {
    return {
      provisioned: true,
      lastSuccessAt: "2026-11-26 10:00:00",
      lastError: null,
      pendingEvents: s.pending,
      offline: false,
    };
  }

  mockIPC((cmd, raw) => {
    const args = raw as Record<string, any>;
    fake.calls.push({ cmd, args: raw });
    switch (cmd) {
      case "sign_in": {
        const { staffId, pin } = args.args as { staffId: number; pin: string };
        if (!/^\d{4,8}$/.test(pin)) throw { code: "bad_pin", message: "A PIN is 4 to 8 digits" };
        const who = [ALEX, SAM].find((w) => w.staffId === staffId);
        if (!who || who.pin !== pin) throw { code: "wrong_pin", message: "Wrong staff number or PIN" };
        s.signedIn = signedIn(who, idleLockSecs);
        return s.signedIn;
      }
      case "sign_out":
        s.signedIn = null;
        return null;
      case "whoami":
        return s.signedIn;
      case "sync_status":
        return sync();
      case "keep_alive":
        guard();
        return null;
      case "search_members": {
        guard();
        const text = (args.args.text as string).toLowerCase();
        const found =
          hit.displayName!.toLowerCase().includes(text) || hit.cardNumber!.startsWith(text);
        return found ? [hit] : [];
      }
      case "scan_card":
        guard();
        return hit;
      case "cancel_scan":
        return null;
      case "client_360":
        guard();
        if (args.memberId !== hit.memberId) throw { code: "not_found", message: "No such client" };
        s.pending += 1; // the view is audited
        return client();
      case "edit_client": {
        const who = guard();
        const { memberId, edit } = args.args;
        if (memberId !== hit.memberId) throw { code: "not_found", message: "No such client" };
        if (s.erasureRequestedAt) throw { code: "erasure_pending", message: "An erasure is pending" };
        switch (edit.kind) {
          case "note":
            if (edit.body.trim() === "") throw { code: "bad_request", message: "A note cannot be empty" };
            s.notes.push({ author: who.displayName, body: edit.body, createdAt: "2017-10-20 12:00:00" });
            break;
          case "preferences":
            if (edit.preferences.some((p: Preference) => p.value.trim() === ""))
              throw { code: "bad_request", message: "A preference needs a value" };
            s.preferences = edit.preferences;
            break;
          case "consent":
            if (edit.consent === "personalization") s.personalization = edit.granted;
            else s.marketing = edit.granted;
            break;
          case "erasure":
            if (who.role !== "manager") throw { code: "forbidden", message: "Managers only" };
            s.erasureRequestedAt = "2017-10-20 12:30:00";
            break;
          default:
            throw { code: "bad_request", message: "unknown edit" };
        }
        s.pending += 1;
        return null;
      }
      case "client_offers":
        guard();
        if (options.noModel) throw { code: "no_model", message: "No offer model yet" };
        return {
          eligible: s.issued.includes(OFFER.couponId) ? [] : [OFFER],
          held: s.held.map((h) => ({ ...h })),
        };
      case "issue_coupon": {
        guard();
        const { memberId, couponId } = args.args;
        if (memberId !== hit.memberId || couponId !== OFFER.couponId)
          throw { code: "not_found", message: "No such offer" };
        if (s.issued.includes(couponId))
          throw { code: "per_member_limit", message: "Already given to this client" };
        s.issued.push(couponId);
        s.held.push({
          serial: "3100000000000042",
          description: OFFER.description,
          discountCents: 200,
          discountPercent: null,
          expiresAt: "2017-11-19 23:59:59",
        });
        s.pending += 1;
        return {
          serial: "3100000000000042",
          numericCode: "31000000000000427",
          token: "signed-token",
          expiresAt: "2017-11-19 23:59:59",
        };
      }
      case "product_card":
        guard();
        return {
          productId: args.productId,
          name: args.productId === 7 ? "Oat milk" : "Sourdough loaf",
          priceCents: args.productId === 7 ? 299 : 450,
          inStock: args.productId === 7,
          location: "Aisle 4",
          boughtTogether: [
            {
              productId: 9,
              name: "Granola",
              department: "GROCERY",
              priceCents: 549,
              location: "Aisle 6",
              reason: "often bought with it",
            },
          ],
        };
      case "store_view": {
        const who = guard();
        const view: StoreView = {
          storeId: 368,
          storeName: "Store 368",
          day: "2017-10-20",
          kioskVisits: 57,
          kioskMembers: 41,
          couponsIssuedKiosk: 23,
          couponsIssuedAssociate: 6,
          redemptions: 12,
          redeemedCents: 2450,
          sync: sync(),
          lockedOut: who.role === "manager" ? s.lockedOut.map((l) => ({ ...l })) : [],
        };
        return view;
      }
      case "unlock_staff": {
        const who = guard();
        if (who.role !== "manager") throw { code: "forbidden", message: "Managers only" };
        const before = s.lockedOut.length;
        s.lockedOut = s.lockedOut.filter((l) => l.staffId !== args.staffId);
        if (s.lockedOut.length !== before) s.pending += 1;
        return s.lockedOut.length !== before;
      }
      default:
        throw { code: "internal", message: `unexpected ${cmd}` };
    }
  });
  return fake;
}
