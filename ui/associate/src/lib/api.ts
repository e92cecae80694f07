// The one place the front end talks to the Rust side: every command by
// name with its typed arguments and answer (types generated from the DTOs).
import { invoke } from "@tauri-apps/api/core";
import type { ApiError, Client360, MemberHit, SyncStatus } from "../bindings";

/** A command's failure as the Rust side sends it: `{ code, message }`. */
export function asApiError(error: unknown): ApiError {
  if (error && typeof error === "object" && "code" in error && "message" in error) {
    return error as ApiError;
  }
  return { code: "internal", message: String(error) };
}

export const api = {
  searchMembers: (text: string, limit = 20) =>
    invoke<MemberHit[]>("search_members", { args: { text, limit } }),
  client360: (memberId: number) => invoke<Client360>("client_360", { memberId }),
  addNote: (memberId: number, body: string) =>
    invoke<null>("add_note", { args: { memberId, body } }),
  syncStatus: () => invoke<SyncStatus>("sync_status"),
};

/** Cents as dollars. */
export function money(cents: number | null): string {
  if (cents === null) return "price at the shelf";
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}$${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}
