//! Thin glue between the UI's globals and the backend: callbacks become
//! [`Job`]s, [`Reply`]s become properties. Decisions stay in the core
//! (`aisle_core::kiosk`): what a scan means, and the idle [`Session`].
//!
//! Time is injected (milliseconds on a monotonic clock): the app passes
//! the real one, the tests a clock they advance with Slint's mock time, so
//! the privacy timeout is tested without waiting.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aisle_core::identify::wedge::{Input, Key, KeyEvent, WedgeConfig, WedgeParser};
use aisle_core::kiosk::{ScanOutcome, Session};
use aisle_core::recommend::serve;
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::backend::{Job, Reply};
use crate::{
    AttractAdapter, DemoMember, KioskState, KioskWindow, ProductAdapter, Screen, WelcomeAdapter,
    view,
};

/// Products shown at once in the attract screen's strip.
pub const STRIP: usize = 4;
/// How often the strip moves on.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5);

/// What the controller remembers between events (Send: replies from the
/// worker thread are applied in the event loop with it).
#[derive(Debug)]
pub struct State {
    pub session: Session,
    /// The member whose welcome shows, if any.
    pub member_id: Option<i64>,
    popular: Vec<serve::Pick>,
    strip_offset: usize,
    wedge: WedgeParser,
}

/// Milliseconds on a monotonic clock.
pub type Millis = Rc<dyn Fn() -> u64>;

/// Where jobs go: the worker's queue, or the backend inline.
pub type Submit = Rc<dyn Fn(Job)>;

/// The controller's state, once it exists, for whoever applies replies.
pub type Shared = Rc<std::sync::OnceLock<Arc<Mutex<State>>>>;

fn model<T: Clone + 'static>(items: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(items))
}

