//! The Luhn (mod 10) check digit test of ISO/IEC 7812 card numbers; five lines, so written
//! here rather than pulled in as a crate.

/// Whether `digits` (values 0..=9, most significant first) pass the Luhn check.
pub fn is_valid<T: Copy + Into<u32>>(digits: &[T]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = (*d).into();
            // Every second digit from the right is doubled; 2d - 9 is the digit sum of 2d.
            if i % 2 == 1 {
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
    !digits.is_empty() && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn known_numbers() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<u8>>();
        for (number, valid) in [
            ("4111111111111111", true),
            ("4111111111111112", false),
            ("79927398713", true), // the Wikipedia example
            ("79927398710", false),
            ("5555555555554444", true),
            ("378282246310005", true),
            ("0", true),
            ("", false),
        ] {
            assert_eq!(is_valid(&digits(number)), valid, "{number}");
        }
    }
}
