// Generated from src-tauri/src/dto.rs by `cargo test -p aisle-associate` (AISLE_UPDATE_BINDINGS=1 rewrites it). Do not edit.

export type ApiError = { 
/**
 * `bad_request`, `not_found`, `erased`, `internal`.
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
historyShown: boolean, };

export type NoteArgs = { memberId: number, body: string, };

export type SyncStatus = { provisioned: boolean, lastSuccessAt: string | null, lastError: string | null, pendingEvents: number, offline: boolean, };
