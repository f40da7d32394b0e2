//! Counts in messages, said as a person says them: "1 frame", "3 frames".

use std::fmt;

/// `count` of `noun` (a regular English noun, singular), for a message.
pub fn plural(count: usize, noun: &'static str) -> Plural {
    Plural { count, noun }
}

/// A count with its noun: see [`plural`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plural {
    count: usize,
    noun: &'static str,
}

impl fmt::Display for Plural {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.count, self.noun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_every_other_count_plural() {
        assert_eq!(plural(1, "frame").to_string(), "1 frame");
        assert_eq!(plural(0, "frame").to_string(), "0 frames");
        assert_eq!(plural(3, "source").to_string(), "3 sources");
    }
}
