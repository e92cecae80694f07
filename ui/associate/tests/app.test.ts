// The front end with the Tauri IPC mocked: what it asks the Rust side
// (command names and argument shapes the DTOs fix) and what it shows.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import App from "../src/App.svelte";
import { asApiError, money } from "../src/lib/api";
import type { Client360, MemberHit, SyncStatus } from "../src/bindings";

const hit: MemberHit = {
  memberId: 2296,
  displayName: "Oliver Martin",
  cardNumber: "2947003289668",
  phone: "+1 614-555-0142",
  email: "oliver.martin.2296@example.com",
};

function client(notes: { author: string; body: string; createdAt: string }[]): Client360 {
  return {
    profile: {
      memberId: 2296,
      displayName: "Oliver Martin",
      phone: hit.phone,
      email: hit.email,
      tier: "gold",
      homeStore: "Store 368",
      personalization: true,
      marketing: false,
      enrolledOn: "2015-03-02",
      cards: ["2947003289668"],
      preferences: [{ kind: "dietary", value: "vegetarian" }],
      notes,
    },
    history: [
      {
        basketId: 1,
        store: "Store 368",
        purchasedAt: "2017-10-19 10:00:00",
        totalCents: 1234,
        lines: [{ productId: 7, name: "Oat milk", quantity: 1, cents: 1234 }],
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
  };
}

const sync: SyncStatus = {
  provisioned: true,
  lastSuccessAt: "2026-11-26 10:00:00",
  lastError: null,
  pendingEvents: 0,
  offline: false,
};

let calls: { cmd: string; args: unknown }[] = [];

beforeEach(() => {
  calls = [];
  const notes: { author: string; body: string; createdAt: string }[] = [];
  let pending = 0;
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "search_members":
        return [hit];
      case "client_360":
        return client([...notes]);
      case "add_note": {
        const body = (args as { args: { body: string } }).args.body;
        if (body.trim() === "") throw { code: "bad_request", message: "A note cannot be empty" };
        notes.push({ author: "associate", body, createdAt: "2017-10-20 12:00:00" });
        pending += 1;
        return null;
      }
      case "sync_status":
        return { ...sync, pendingEvents: pending };
      default:
        throw { code: "internal", message: `unexpected ${cmd}` };
    }
  });
});

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("the associate app", () => {
  it("searches as the associate types, opens a client and saves a note", async () => {
    render(App);
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("0"));
    const box = screen.getByLabelText("Find a client");
    await fireEvent.input(box, { target: { value: "oli" } });
    const result = await screen.findByText("Oliver Martin");
    expect(calls).toContainEqual({ cmd: "search_members", args: { args: { text: "oli", limit: 20 } } });

    await fireEvent.click(result);
    await screen.findByText("Home store: Store 368");
    expect(calls).toContainEqual({ cmd: "client_360", args: { memberId: 2296 } });
    expect(screen.getByText("you buy this every week or so")).toBeTruthy();
    expect(screen.getByText("dietary: vegetarian")).toBeTruthy();

    await fireEvent.input(screen.getByLabelText("New note"), { target: { value: "Prefers oat milk" } });
    await fireEvent.click(screen.getByText("Save note"));
    await screen.findByText("Prefers oat milk");
    expect(calls).toContainEqual({
      cmd: "add_note",
      args: { args: { memberId: 2296, body: "Prefers oat milk" } },
    });
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("1"));
  });

  it("shows the Rust side's refusal message", async () => {
    render(App);
    await fireEvent.input(screen.getByLabelText("Find a client"), { target: { value: "oli" } });
    await fireEvent.click(await screen.findByText("Oliver Martin"));
    await screen.findByText("Home store: Store 368");
    await fireEvent.click(screen.getByText("Save note"));
    expect((await screen.findByRole("alert")).textContent).toBe("A note cannot be empty");
  });
});

describe("helpers", () => {
  it("formats money and reads errors", () => {
    expect(money(1234)).toBe("$12.34");
    expect(money(5)).toBe("$0.05");
    expect(money(null)).toBe("price at the shelf");
    expect(asApiError({ code: "not_found", message: "No client" })).toEqual({ code: "not_found", message: "No client" });
    expect(asApiError("boom")).toEqual({ code: "internal", message: "boom" });
  });
});