/// The running kiosk's glue; keep it alive as long as the window.
pub struct Controller {
    pub state: Arc<Mutex<State>>,
    _timers: Vec<slint::Timer>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// Wires `ui` to `submit` (the worker's queue, or the backend inline).
    /// The caller submits the first [`Job::Refresh`] once replies can be applied.
    pub fn new(ui: &KioskWindow, idle_secs: u64, submit: &Submit, clock: &Millis) -> Self {
        let state = Arc::new(Mutex::new(State {
            session: Session::new(idle_secs),
            member_id: None,
            popular: Vec::new(),
            strip_offset: 0,
            wedge: WedgeParser::new(WedgeConfig::default()),
        }));
        let kiosk = ui.global::<KioskState>();
        {
            let (ui, state) = (ui.as_weak(), state.clone());
            kiosk.on_done(move || {
                if let Some(ui) = ui.upgrade() {
                    end_session(&ui, &mut lock(&state));
                }
            });
        }
        {
            let (state, clock) = (state.clone(), clock.clone());
            kiosk.on_touched(move || lock(&state).session.touch(clock()));
        }
        {
            let (state, submit, clock) = (state.clone(), submit.clone(), clock.clone());
            kiosk.on_key(move |text| {
                let key = key_of(&text);
                let input = lock(&state).wedge.feed(KeyEvent {
                    at_ms: clock(),
                    key,
                });
                if let Some(job) = input.and_then(job_of) {
                    submit(job);
                }
            });
        }
        {
            let submit = submit.clone();
            ui.global::<AttractAdapter>()
                .on_demo_member_tapped(move |member_id| submit(Job::DemoMember(member_id.into())));
        }
        {
            let (state, submit, clock) = (state.clone(), submit.clone(), clock.clone());
            ui.global::<WelcomeAdapter>().on_send_to_app(move |serial| {
                let member_id = {
                    let mut guard = lock(&state);
                    guard.session.touch(clock());
                    guard.member_id
                };
                // Submitted without the lock: an inline backend applies the reply at once.
                if let Some(member_id) = member_id {
                    submit(Job::SendToApp {
                        serial: serial.to_string(),
                        member_id,
                    });
                }
            });
        }
        // The idle clock, the countdown and a wedge burst without a suffix.
        let tick = slint::Timer::default();
        {
            let (ui, state, submit, clock) =
                (ui.as_weak(), state.clone(), submit.clone(), clock.clone());
            tick.start(
                slint::TimerMode::Repeated,
                Duration::from_millis(250),
                move || {
                    let Some(ui) = ui.upgrade() else { return };
                    let now = clock();
                    let job = {
                        let mut guard = lock(&state);
                        let job = guard.wedge.idle(now).and_then(job_of);
                        if guard.session.expired(now) {
                            end_session(&ui, &mut guard);
                        } else if let Some(left) = guard.session.remaining_ms(now) {
                            ui.global::<KioskState>()
                                .set_seconds_left(left.div_ceil(1000) as i32);
                        }
                        job
                    };
                    if let Some(job) = job {
                        submit(job);
                    }
                },
            );
        }
        // The popular strip moves on; every twelfth turn, fresh data.
        let rotate = slint::Timer::default();
        {
            let (ui, state, submit) = (ui.as_weak(), state.clone(), submit.clone());
            let mut turns = 0u32;
            rotate.start(slint::TimerMode::Repeated, ROTATE_EVERY, move || {
                let Some(ui) = ui.upgrade() else { return };
                {
                    let mut guard = lock(&state);
                    guard.strip_offset = guard.strip_offset.wrapping_add(STRIP);
                    show_strip(&ui, &guard);
                }
                turns += 1;
                if turns.is_multiple_of(12) {
                    submit(Job::Refresh);
                }
            });
        }
        Controller {
            state,
            _timers: vec![tick, rotate],
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A key as the wedge parser sees it (Slint sends control keys as private
/// characters).
fn key_of(text: &str) -> Key {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some('\n' | '\r'), None) => Key::Enter,
        (Some('\t'), None) => Key::Tab,
        (Some(c), None) if !c.is_control() && !('\u{e000}'..='\u{f8ff}').contains(&c) => {
            Key::Char(c)
        }
        _ => Key::Other,
    }
}

fn job_of(input: Input) -> Option<Job> {
    match input {
        Input::Scanned(text) => Some(Job::Scan(text)),
        Input::Swiped(stripe) => Some(Job::Scan(stripe.card_number)),
        // A person typing: the kiosk has no field to type into.
        Input::Typed(_) => None,
    }
}

fn show_strip(ui: &KioskWindow, state: &State) {
    let n = state.popular.len();
    let picks: Vec<crate::Pick> = if n == 0 {
        Vec::new()
    } else {
        (0..STRIP.min(n))
            .map(|i| view::pick(&state.popular[(state.strip_offset + i) % n]))
            .collect()
    };
    ui.global::<AttractAdapter>().set_popular(model(picks));
}

/// Back to attract, and nothing personal left in any model.
pub fn end_session(ui: &KioskWindow, state: &mut State) {
    state.session.end();
    state.member_id = None;
    let welcome = ui.global::<WelcomeAdapter>();
    welcome.set_first_name(SharedString::new());
    welcome.set_personal(false);
    welcome.set_notice_code(SharedString::new());
    welcome.set_buy_again(model(Vec::new()));
    welcome.set_discover(model(Vec::new()));
    welcome.set_coupons(model(Vec::new()));
    let product = ui.global::<ProductAdapter>();
    product.set_name(SharedString::new());
    product.set_price(SharedString::new());
    product.set_location(SharedString::new());
    product.set_in_stock(false);
    product.set_together(model(Vec::new()));
    let kiosk = ui.global::<KioskState>();
    kiosk.set_message_code(SharedString::new());
    kiosk.set_seconds_left(0);
    kiosk.set_screen(Screen::Attract);
}

/// Shows a reply (on the UI thread) at `now_ms`.
pub fn apply(ui: &KioskWindow, state: &mut State, reply: Reply, now_ms: u64) {
    let kiosk = ui.global::<KioskState>();
    kiosk.set_busy(false);
    match reply {
        Reply::Scanned(ScanOutcome::Welcome(screen)) => {
            end_session(ui, state);
            let w = &screen.welcome;
            state.member_id = Some(w.member_id);
            let adapter = ui.global::<WelcomeAdapter>();
            adapter.set_first_name(w.first_name.clone().unwrap_or_default().into());
            adapter.set_personal(w.lists.personal);
            adapter.set_notice_code(w.lists.notice_code.unwrap_or_default().into());
            adapter.set_buy_again(model(w.lists.buy_again.iter().map(view::pick).collect()));
            adapter.set_discover(model(w.lists.discover.iter().map(view::pick).collect()));
            let cards = screen
                .coupons
                .iter()
                .map(|c| view::coupon(c, false))
                .collect();
            adapter.set_coupons(model(cards));
            state.session.touch(now_ms);
            kiosk.set_seconds_left((state.session.idle_ms / 1000) as i32);
            kiosk.set_screen(Screen::Welcome);
        }
        Reply::Scanned(ScanOutcome::Product(p)) => {
            end_session(ui, state);
            let adapter = ui.global::<ProductAdapter>();
            adapter.set_name(p.name.as_str().into());
            adapter.set_price(view::money(p.price_cents).into());
            adapter.set_location(p.location.clone().unwrap_or_default().into());
            adapter.set_in_stock(p.in_stock);
            adapter.set_together(model(p.bought_together.iter().map(view::pick).collect()));
            state.session.touch(now_ms);
            kiosk.set_screen(Screen::Product);
        }
        Reply::Scanned(ScanOutcome::Coupon(status)) => {
            end_session(ui, state);
            kiosk.set_message_code(format!("coupon_{:?}", status.state).to_lowercase().into());
            state.session.touch(now_ms);
            kiosk.set_screen(Screen::Message);
        }
        Reply::Scanned(ScanOutcome::Refused { code, .. }) => {
            end_session(ui, state);
            kiosk.set_message_code(code.into());
            state.session.touch(now_ms);
            kiosk.set_screen(Screen::Message);
        }
        Reply::Sent { serial } => {
            if state.member_id.is_some() {
                // Only that card changes: its QR image is kept, not drawn again.
                let cards = ui.global::<WelcomeAdapter>().get_coupons();
                if let Some((row, mut card)) = (0..cards.row_count())
                    .filter_map(|row| cards.row_data(row).map(|card| (row, card)))
                    .find(|(_, card)| card.serial.as_str() == serial)
                {
                    card.sent = true;
                    cards.set_row_data(row, card);
                }
            }
        }
        Reply::Refreshed {
            popular,
            offline,
            demo_members,
        } => {
            state.popular = popular;
            show_strip(ui, state);
            kiosk.set_offline(offline);
            let attract = ui.global::<AttractAdapter>();
            attract.set_demo_mode(!demo_members.is_empty());
            attract.set_demo_members(model(
                demo_members
                    .into_iter()
                    .map(|(id, label)| DemoMember {
                        member_id: id as i32,
                        label: label.into(),
                    })
                    .collect(),
            ));
        }
        Reply::Failed(error) => {
            tracing::error!(%error, "the kiosk could not do that");
            end_session(ui, state);
            kiosk.set_message_code("internal".into());
            state.session.touch(now_ms);
            kiosk.set_screen(Screen::Message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_wedge_parser() {
        assert_eq!(key_of("a"), Key::Char('a'));
        assert_eq!(key_of("\n"), Key::Enter);
        assert_eq!(key_of("\r"), Key::Enter);
        assert_eq!(key_of("\t"), Key::Tab);
        assert_eq!(key_of("\u{f702}"), Key::Other, "an arrow key");
        assert_eq!(key_of("\u{8}"), Key::Other);
        assert_eq!(key_of(""), Key::Other);
        assert_eq!(job_of(Input::Typed("abc".into())), None);
        assert_eq!(
            job_of(Input::Scanned("X".into())),
            Some(Job::Scan("X".into()))
        );
    }
}
