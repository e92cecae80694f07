// The front end with the Tauri IPC mocked (tests/fake.ts): what it asks the
// Rust side (command names and argument shapes the DTOs fix) and what it shows.
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { clearMocks } from "@tauri-apps/api/mocks";
import App from "../src/App.svelte";
import { asApiError, groupDigits, money, percent } from "../src/lib/api";
import { ALEX, OFFER, SAM, installFake, signedIn, type Fake } from "./fake";

afterEach(() => {
  cleanup();
  clearMocks();
  vi.useRealTimers();
});

const input = (id: string) => document.getElementById(id) as HTMLInputElement;

async function signInAs(who: typeof ALEX) {
  await screen.findByTestId("signin");
  await fireEvent.input(input("staff"), { target: { value: String(who.staffId) } });
  await fireEvent.input(input("pin"), { target: { value: who.pin } });
  await fireEvent.click(screen.getByTestId("signin-submit"));
  await screen.findByTestId("who");
}

/** Signed in as `who`, Oliver Martin's client screen open. */
async function openClient(who: typeof ALEX, fake: Fake) {
  render(App);
  await signInAs(who);
  await fireEvent.input(screen.getByLabelText("Find a client"), { target: { value: "oli" } });
  await fireEvent.click(await screen.findByText("Oliver Martin"));
  await screen.findByText("Home store: Store 368");
  expect(fake.argsOf("client_360")).toEqual([{ memberId: 2296 }]);
}

describe("signing in", () => {
  it("starts on the sign-in screen, with the sync bar, and signs in", async () => {
    const fake = installFake();
    render(App);
    await screen.findByTestId("signin");
    expect(fake.argsOf("whoami")).toHaveLength(1);
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("0"));
    expect(screen.queryByTestId("who")).toBeNull();
    expect(screen.queryByLabelText("Find a client")).toBeNull();
    const pin = input("pin");
    expect(pin.type).toBe("password");
    expect(pin.getAttribute("inputmode")).toBe("numeric");
    expect(pin.getAttribute("autocomplete")).toBe("off");
    expect(input("staff").getAttribute("inputmode")).toBe("numeric");

    await signInAs(ALEX);
    expect(fake.argsOf("sign_in")).toEqual([{ args: { staffId: 1001, pin: "2468" } }]);
    expect(screen.getByTestId("who").textContent).toBe("Alex Moreau · associate");
    expect(screen.getByTestId("tab-clients").textContent).toBe("Clients");
    expect(screen.getByTestId("tab-store").textContent).toBe("Store");
    expect(screen.queryByTestId("signin")).toBeNull();
    // Ready for a keyboard-wedge scan.
    expect(document.activeElement).toBe(input("q"));
  });

  it("shows a wrong PIN and clears the PIN field", async () => {
    const fake = installFake();
    render(App);
    await screen.findByTestId("signin");
    await fireEvent.input(input("staff"), { target: { value: "1001" } });
    await fireEvent.input(input("pin"), { target: { value: "9999" } });
    await fireEvent.click(screen.getByTestId("signin-submit"));
    const error = await screen.findByTestId("error");
    expect(error.textContent).toBe("Wrong staff number or PIN");
    expect(error.getAttribute("role")).toBe("alert");
    expect(fake.argsOf("sign_in")).toEqual([{ args: { staffId: 1001, pin: "9999" } }]);
    expect(input("pin").value).toBe("");
    expect(input("staff").value).toBe("1001");
    expect(screen.queryByTestId("who")).toBeNull();

    // A malformed PIN: the Rust side's message, the field cleared again.
    await fireEvent.input(input("pin"), { target: { value: "12" } });
    await fireEvent.click(screen.getByTestId("signin-submit"));
    await waitFor(() => expect(screen.getByTestId("error").textContent).toBe("A PIN is 4 to 8 digits"));
    expect(input("pin").value).toBe("");
  });

  it("resumes the session whoami reports", async () => {
    installFake({ signedIn: signedIn(SAM) });
    render(App);
    expect((await screen.findByTestId("who")).textContent).toBe("Sam Lee · manager");
    expect(screen.queryByTestId("signin")).toBeNull();
  });

  it("signs out: sign_out sent, the client dropped, the sign-in screen back", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    await fireEvent.click(screen.getByTestId("signout"));
    await screen.findByTestId("signin");
    expect(fake.argsOf("sign_out")).toEqual([{}]);
    expect(screen.queryByTestId("client")).toBeNull();
    expect(screen.queryByTestId("error")).toBeNull();
    // Signing in again starts from an empty search.
    await signInAs(ALEX);
    expect(input("q").value).toBe("");
    expect(screen.getByTestId("hits").children).toHaveLength(0);
    expect(screen.queryByTestId("client")).toBeNull();
  });

  it("goes back to sign-in with the message when any command answers signed_out", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    fake.expire();
    await fireEvent.input(screen.getByLabelText("New note"), { target: { value: "Hello" } });
    await fireEvent.click(screen.getByText("Save note"));
    const error = await screen.findByTestId("error");
    expect(error.textContent).toBe("The tablet locked itself after a while unused: sign in again");
    expect(screen.getByTestId("signin")).toBeTruthy();
    expect(screen.queryByTestId("client")).toBeNull();
    expect(screen.queryByTestId("who")).toBeNull();
    expect(fake.argsOf("edit_client")).toEqual([{ args: { memberId: 2296, edit: { kind: "note", body: "Hello" } } }]);
    // The sync bar stays.
    expect(screen.getByTestId("sync")).toBeTruthy();
  });

  it("goes back to sign-in when the store view answers signed_out", async () => {
    const fake = installFake();
    render(App);
    await signInAs(ALEX);
    fake.expire();
    await fireEvent.click(screen.getByTestId("tab-store"));
    expect((await screen.findByTestId("error")).textContent).toBe(
      "The tablet locked itself after a while unused: sign in again",
    );
    expect(screen.getByTestId("signin")).toBeTruthy();
    expect(screen.queryByTestId("store")).toBeNull();
  });
});

