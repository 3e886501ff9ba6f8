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

use crate::fold::AMBIGUOUS_IL;
use crate::normalize::compatible;

/// What [`Runs::find_plain`] found at one start.
enum Plain {
    Found(usize),
    No,
    /// An ambiguous byte (`1 ! |`) stood in the way: the general
    /// comparison must decide.
    Ambiguous,
}

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
        for start in starts.clone() {
            match self.find_plain(text, start) {
                Plain::Found(end) => return Some((start, end)),
                Plain::No => {}
                Plain::Ambiguous => return self.find_ambiguous(text, starts),
            }
        }
        None
    }

    /// The comparison at one start while the text holds no ambiguous
    /// byte: the runs of a form are of distinct letters one after the
    /// other, so each but the last must take every repeat the text has
    /// (what it leaves could match nothing after it), and the last takes
    /// as few as it needs (the shortest end). No allocation: this is every
    /// candidate of ordinary text.
    fn find_plain(&self, text: &[u8], start: usize) -> Plain {
        let mut p = start;
        let last = self.0.len().saturating_sub(1);
        for (k, &(c, need)) in self.0.iter().enumerate() {
            if c == AMBIGUOUS_IL {
                return Plain::Ambiguous;
            }
            let mut have = 0usize;
            while let Some(&t) = text.get(p + have) {
                if t == c {
                    have += 1;
                } else if t == AMBIGUOUS_IL {
                    return Plain::Ambiguous;
                } else {
                    break;
                }
            }
            if have < usize::from(need) {
                return Plain::No;
            }
            p += if k == last { usize::from(need) } else { have };
        }
        Plain::Found(p)
    }

    /// [`Runs::find`] where an ambiguous byte may belong to either of two
    /// runs: the set of reachable positions after each run.
    fn find_ambiguous(
        &self,
        text: &[u8],
        starts: std::ops::Range<usize>,
    ) -> Option<(usize, usize)> {
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

    proptest::proptest! {
        /// The allocation-free comparison answers as the general one,
        /// ambiguous bytes or not.
        #[test]
        fn the_plain_path_agrees_with_the_general_one(
            form in "[ il1k]{1,6}",
            text in "[ il1k]{0,12}",
            start in 0usize..4,
        ) {
            let runs = Runs::of(form.as_bytes());
            let text = text.as_bytes();
            let starts = start.min(text.len())..text.len();
            proptest::prop_assert_eq!(
                runs.find(text, starts.clone()),
                runs.find_ambiguous(text, starts)
            );
        }
    }

    #[test]
    fn one_reads_as_i_or_l() {
        assert_eq!(find(" kill ", " k111 "), Some((0, 6)));
        assert_eq!(find(" kill ", " ki11 "), Some((0, 6)));
        assert_eq!(find(" kill ", " k1l "), None);
    }
}
