//! Synthetic core-banking data, generated from a fixed seed so every demo run (and every
//! test) sees the same customers. Every value is fake by construction: emails use the
//! reserved `example.com` domain, phone numbers Ofcom's drama range (07700 900xxx),
//! national ids the never-issued 9xx SSN area, card numbers the 400000 test BIN, IBANs a
//! made-up bank code. Check digits are valid, so validators in upstream code accept them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Seed of the demo data set.
pub const SEED: u64 = 0x5052_4956_4741_5445; // "PRIVGATE"

/// Number of customers in the demo data set.
pub const CUSTOMERS: usize = 2_000;

const FIRST: &[&str] = &[
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Sophia", "Leo", "Grace",
    "Oscar", "Freya", "Harry", "Lily", "Jack", "Ella", "Charlie", "Ivy", "Theo",
];
const LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Church Lane",
    "Mill Road",
    "Park Avenue",
];
const CITIES: &[&str] = &[
    "London", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "York",
];
const COUNTERPARTIES: &[&str] = &[
    "Grocer Ltd",
    "Rail Co",
    "Energy plc",
    "Coffee House",
    "Bookshop",
    "Pharmacy",
    "Payroll",
];

/// A customer: the data subject, with the PII fields later issues protect.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Customer {
    /// Customer id.
    pub id: u32,
    /// Full name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Phone number.
    pub phone: String,
    /// National identifier.
    pub national_id: String,
    /// Date of birth, ISO 8601.
    pub date_of_birth: String,
    /// Postal address.
    pub address: Address,
    /// IBAN of the primary account.
    pub iban: String,
    /// Debit card number.
    pub card_number: String,
}

/// A postal address.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Address {
    /// House number and street.
    pub street: String,
    /// City.
    pub city: String,
    /// Postcode.
    pub postcode: String,
    /// ISO 3166 country code.
    pub country: String,
}

/// An account.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Account {
    /// Account id.
    pub id: u32,
    /// Owner.
    pub customer_id: u32,
    /// IBAN.
    pub iban: String,
    /// `current` or `savings`.
    pub kind: &'static str,
    /// ISO 4217 currency.
    pub currency: &'static str,
    /// Balance in minor units (pence).
    pub balance_minor: i64,
}

/// A booked transaction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transaction {
    /// Transaction id.
    pub id: String,
    /// Account.
    pub account_id: u32,
    /// Amount in minor units; negative is a debit.
    pub amount_minor: i64,
    /// ISO 4217 currency.
    pub currency: &'static str,
    /// Booking date, ISO 8601.
    pub booked_on: String,
    /// Counterparty name.
    pub counterparty: &'static str,
}

/// The whole synthetic bank.
#[derive(Debug, Clone)]
pub struct Bank {
    /// Customers, id = index + 1.
    pub customers: Vec<Customer>,
    /// Accounts, id = index + 1.
    pub accounts: Vec<Account>,
}

impl Bank {
    /// Generates the demo bank from [`SEED`].
    pub fn generate() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let mut customers = Vec::with_capacity(CUSTOMERS);
        let mut accounts = Vec::new();
        for i in 0..CUSTOMERS {
            let id = i as u32 + 1;
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            let account_count = rng.gen_range(1..=3);
            for n in 0..account_count {
                let account_id = accounts.len() as u32 + 1;
                accounts.push(Account {
                    id: account_id,
                    customer_id: id,
                    iban: iban(account_id),
                    kind: if n == 0 { "current" } else { "savings" },
                    currency: "GBP",
                    balance_minor: rng.gen_range(-50_000..5_000_000),
                });
            }
            let primary = accounts[accounts.len() - account_count].iban.clone();
            customers.push(Customer {
                id,
                name: format!("{first} {last}"),
                email: format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    id
                ),
                phone: format!("+44 7700 900{:03}", rng.gen_range(0..1000)),
                national_id: format!(
                    "{}-{:02}-{:04}",
                    rng.gen_range(900..1000),
                    rng.gen_range(1..100),
                    rng.gen_range(1..10_000)
                ),
                date_of_birth: format!(
                    "{}-{:02}-{:02}",
                    rng.gen_range(1940..2006),
                    rng.gen_range(1..=12),
                    rng.gen_range(1..=28)
                ),
                address: Address {
                    street: format!(
                        "{} {}",
                        rng.gen_range(1..200),
                        STREETS[rng.gen_range(0..STREETS.len())]
                    ),
                    city: CITIES[rng.gen_range(0..CITIES.len())].to_owned(),
                    postcode: format!("ZZ{} {}ZZ", rng.gen_range(1..10), rng.gen_range(1..10)),
                    country: "GB".to_owned(),
                },
                iban: primary,
                card_number: card_number(rng.gen_range(0..1_000_000_000)),
            });
        }
        Self {
            customers,
            accounts,
        }
    }

    /// The transactions of an account (20, generated from the seed and the account id).
    pub fn transactions(&self, account_id: u32) -> Vec<Transaction> {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ u64::from(account_id));
        (1..=20)
            .map(|n| Transaction {
                id: format!("tx-{account_id}-{n}"),
                account_id,
                amount_minor: rng.gen_range(-20_000..10_000),
                currency: "GBP",
                booked_on: format!(
                    "2026-{:02}-{:02}",
                    rng.gen_range(1..=10),
                    rng.gen_range(1..=28)
                ),
                counterparty: COUNTERPARTIES[rng.gen_range(0..COUNTERPARTIES.len())],
            })
            .collect()
    }
}

/// A GB IBAN for a made-up bank code `PGAT` with valid ISO 7064 mod 97-10 check digits.
fn iban(account: u32) -> String {
    let bban = format!("PGAT404040{account:08}");
    let check = 98 - mod97(&format!("{bban}GB00"));
    format!("GB{check:02}{bban}")
}

/// ISO 7064 mod 97 over an alphanumeric string, letters as 10..35.
fn mod97(s: &str) -> u32 {
    s.chars().fold(0u32, |acc, c| {
        let v = c.to_digit(36).unwrap_or(0);
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

/// A 16-digit card number on the 400000 test BIN with a valid Luhn check digit.
fn card_number(serial: u32) -> String {
    let body = format!("400000{serial:09}");
    format!("{body}{}", luhn_check_digit(&body))
}

fn luhn_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let (a, b) = (Bank::generate(), Bank::generate());
        assert_eq!(a.customers.len(), CUSTOMERS);
        assert_eq!(a.customers[1234], b.customers[1234]);
        assert_eq!(a.transactions(7), b.transactions(7));
        assert_ne!(a.customers[0].name.len() + a.customers[0].phone.len(), 0);
    }

    #[test]
    fn check_digits_are_valid() {
        // Known-answer: the ISO 13616 example IBAN validates (remainder 1).
        assert_eq!(mod97("WEST12345698765432GB82"), 1);
        // Known-answer: 7992739871 has Luhn check digit 3 (the textbook example).
        assert_eq!(luhn_check_digit("7992739871"), 3);
        for c in Bank::generate().customers.iter().take(100) {
            let rearranged = format!("{}{}", &c.iban[4..], &c.iban[..4]);
            assert_eq!(mod97(&rearranged), 1, "{}", c.iban);
            let (body, check) = c.card_number.split_at(15);
            assert_eq!(luhn_check_digit(body).to_string(), check);
        }
    }
}