describe("auto-lock", () => {
  it("pings while used, then locks after idleLockSecs without use", async () => {
    vi.useFakeTimers();
    const fake = installFake({ signedIn: signedIn(ALEX, 60) });
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId("who")).toBeTruthy());
    await fireEvent.input(screen.getByLabelText("Find a client"), { target: { value: "oli" } });
    await vi.waitFor(() => expect(screen.getByText("Oliver Martin")).toBeTruthy());
    await fireEvent.click(screen.getByText("Oliver Martin"));
    await vi.waitFor(() => expect(screen.getByTestId("client")).toBeTruthy());

    // Searching and opening were activity: one keep-alive 20 s after sign-in.
    expect(fake.argsOf("keep_alive")).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(25_000);
    expect(fake.argsOf("keep_alive")).toEqual([{}]);
    // Used again at 25 s: the next keep-alive waits for 20 s after the first.
    await fireEvent.keyDown(document.body, { key: "a" });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.argsOf("keep_alive")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(20_000); // 50 s
    expect(fake.argsOf("keep_alive")).toHaveLength(2);
    // Idle since 25 s: no more keep-alives, still open at 80 s.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(fake.argsOf("keep_alive")).toHaveLength(2);
    expect(screen.getByTestId("client")).toBeTruthy();
    expect(fake.argsOf("sign_out")).toHaveLength(0);

    await vi.advanceTimersByTimeAsync(7_000); // 87 s: 62 s since the last use
    expect(fake.argsOf("sign_out")).toEqual([{}]);
    expect(screen.getByTestId("signin")).toBeTruthy();
    expect(screen.getByTestId("error").textContent).toBe("Locked after 60 s without use");
    expect(screen.queryByTestId("client")).toBeNull();
    expect(screen.queryByText("Oliver Martin")).toBeNull();
  });

  it("words long delays in minutes", async () => {
    vi.useFakeTimers();
    installFake({ signedIn: signedIn(ALEX, 120) });
    render(App);
    await vi.waitFor(() => expect(screen.getByTestId("who")).toBeTruthy());
    await vi.advanceTimersByTimeAsync(119_000);
    expect(screen.queryByTestId("signin")).toBeNull();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(screen.getByTestId("error").textContent).toBe("Locked after 2 min without use");
  });
});

