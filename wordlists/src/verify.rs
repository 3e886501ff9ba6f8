//! The exact comparison behind every hit: does a term's normalised form
//! occur at a given place in normalised text, letter for letter, allowing
//! only extra repeats of a letter ("kiiiill" for "kill", never "kil") and
//! the i-or-l reading of `1 ! |`?
//!
//! A term is a sequence of runs (letter, count); the text must give each run
//! at least `count` compatible bytes. Because an ambiguous byte can belong
//! to an `i` run or the `l` run after it, the comparison keeps the set of
//! positions reachable after each run (a small dynamic programme), so no
//! input makes it backtrack exponentially.

use crate::normalize::compatible;

/// A term's normalised form as runs of one byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runs(Vec<(u8, u16)>);

impl Runs {
    /// The runs of a normalised form.
    pub fn of(form: &[u8]) -> Runs {
        let mut runs: Vec<(u8, u16)> = Vec::new();
        for &b in form {
            match runs.last_mut() {
                Some((c, n)) if *c == b => *n = n.saturating_add(1),
                _ => runs.push((b, 1)),
            }
        }
        Runs(runs)
    }

    /// Tries every start in `starts`; returns the first `(start, end)` such
    /// that `text[start..end]` matches, taking the shortest end.
    pub fn find(&self, text: &[u8], starts: std::ops::Range<usize>) -> Option<(usize, usize)> {
        let mut now: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        for start in starts {
            now.clear();
            now.push(start);
            for &(c, need) in &self.0 {
                next.clear();
                for &p in &now {
                    let mut have = 0usize;
                    while p + have < text.len() && compatible(c, text[p + have]) {
                        have += 1;
                    }
                    for take in usize::from(need)..=have {
                        if !next.contains(&(p + take)) {
                            next.push(p + take);
                        }
                    }
                }
                std::mem::swap(&mut now, &mut next);
                if now.is_empty() {
                    break;
                }
            }
            if let Some(&end) = now.iter().min() {
                return Some((start, end));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(term: &str, text: &str) -> Option<(usize, usize)> {
        Runs::of(term.as_bytes()).find(text.as_bytes(), 0..1)
    }

    #[test]
    fn extra_repeats_match_missing_letters_do_not() {
        assert_eq!(find(" kill ", " kiiiill "), Some((0, 9)));
        assert_eq!(find(" kill ", " kil "), None);
        assert_eq!(find(" ass ", " as "), None);
        assert_eq!(find(" ass ", " asss "), Some((0, 6)));
    }

    #[test]
    fn one_reads_as_i_or_l() {
        assert_eq!(find(" kill ", " k111 "), Some((0, 6)));
        assert_eq!(find(" kill ", " ki11 "), Some((0, 6)));
        assert_eq!(find(" kill ", " k1l "), None);
    }
}
