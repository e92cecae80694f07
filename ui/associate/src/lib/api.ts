// The one place the front end talks to the Rust side: every command by
// name with its typed arguments and answer (types generated from the DTOs).
import { invoke, type InvokeArgs } from "@tauri-apps/api/core";
import type {
  ApiError,
  Client360,
  ClientOffers,
  Edit,
  IssuedCoupon,
  MemberHit,
  ProductCard,
  SignedIn,
  StoreView,
  SyncStatus,
} from "../bindings";

/** A command's failure as the Rust side sends it: `{ code, message }`. */
export function asApiError(error: unknown): ApiError {
  if (error && typeof error === "object" && "code" in error && "message" in error) {
    return error as ApiError;
  }
  return { code: "internal", message: String(error) };
}

type SignedOutListener = (error: ApiError) => void;
let signedOutListener: SignedOutListener | null = null;

/**
 * Who hears that the Rust side answered `signed_out` (nobody signed in, or
 * the session locked itself): the app goes back to its sign-in screen.
 * Returns the function that stops listening.
 */
export function onSignedOut(listener: SignedOutListener): () => void {
  signedOutListener = listener;
  return () => {
    if (signedOutListener === listener) signedOutListener = null;
  };
}

/** Invokes `cmd`; a failure is rejected as an `ApiError`, `signed_out` also heard. */
async function call<T>(cmd: string, args?: InvokeArgs): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    const error = asApiError(e);
    if (error.code === "signed_out") signedOutListener?.(error);
    throw error;
  }
}

export const api = {
  signIn: (staffId: number, pin: string) => call<SignedIn>("sign_in", { args: { staffId, pin } }),
  signOut: () => call<null>("sign_out", {}),
  whoami: () => call<SignedIn | null>("whoami", {}),
  keepAlive: () => call<null>("keep_alive", {}),
  searchMembers: (text: string, limit = 20) =>
    call<MemberHit[]>("search_members", { args: { text, limit } }),
  scanCard: (seconds = 30) => call<MemberHit>("scan_card", { seconds }),
  cancelScan: () => call<null>("cancel_scan", {}),
  client360: (memberId: number) => call<Client360>("client_360", { memberId }),
  editClient: (memberId: number, edit: Edit) =>
    call<null>("edit_client", { args: { memberId, edit } }),
  clientOffers: (memberId: number) => call<ClientOffers>("client_offers", { memberId }),
  issueCoupon: (memberId: number, couponId: number) =>
    call<IssuedCoupon>("issue_coupon", { args: { memberId, couponId } }),
  productCard: (productId: number) => call<ProductCard>("product_card", { productId }),
  storeView: () => call<StoreView>("store_view", {}),
  unlockStaff: (staffId: number) => call<boolean>("unlock_staff", { staffId }),
  syncStatus: () => call<SyncStatus>("sync_status", {}),
};

/** Cents as dollars. */
export function money(cents: number | null): string {
  if (cents === null) return "price at the shelf";
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}$${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** A code to read aloud or key in, in groups of four digits. */
export function groupDigits(code: string): string {
  return (code.match(/.{1,4}/g) ?? []).join(" ");
}

/** A chance (0 to 1) as a whole percent. */
export function percent(p: number): string {
  return `${Math.round(Math.min(1, Math.max(0, p)) * 100)}%`;
}

/** A timestamp as the associate reads it: `YYYY-MM-DD HH:MM`. */
export function when(stamp: string): string {
  return stamp.replace("T", " ").slice(0, 16);
}
