//! Wildcard matching for IAM patterns (`*` and `?`).
//!
//! Patterns are token lists so that text substituted from policy variables
//! stays literal: a user named `*` must not become a wildcard.
//!
//! Two matchers share the token type. When every wildcard may match a colon
//! (all of `Action`, `StringLike` and nearly every ARN pattern), a greedy
//! chunk matcher runs without backtracking: the text before the first `*` is
//! anchored left, the text after the last `*` is anchored right, and each
//! chunk in between is placed at its leftmost occurrence, which is optimal
//! for `*`/`?` globs. When some wildcard must stay inside one ARN segment,
//! greedy placement is no longer optimal, so a position-set simulation runs
//! instead. Both are O(text × pattern) in the worst case, never exponential.

/// One pattern element. `S` is `Box<str>` for patterns compiled at parse time
/// and `&str` for patterns assembled per request from policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<S> {
    /// Literal text, matched exactly.
    Lit(S),
    /// `?`: exactly one character; `colon` says whether that may be `:`.
    One { colon: bool },
    /// `*`: any run of characters; `colon` says whether it may include `:`.
    Star { colon: bool },
}

impl<S> Tok<S> {
    fn is_star(&self) -> bool {
        matches!(self, Tok::Star { .. })
    }

    fn crosses_colons(&self) -> bool {
        match self {
            Tok::Lit(_) => true,
            Tok::One { colon } | Tok::Star { colon } => *colon,
        }
    }
}

/// Whether `text` matches the whole pattern `toks`.
pub(crate) fn matches<S: AsRef<str>>(toks: &[Tok<S>], text: &str) -> bool {
    if toks.iter().all(Tok::crosses_colons) {
        greedy(toks, text)
    } else {
        simulate(toks, text)
    }
}

fn greedy<S: AsRef<str>>(toks: &[Tok<S>], text: &str) -> bool {
    let Some(first) = toks.iter().position(Tok::is_star) else {
        return match_forward(toks, text, 0) == Some(text.len());
    };
    let last = toks.iter().rposition(Tok::is_star).unwrap_or(first);
    let Some(mut pos) = match_forward(&toks[..first], text, 0) else {
        return false;
    };
    let Some(end) = match_backward(&toks[last + 1..], text) else {
        return false;
    };
    if end < pos {
        return false;
    }
    let hay = &text[..end];
    let middle = toks.get(first + 1..last).unwrap_or_default();
    for chunk in middle.split(Tok::is_star) {
        if chunk.is_empty() {
            continue;
        }
        match find_leftmost(chunk, hay, pos) {
            Some(after) => pos = after,
            None => return false,
        }
    }
    true
}

/// Matches a star-free chunk starting at byte `at`; returns the end offset.
fn match_forward<S: AsRef<str>>(chunk: &[Tok<S>], text: &str, at: usize) -> Option<usize> {
    let mut i = at;
    for tok in chunk {
        match tok {
            Tok::Lit(lit) => {
                let lit = lit.as_ref();
                if !text[i..].starts_with(lit) {
                    return None;
                }
                i += lit.len();
            }
            Tok::One { colon } => {
                let c = text[i..].chars().next()?;
                if c == ':' && !colon {
                    return None;
                }
                i += c.len_utf8();
            }
            // Chunks are split at stars, so a star never reaches here.
            Tok::Star { .. } => return None,
        }
    }
    Some(i)
}

/// Matches a star-free chunk ending at the end of `text`; returns its start.
fn match_backward<S: AsRef<str>>(chunk: &[Tok<S>], text: &str) -> Option<usize> {
    let mut j = text.len();
    for tok in chunk.iter().rev() {
        match tok {
            Tok::Lit(lit) => {
                let lit = lit.as_ref();
                if !text[..j].ends_with(lit) {
                    return None;
                }
                j -= lit.len();
            }
            Tok::One { colon } => {
                let c = text[..j].chars().next_back()?;
                if c == ':' && !colon {
                    return None;
                }
                j -= c.len_utf8();
            }
            Tok::Star { .. } => return None,
        }
    }
    Some(j)
}

fn find_leftmost<S: AsRef<str>>(chunk: &[Tok<S>], hay: &str, from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        // Jumping to the next occurrence of a leading literal uses the
        // standard library's linear substring search.
        if let Some(Tok::Lit(lit)) = chunk.first() {
            i += hay[i..].find(lit.as_ref())?;
        }
        if let Some(after) = match_forward(chunk, hay, i) {
            return Some(after);
        }
        i += hay[i..].chars().next()?.len_utf8();
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Char(char),
    One { colon: bool },
    Star { colon: bool },
}

