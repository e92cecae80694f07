// Generated from src-tauri/src/dto.rs by `cargo test -p aisle-associate` (AISLE_UPDATE_BINDINGS=1 rewrites it). Do not edit.

export type ApiError = { 
/**
 * `bad_request`, `not_found`, `erased`, `erasure_pending`, `signed_out`,
 * `bad_pin`, `wrong_pin`, `locked`, `forbidden`, `no_model`, an offer
 * rule's refusal (`per_member_limit`, ...), `internal`.
 */
code: string, message: string, };

export type SearchArgs = { 
/**
 * What the associate typed: name, card number, phone or e-mail.
 */
text: string, limit: number | null, };

export type MemberHit = { memberId: number, displayName: string | null, cardNumber: string | null, phone: string | null, email: string | null, };

export type Preference = { 
/**
 * `size`, `brand`, `category`, `dietary`.
 */
kind: string, value: string, };

export type Note = { author: string, body: string, createdAt: string, };

export type Profile = { memberId: number, displayName: string | null, phone: string | null, email: string | null, tier: string, homeStore: string | null, 
/**
 * Consent to personalization: without it, no history-based suggestion is shown.
 */
personalization: boolean, marketing: boolean, enrolledOn: string | null, cards: Array<string>, preferences: Array<Preference>, notes: Array<Note>, };

export type BasketLine = { productId: number, name: string, quantity: number, cents: number, };

export type Basket = { basketId: number, store: string, purchasedAt: string, totalCents: number, lines: Array<BasketLine>, };

export type MonthSpend = { 
/**
 * `YYYY-MM`.
 */
month: string, department: string, cents: number, };

export type Suggestion = { productId: number, name: string, department: string | null, priceCents: number | null, location: string | null, 
/**
 * Why it is suggested, in words the associate can repeat.
 */
reason: string, };

export type Client360 = { profile: Profile, 
/**
 * Newest first.
 */
history: Array<Basket>, 
/**
 * The last twelve months, oldest first.
 */
spend: Array<MonthSpend>, buyAgain: Array<Suggestion>, discover: Array<Suggestion>, 
/**
 * False without consent (then the lists are what is popular here).
 */
personal: boolean, notice: string | null, 
/**
 * False when history and spend are withheld: no consent to personalization.
 */
historyShown: boolean, 
/**
 * When an erasure was requested on this replica (no more edits then).
 */
erasureRequestedAt: string | null, };

export type SignInArgs = { staffId: number, pin: string, };

export type SignedIn = { staffId: number, displayName: string, 
/**
 * `associate` or `manager`.
 */
role: string, 
/**
 * The tablet locks after this long without use.
 */
idleLockSecs: number, };

export type Edit = { "kind": "preferences", preferences: Array<Preference>, } | { "kind": "consent", consent: string, granted: boolean, } | { "kind": "note", body: string, } | { "kind": "erasure" };

export type EditArgs = { memberId: number, edit: Edit, };

export type Offer = { couponId: number, description: string | null, 
/**
 * The model's chance the client redeems it (0 to 1).
 */
pRedeem: number, expectedValueCents: number, 
/**
 * Why it is suggested.
 */
reason: string, };

export type HeldCoupon = { serial: string, description: string | null, discountCents: number | null, discountPercent: number | null, expiresAt: string, };

export type ClientOffers = { eligible: Array<Offer>, held: Array<HeldCoupon>, };

export type IssueArgs = { memberId: number, couponId: number, };

export type IssuedCoupon = { serial: string, numericCode: string, token: string, expiresAt: string, };

export type ProductCard = { productId: number, name: string, priceCents: number | null, inStock: boolean, location: string | null, boughtTogether: Array<Suggestion>, };

export type LockedStaff = { staffId: number, displayName: string | null, failures: number, lockedUntil: string, };

export type SyncStatus = { provisioned: boolean, lastSuccessAt: string | null, lastError: string | null, pendingEvents: number, offline: boolean, };

export type StoreView = { storeId: number, storeName: string | null, 
/**
 * `YYYY-MM-DD`.
 */
day: string, kioskVisits: number, kioskMembers: number, couponsIssuedKiosk: number, couponsIssuedAssociate: number, redemptions: number, redeemedCents: number, sync: SyncStatus, 
/**
 * Empty unless a manager is signed in.
 */
lockedOut: Array<LockedStaff>, };
