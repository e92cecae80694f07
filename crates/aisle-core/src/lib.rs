//! Aisle's core: everything a store needs that is not a screen, a camera or a
//! server.
//!
//! The layers of the product, data sources -> unified customer profile ->
//! models -> decision engine -> delivery channels, meet here:
//! - [`replica`]: the store's SQLite replica, its schema and connections;
//! - [`import`]: bulk data in (Complete Journey, Aisle's generic CSV layout);
//! - [`members`]: the unified profile, look-up by card or id, associate search;
//! - [`identity`]: deterministic demo identities for households that have none;
//! - [`card`]: loyalty card numbers and their check digits;
//! - [`identify`]: scans (wedge scanners, app codes, cards) to members,
//!   verified offline; associates' manual look-up;
//! - [`generate`]: synthetic retailer exports at any scale for benchmarks;
//! - [`subset`]: the small demo extract of Complete Journey;
//! - [`stats`]: what a replica holds;
//! - [`identify`]: scans, codes and frames to a member, offline;
//! - [`offers`]: the offer decision engine, P(redeem) and its evaluation,
//!   coupon instances signed, issued under the rules and redeemed once;
//! - [`welcome`]: the kiosk's welcome screen for an identified member;
//! - [`kiosk`]: what a kiosk scan leads to (visit, coupons, welcome) and the idle session;
//! - [`clienteling`]: what an associate sees of a client and may change;
//! - [`staff`]: associates' sign-in (PIN hashes, lockout, idle lock);
//! - [`runtime`]: what every app over a replica shares: the store it
//!   serves, the clock, the models picked up as sync brings them, offline;
//! - [`edits`]: local changes, each with its outbox event.
//!
//! Mechanisms several of these share, each in one module:
//! - [`outbox`]: local events recorded with the change they describe, for HQ;
//! - [`keys`]: Ed25519 keys parsed, stored and looked up (coupon issuers,
//!   members' app-code keys, demo keys);
//! - [`audit`]: the one audit row, written in the act's transaction;
//! - [`consent`]: may we personalize for, or market to, this member.
//!
//! Top-level modules do not import each other in a circle (`cargo xtask
//! layers` checks it and prints the layers): the mechanisms above stand on
//! `replica` alone; `members`, `identify`, `recommend`, `offers`, `staff`,
//! `edits` and `welcome` on them; `sync`, `import`, `kiosk` and
//! `clienteling` above those (`sync` writes what `offers` and `members`
//! read, never the reverse); `demo`, `generate` and `subset` on top.
//!
//! Functions here are synchronous over `&Connection` / `&Transaction`, emit
//! `tracing` events and never print; the binaries own I/O, threads and output.

pub mod audit;
pub mod card;
pub mod clienteling;
pub mod consent;
pub mod dates;
pub mod demo;
pub mod edits;
pub mod generate;
pub mod identify;
pub mod identity;
pub mod import;
pub mod keys;
pub mod kiosk;
pub mod members;
pub mod offers;
pub mod outbox;
pub mod recommend;
pub mod replica;
pub mod rng;
pub mod runtime;
pub mod staff;
pub mod stats;
pub mod subset;
pub mod sync;
pub mod time;
pub mod vault;
pub mod welcome;