fn simulate<S: AsRef<str>>(toks: &[Tok<S>], text: &str) -> bool {
    let mut units = Vec::new();
    for tok in toks {
        match tok {
            Tok::Lit(lit) => units.extend(lit.as_ref().chars().map(Unit::Char)),
            Tok::One { colon } => units.push(Unit::One { colon: *colon }),
            Tok::Star { colon } => units.push(Unit::Star { colon: *colon }),
        }
    }
    let m = units.len();
    let mut cur = vec![false; m + 1];
    let mut next = vec![false; m + 1];
    cur[0] = true;
    close_over_stars(&units, &mut cur);
    for c in text.chars() {
        next.fill(false);
        let mut alive = false;
        for (i, unit) in units.iter().enumerate() {
            if !cur[i] {
                continue;
            }
            let (target, ok) = match *unit {
                Unit::Char(x) => (i + 1, x == c),
                Unit::One { colon } => (i + 1, colon || c != ':'),
                Unit::Star { colon } => (i, colon || c != ':'),
            };
            if ok {
                next[target] = true;
                alive = true;
            }
        }
        if !alive {
            return false;
        }
        close_over_stars(&units, &mut next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur[m]
}

/// A star may match nothing, so reaching it also reaches the unit after it.
fn close_over_stars(units: &[Unit], states: &mut [bool]) {
    for (i, unit) in units.iter().enumerate() {
        if states[i] && matches!(unit, Unit::Star { .. }) {
            states[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Obviously-correct exponential matcher, used only on short inputs.
    fn reference(pat: &[Tok<String>], text: &[char]) -> bool {
        match pat.split_first() {
            None => text.is_empty(),
            Some((Tok::Lit(lit), rest)) => {
                let lit: Vec<char> = lit.chars().collect();
                text.starts_with(&lit) && reference(rest, &text[lit.len()..])
            }
            Some((Tok::One { colon }, rest)) => match text.split_first() {
                Some((c, tail)) => (*colon || *c != ':') && reference(rest, tail),
                None => false,
            },
            Some((Tok::Star { colon }, rest)) => (0..=text.len())
                .any(|k| (*colon || !text[..k].contains(&':')) && reference(rest, &text[k..])),
        }
    }

    fn tok() -> impl Strategy<Value = Tok<String>> {
        prop_oneof![
            4 => "[ab:é]{1,3}".prop_map(Tok::Lit),
            1 => any::<bool>().prop_map(|colon| Tok::One { colon }),
            2 => any::<bool>().prop_map(|colon| Tok::Star { colon }),
            1 => Just(Tok::One { colon: true }),
            2 => Just(Tok::Star { colon: true }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_reference(pat in prop::collection::vec(tok(), 0..8), text in "[ab:é]{0,12}") {
            let chars: Vec<char> = text.chars().collect();
            prop_assert_eq!(matches(&pat, &text), reference(&pat, &chars));
        }

        #[test]
        fn simulation_agrees_with_greedy(pat in prop::collection::vec(tok(), 0..8), text in "[ab:é]{0,12}") {
            let crossing: Vec<Tok<String>> = pat
                .into_iter()
                .map(|t| match t {
                    Tok::One { .. } => Tok::One { colon: true },
                    Tok::Star { .. } => Tok::Star { colon: true },
                    lit => lit,
                })
                .collect();
            prop_assert_eq!(greedy(&crossing, &text), simulate(&crossing, &text));
        }
    }

    fn lit(s: &str) -> Tok<&str> {
        Tok::Lit(s)
    }
    const STAR: Tok<&str> = Tok::Star { colon: true };

    #[test]
    fn pathological_patterns_stay_fast() {
        let text = "a".repeat(20_000);
        let mut pat = Vec::new();
        for _ in 0..30 {
            pat.push(STAR);
            pat.push(lit("a"));
        }
        pat.push(STAR);
        pat.push(lit("b"));
        let started = std::time::Instant::now();
        assert!(!matches(&pat, &text));
        let segment_bound: Vec<Tok<&str>> = pat
            .iter()
            .map(|t| match t {
                Tok::Star { .. } => Tok::Star { colon: false },
                other => other.clone(),
            })
            .collect();
        assert!(!matches(&segment_bound, &text));
        // Exponential backtracking would take far longer than this on any machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn basic_cases() {
        assert!(matches(&[STAR], ""));
        assert!(matches(&[lit("ab"), STAR, lit("b")], "abb"));
        assert!(!matches(&[lit("ab"), STAR, lit("ab")], "aba"));
        assert!(matches::<&str>(&[Tok::One { colon: true }], "é"));
        assert!(!matches::<&str>(&[Tok::One { colon: false }], ":"));
        assert!(!matches::<&str>(&[Tok::Star { colon: false }], "a:b"));
    }
}
