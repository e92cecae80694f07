//! Derived demo identities for loyalty households that come without any.
//!
//! The Complete Journey households (and the generator's synthetic members) have
//! no names, cards, phones or e-mails. So that the kiosk and the tablet have
//! something human to show, each one gets an identity that is a pure function
//! of `(seed, household_id)`, documented in `docs/IMPORT.md`:
//!
//! - name: a given and a family name picked from fixed lists;
//! - card: an EAN-13 in the restricted range `29…`, whose 10-digit body is the
//!   affine bijection `(household_id * A + B) mod 10^10` (A, B from the seed), so
//!   cards are unique, unguessable-looking and carry a valid check digit;
//! - phone: `+1 AAA-555-01NN`, in the range reserved for fiction;
//! - e-mail: `given.family.<household_id>@example.com` (a reserved domain);
//! - tier and consents: drawn per household (about 98% consent to
//!   personalization, 60% to marketing), enrolment date in 2014-2016.
//!
//! Nothing derived here can reach a real person.

use crate::card;
use crate::rng::SplitMix64;

/// The seed used unless one is given (`--seed`).
pub const DEFAULT_SEED: u64 = 20_170_101;

const GIVEN: &[&str] = &[
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Isabel",
    "James",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Oliver",
    "Priya",
    "Quinn",
    "Rosa",
    "Samuel",
    "Tara",
    "Uma",
    "Victor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoë",
    "Amara",
    "Bruno",
    "Carmen",
    "Dmitri",
    "Esther",
    "Felix",
    "Gabriela",
    "Hannah",
    "Ivan",
    "Julia",
    "Kenji",
    "Layla",
    "Marcus",
    "Noor",
    "Omar",
    "Paula",
    "Rafael",
    "Sofia",
    "Thomas",
    "Valentina",
    "William",
    "Yara",
    "José",
    "Aisha",
];

const FAMILY: &[&str] = &[
    "Smith",
    "García",
    "Nguyen",
    "Okafor",
    "Müller",
    "Rossi",
    "Kowalski",
    "Tanaka",
    "Johnson",
    "Silva",
    "Haddad",
    "Larsen",
    "O'Brien",
    "Patel",
    "Cohen",
    "Dubois",
    "Andersson",
    "Kim",
    "Martínez",
    "Brown",
    "Novak",
    "Ivanova",
    "Mensah",
    "Fischer",
    "Costa",
    "Walker",
    "Chen",
    "Hernández",
    "Jansen",
    "Popescu",
    "Wright",
    "Yilmaz",
    "Rahman",
    "Moreau",
    "Schmidt",
    "Lopez",
    "Murphy",
    "Santos",
    "Virtanen",
    "Baker",
];

const AREA_CODES: &[&str] = &[
    "212", "312", "415", "503", "512", "614", "617", "702", "713", "804", "901", "937",
];

/// A derived identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedIdentity {
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub phone: String,
    pub email: String,
    pub card_number: String,
    pub tier: &'static str,
    pub consent_personalization: bool,
    pub consent_marketing: bool,
    pub enrolled_on: String,
}

/// The identity of `household_id` under `seed`.
pub fn derive(seed: u64, household_id: u64) -> DerivedIdentity {
    let mut rng = SplitMix64::for_key(seed, "identity", household_id);
    let given = *rng.pick(GIVEN);
    let family = *rng.pick(FAMILY);
    let phone = format!("+1 {}-555-01{:02}", rng.pick(AREA_CODES), rng.below(100));
    let tier = match rng.below(100) {
        0..=69 => "standard",
        70..=87 => "silver",
        88..=96 => "gold",
        _ => "platinum",
    };
    // Complete Journey households are loyalty members whose purchases were shared for
    // analysis: nearly all are taken to consent to personalization; the few who do not
    // keep the no-consent path visible in demos and tests.
    let consent_personalization = rng.below(100) < 98;
    let consent_marketing = rng.below(100) < 60;
    let day_of_period = rng.below(365 * 3);
    let enrolled_on = date_after_2014(day_of_period);
    DerivedIdentity {
        given_name: given.to_owned(),
        family_name: family.to_owned(),
        display_name: format!("{given} {family}"),
        phone,
        email: format!(
            "{}.{}.{household_id}@example.com",
            ascii_local_part(given),
            ascii_local_part(family)
        ),
        card_number: card::card_number(29, card_body(seed, household_id)),
        tier,
        consent_personalization,
        consent_marketing,
        enrolled_on,
    }
}

/// The 10-digit card body: a bijection on 0..10^10, so distinct households never share a card.
pub fn card_body(seed: u64, household_id: u64) -> u64 {
    const MODULUS: u64 = 10_000_000_000;
    let mut rng = SplitMix64::new(seed);
    // A multiplier coprime with 10^10 (odd, not a multiple of 5) makes the map a bijection.
    let mut multiplier = rng.below(MODULUS) | 1;
    if multiplier.is_multiple_of(5) {
        multiplier += 2;
    }
    let offset = rng.below(MODULUS);
    ((u128::from(household_id % MODULUS) * u128::from(multiplier) + u128::from(offset))
        % u128::from(MODULUS)) as u64
}

fn ascii_local_part(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'é' | 'è' | 'ë' => Some('e'),
            'á' | 'à' => Some('a'),
            'í' => Some('i'),
            'ó' => Some('o'),
            'ü' | 'ú' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn date_after_2014(day: u64) -> String {
    crate::dates::date_string(crate::dates::days_from_civil(2014, 1, 1) + day as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(derive(DEFAULT_SEED, 1029), derive(DEFAULT_SEED, 1029));
        assert_ne!(derive(1, 1029).card_number, derive(2, 1029).card_number);
    }

    #[test]
    fn cards_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for household in 1..=20_000 {
            let identity = derive(DEFAULT_SEED, household);
            assert!(card::validate(&identity.card_number).is_ok());
            assert!(identity.card_number.starts_with("29"));
            assert!(
                seen.insert(identity.card_number),
                "duplicate card for {household}"
            );
        }
    }

    #[test]
    fn contact_details_are_fictional_and_well_formed() {
        let identity = derive(7, 42);
        assert!(identity.phone.contains("-555-01"), "{}", identity.phone);
        assert!(
            identity.email.ends_with(".42@example.com"),
            "{}",
            identity.email
        );
        assert!(identity.email.is_ascii());
        // A real calendar date: it survives a round trip through the calendar.
        let seconds = crate::dates::seconds_of(&format!("{} 00:00:00", identity.enrolled_on))
            .expect("YYYY-MM-DD");
        assert_eq!(
            crate::dates::date_string(seconds / 86_400),
            identity.enrolled_on
        );
    }

    #[test]
    fn calendar_walk() {
        assert_eq!(date_after_2014(0), "2014-01-01");
        assert_eq!(date_after_2014(31), "2014-02-01");
        assert_eq!(date_after_2014(365 + 59), "2015-03-01");
        assert_eq!(date_after_2014(365 * 2 + 59), "2016-02-29");
    }
}
