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
//! Functions here are synchronous over `&Connection` / `&Transaction`, emit
//! `tracing` events and never print; the binaries own I/O, threads and output.

pub mod card;
pub mod clienteling;
pub mod dates;
pub mod demo;
pub mod edits;
pub mod generate;
pub mod identify;
pub mod identity;
pub mod import;
pub mod kiosk;
pub mod members;
pub mod offers;
pub mod recommend;
pub mod replica;
pub mod rng;
pub mod runtime;
pub mod staff;
pub mod stats;
pub mod subset;
pub mod sync;
pub mod welcome;