describe("the clients tab", () => {
  it("searches as the associate types, opens a client and saves a note through edit_client", async () => {
    const fake = installFake();
    render(App);
    await signInAs(ALEX);
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("0"));
    await fireEvent.input(screen.getByLabelText("Find a client"), { target: { value: "oli" } });
    const result = await screen.findByText("Oliver Martin");
    expect(fake.argsOf("search_members")).toEqual([{ args: { text: "oli", limit: 20 } }]);

    await fireEvent.click(result);
    await screen.findByText("Home store: Store 368");
    expect(fake.argsOf("client_360")).toEqual([{ memberId: 2296 }]);
    expect(screen.getByText("you buy this every week or so")).toBeTruthy();
    expect(screen.getByText("dietary: vegetarian")).toBeTruthy();
    // The view was audited: the bar shows it waiting.
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("1"));

    await fireEvent.input(screen.getByLabelText("New note"), { target: { value: "Prefers oat milk" } });
    await fireEvent.click(screen.getByText("Save note"));
    await waitFor(() => expect(screen.getByTestId("notes").textContent).toContain("Prefers oat milk"));
    expect(fake.argsOf("edit_client")).toEqual([
      { args: { memberId: 2296, edit: { kind: "note", body: "Prefers oat milk" } } },
    ]);
    expect(fake.calls.some((c) => c.cmd === "add_note")).toBe(false);
    await waitFor(() => expect((screen.getByLabelText("New note") as HTMLInputElement).value).toBe(""));
    // The note and the client viewed again wait for HQ.
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("3"));
  });

  it("shows the Rust side's refusal message", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    await fireEvent.click(screen.getByText("Save note"));
    expect((await screen.findByRole("alert")).textContent).toBe("A note cannot be empty");
    expect(fake.argsOf("edit_client")).toEqual([{ args: { memberId: 2296, edit: { kind: "note", body: "" } } }]);
  });

  it("opens the client when a scanner types a card number and Enter", async () => {
    const fake = installFake();
    render(App);
    await signInAs(ALEX);
    const box = screen.getByLabelText("Find a client");
    // A card number's prefix finds the client, but is not their card: no opening.
    await fireEvent.input(box, { target: { value: "2947" } });
    await fireEvent.keyDown(box, { key: "Enter" });
    await waitFor(() => expect(fake.argsOf("search_members")).toHaveLength(2));
    await screen.findByText("Oliver Martin");
    expect(fake.argsOf("client_360")).toHaveLength(0);
    expect(screen.queryByTestId("client")).toBeNull();

    await fireEvent.input(box, { target: { value: "2947003289668" } });
    await fireEvent.keyDown(box, { key: "Enter" });
    await screen.findByTestId("client");
    expect(fake.argsOf("search_members")).toContainEqual({ args: { text: "2947003289668", limit: 20 } });
    expect(fake.argsOf("client_360")).toEqual([{ memberId: 2296 }]);
  });

  it("opens the client whose card the camera saw", async () => {
    const fake = installFake();
    render(App);
    await signInAs(ALEX);
    await fireEvent.click(screen.getByTestId("scan"));
    await screen.findByTestId("client");
    expect(fake.argsOf("scan_card")).toEqual([{ seconds: 30 }]);
    expect(fake.argsOf("client_360")).toEqual([{ memberId: 2296 }]);
    await waitFor(() => expect(screen.queryByTestId("scanning")).toBeNull());
    expect(screen.getByTestId("scan")).toBeTruthy();
  });

  it("adds and removes preferences, sending the whole set", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    const prefs = screen.getByTestId("preferences");
    await fireEvent.change(input("pref-kind"), { target: { value: "brand" } });
    await fireEvent.input(input("pref-value"), { target: { value: "Oatly" } });
    await fireEvent.click(screen.getByTestId("pref-add"));
    await waitFor(() => expect(within(prefs).getByText("brand: Oatly")).toBeTruthy());
    expect(fake.argsOf("edit_client")).toEqual([
      {
        args: {
          memberId: 2296,
          edit: {
            kind: "preferences",
            preferences: [
              { kind: "dietary", value: "vegetarian" },
              { kind: "brand", value: "Oatly" },
            ],
          },
        },
      },
    ]);
    await waitFor(() => expect(input("pref-value").value).toBe(""));
    expect(fake.argsOf("client_360")).toHaveLength(2);

    await fireEvent.click(screen.getByLabelText("Remove dietary vegetarian"));
    await waitFor(() => expect(within(prefs).queryByText("dietary: vegetarian")).toBeNull());
    expect(fake.argsOf("edit_client")[1]).toEqual({
      args: { memberId: 2296, edit: { kind: "preferences", preferences: [{ kind: "brand", value: "Oatly" }] } },
    });
    expect(within(prefs).getByText("brand: Oatly")).toBeTruthy();
    await waitFor(() => expect(screen.getByTestId("pending").textContent).toBe("5"));
  });

  it("refuses a duplicate preference without asking the Rust side", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    await fireEvent.change(input("pref-kind"), { target: { value: "dietary" } });
    await fireEvent.input(input("pref-value"), { target: { value: "Vegetarian" } });
    await fireEvent.click(screen.getByTestId("pref-add"));
    expect((await screen.findByRole("alert")).textContent).toBe("dietary: Vegetarian is already listed");
    expect(fake.argsOf("edit_client")).toHaveLength(0);
  });

  it("toggles a consent through edit_client and shows the reloaded client", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    const marketing = input("consent-marketing");
    expect(marketing.checked).toBe(false);
    expect(input("consent-personalization").checked).toBe(true);
    await fireEvent.click(marketing);
    await waitFor(() => expect(fake.argsOf("client_360")).toHaveLength(2));
    expect(fake.argsOf("edit_client")).toEqual([
      { args: { memberId: 2296, edit: { kind: "consent", consent: "marketing", granted: true } } },
    ]);
    await waitFor(() => expect(input("consent-marketing").checked).toBe(true));

    await fireEvent.click(input("consent-personalization"));
    await waitFor(() => expect(fake.argsOf("edit_client")).toHaveLength(2));
    expect(fake.argsOf("edit_client")[1]).toEqual({
      args: { memberId: 2296, edit: { kind: "consent", consent: "personalization", granted: false } },
    });
    await waitFor(() => expect(input("consent-personalization").checked).toBe(false));
  });

  it("lists offers, issues a coupon and shows its serial and code", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    const offers = await screen.findByTestId("offers");
    await within(offers).findByText("$2 off oat milk");
    expect(fake.argsOf("client_offers")).toEqual([{ memberId: 2296 }]);
    expect(within(offers).getByText("Buys oat milk most weeks")).toBeTruthy();
    expect(offers.textContent).toContain("42%");
    expect(within(screen.getByTestId("held")).getByText("None.")).toBeTruthy();
    const pendingBefore = Number(screen.getByTestId("pending").textContent);

    await fireEvent.click(screen.getByTestId(`issue-${OFFER.couponId}`));
    const issued = await screen.findByTestId("issued");
    expect(fake.argsOf("issue_coupon")).toEqual([{ args: { memberId: 2296, couponId: 31 } }]);
    expect(issued.textContent).toContain("3100000000000042");
    expect(issued.textContent).toContain("3100 0000 0000 0042 7");
    // The offers reloaded: given now, held.
    await waitFor(() => expect(fake.argsOf("client_offers")).toHaveLength(2));
    await waitFor(() => expect(screen.getByTestId("held").textContent).toContain("3100000000000042"));
    expect(screen.queryByTestId("issue-31")).toBeNull();
    await waitFor(() => expect(Number(screen.getByTestId("pending").textContent)).toBe(pendingBefore + 1));
  });

  it("shows a muted line, not an error, without an offer model", async () => {
    const fake = installFake({ noModel: true });
    await openClient(ALEX, fake);
    const offers = screen.getByTestId("offers");
    await within(offers).findByText(/No offer model on this tablet yet/);
    expect(within(offers).queryByRole("alert")).toBeNull();
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("opens a product from a suggestion and from a basket line", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    await fireEvent.click(screen.getByText("you buy this every week or so"));
    const panel = await screen.findByTestId("product");
    await within(panel).findByText("Often bought together");
    expect(fake.argsOf("product_card")).toEqual([{ productId: 7 }]);
    expect(panel.textContent).toContain("$2.99");
    expect(panel.textContent).toContain("In stock");
    expect(panel.textContent).toContain("Aisle 4");
    expect(within(panel).getByText("Granola")).toBeTruthy();
    await fireEvent.click(within(panel).getByText("Close"));
    expect(screen.queryByTestId("product")).toBeNull();

    // One line is "1 item", not "1 items".
    expect(screen.getByText(/· 1 item$/)).toBeTruthy();
    await fireEvent.click(screen.getByText(/Sourdough loaf/));
    const again = await screen.findByTestId("product");
    await within(again).findByText("Out of stock");
    expect(fake.argsOf("product_card")[1]).toEqual({ productId: 8 });
    expect(again.textContent).toContain("$4.50");
  });

  it("has no erase button for an associate", async () => {
    const fake = installFake();
    await openClient(ALEX, fake);
    expect(screen.queryByTestId("erase")).toBeNull();
    expect(screen.queryByTestId("erase-confirm")).toBeNull();
  });

  it("lets a manager request erasure after confirming, then freezes the client", async () => {
    const fake = installFake();
    await openClient(SAM, fake);
    await screen.findByTestId("issue-31");
    await fireEvent.click(screen.getByTestId("erase"));
    expect(fake.argsOf("edit_client")).toHaveLength(0);
    await fireEvent.click(screen.getByTestId("erase-confirm"));
    const banner = await screen.findByTestId("erasure-pending");
    expect(fake.argsOf("edit_client")).toEqual([{ args: { memberId: 2296, edit: { kind: "erasure" } } }]);
    expect(banner.textContent).toContain("Erasure requested on 2017-10-20 12:30");
    expect(banner.textContent).toContain("waiting for HQ. No more changes.");
    await waitFor(() => expect(screen.queryByTestId("erase-confirm")).toBeNull());
    expect(input("consent-marketing").disabled).toBe(true);
    expect(input("consent-personalization").disabled).toBe(true);
    expect(input("pref-value").disabled).toBe(true);
    expect((screen.getByTestId("pref-add") as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByLabelText("Remove dietary vegetarian") as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByLabelText("New note") as HTMLInputElement).disabled).toBe(true);
    expect((screen.getByText("Save note") as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByTestId("issue-31") as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByTestId("erase") as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("the store tab", () => {
  it("shows today's counts to an associate, without the lockouts", async () => {
    const fake = installFake();
    render(App);
    await signInAs(ALEX);
    await fireEvent.click(screen.getByTestId("tab-store"));
    const visits = await screen.findByTestId("store-visits");
    await waitFor(() => expect(visits.textContent).toContain("57"));
    expect(fake.argsOf("store_view")).toEqual([{}]);
    expect(visits.textContent).toContain("41");
    const issued = screen.getByTestId("store-issued").textContent!;
    expect(issued).toContain("23 at the kiosk");
    expect(issued).toContain("6 by associates");
    const redemptions = screen.getByTestId("store-redemptions").textContent!;
    expect(redemptions).toContain("12");
    expect(redemptions).toContain("$24.50");
    expect(screen.getByTestId("store").textContent).toContain("Store 368");
    expect(screen.getByTestId("store").textContent).toContain("2017-10-20");
    expect(screen.queryByTestId("locked")).toBeNull();
    // Back to the clients tab.
    await fireEvent.click(screen.getByTestId("tab-clients"));
    expect(screen.getByLabelText("Find a client")).toBeTruthy();
    expect(screen.queryByTestId("store")).toBeNull();
  });

  it("lets a manager unlock a locked-out staff number", async () => {
    const fake = installFake();
    render(App);
    await signInAs(SAM);
    await fireEvent.click(screen.getByTestId("tab-store"));
    const locked = await screen.findByTestId("locked");
    await within(locked).findByText("Jo Tran");
    await fireEvent.click(screen.getByTestId("unlock-1003"));
    await waitFor(() => expect(fake.argsOf("store_view")).toHaveLength(2));
    expect(fake.argsOf("unlock_staff")).toEqual([{ staffId: 1003 }]);
    await waitFor(() => expect(within(screen.getByTestId("locked")).queryByText("Jo Tran")).toBeNull());
    expect(screen.getByTestId("locked").textContent).toContain("Nobody is locked out.");
  });
});

describe("helpers", () => {
  it("formats money, codes and chances and reads errors", () => {
    expect(money(1234)).toBe("$12.34");
    expect(money(5)).toBe("$0.05");
    expect(money(null)).toBe("price at the shelf");
    expect(groupDigits("31000000000000427")).toBe("3100 0000 0000 0042 7");
    expect(percent(0.424)).toBe("42%");
    expect(percent(1.2)).toBe("100%");
    expect(asApiError({ code: "not_found", message: "No client" })).toEqual({ code: "not_found", message: "No client" });
    expect(asApiError("boom")).toEqual({ code: "internal", message: "boom" });
  });
});
