//! Polls, end to end encrypted: the question is the message's text and the options and rules
//! travel inside its ciphertext; a vote is sent as a reaction to the poll (so the server cannot
//! tell votes from reactions) whose ciphertext holds the chosen options. Every reader's client
//! tallies the votes itself and ignores those cast after the poll closed: the server is trusted
//! with nothing but the order and time of events.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const MIN_OPTIONS: usize = 2;
pub const MAX_OPTIONS: usize = 10;
/// The longest option, in characters.
pub const MAX_OPTION_CHARS: usize = 200;
/// The longest a poll may stay open (a close time further ahead is refused).
pub const MAX_OPEN_MS: u64 = 366 * 24 * 3_600_000;

/// A poll's options and rules (its question is the message's text).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Poll {
    pub options: Vec<String>,
    /// Several options may be chosen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiple: bool,
    /// When voting ends (ms since the epoch); open for good when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at_ms: Option<u64>,
}

impl Poll {
    /// Whether a poll (with its question) is one to send or show: 2 to 10 distinct, non-empty
    /// options of bounded length. What is wrong, in plain words, otherwise.
    pub fn check(&self, question: &str) -> Result<(), String> {
        if question.trim().is_empty() {
            return Err("A poll needs a question.".into());
        }
        if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&self.options.len()) {
            return Err(format!("A poll has {MIN_OPTIONS} to {MAX_OPTIONS} options."));
        }
        if self.options.iter().any(|o| o.trim().is_empty()) {
            return Err("An option is empty.".into());
        }
        if self.options.iter().any(|o| o.chars().count() > MAX_OPTION_CHARS) {
            return Err(format!("An option is longer than {MAX_OPTION_CHARS} characters."));
        }
        let mut seen = std::collections::HashSet::new();
        if !self.options.iter().all(|o| seen.insert(o.trim().to_lowercase())) {
            return Err("Two options are the same.".into());
        }
        Ok(())
    }

    /// Whether a vote cast at `at_ms` (the server's time of the event) counts.
    pub fn open_at(&self, at_ms: u64) -> bool {
        self.closes_at_ms.is_none_or(|end| at_ms < end)
    }

    /// The options a vote chose, as this poll reads them: valid indices, each once, in order;
    /// only the first for a single-choice poll.
    pub fn chosen(&self, vote: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = vec![];
        for &i in vote {
            if usize::from(i) < self.options.len() && !out.contains(&i) {
                out.push(i);
            }
        }
        out.sort_unstable();
        if !self.multiple {
            out.truncate(1);
        }
        out
    }
}

/// One vote as the timeline holds it.
#[derive(Clone, Copy, Debug)]
pub struct Cast<'a> {
    pub voter: Uuid,
    /// The event's sequence number: the later vote of a person replaces the earlier.
    pub seq: i64,
    /// The server's time of the event (ms since the epoch).
    pub at_ms: u64,
    pub options: &'a [u8],
}

/// The result of a poll, as this client counted it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Votes per option.
    pub counts: Vec<u32>,
    /// People whose vote counts.
    pub voters: u32,
    /// What I chose (my vote that counts).
    pub mine: Vec<u8>,
}

/// Counts the votes: each person's latest vote cast while the poll was open (an empty one takes
/// their vote back); late votes are ignored, whatever the server says about the poll.
pub fn tally<'a>(poll: &Poll, casts: impl IntoIterator<Item = Cast<'a>>, me: Uuid) -> Tally {
    let mut latest: std::collections::HashMap<Uuid, Cast<'a>> = std::collections::HashMap::new();
    for c in casts.into_iter().filter(|c| poll.open_at(c.at_ms)) {
        match latest.get(&c.voter) {
            Some(before) if before.seq >= c.seq => {}
            _ => {
                latest.insert(c.voter, c);
            }
        }
    }
    let mut t = Tally { counts: vec![0; poll.options.len()], ..Tally::default() };
    for (voter, c) in latest {
        let chosen = poll.chosen(c.options);
        if chosen.is_empty() {
            continue;
        }
        t.voters += 1;
        for &i in &chosen {
            t.counts[usize::from(i)] += 1;
        }
        if voter == me {
            t.mine = chosen;
        }
    }
    t
}

/// A poll typed as `/poll Question | option | option …`: single choice, open for good.
pub fn parse_command(args: &str) -> Result<(String, Poll), String> {
    let mut parts = args.split('|').map(str::trim);
    let question = parts.next().unwrap_or_default().to_owned();
    let poll = Poll { options: parts.map(str::to_owned).collect(), multiple: false, closes_at_ms: None };
    poll.check(&question)?;
    Ok((question, poll))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(n: usize, multiple: bool, closes: Option<u64>) -> Poll {
        Poll { options: (0..n).map(|i| format!("option {i}")).collect(), multiple, closes_at_ms: closes }
    }

    #[test]
    fn bad_polls_are_refused() {
        assert!(poll(2, false, None).check("Lunch?").is_ok());
        assert!(poll(1, false, None).check("Lunch?").is_err());
        assert!(poll(11, false, None).check("Lunch?").is_err());
        assert!(poll(2, false, None).check("  ").is_err());
        let same = Poll { options: vec!["Pizza".into(), "pizza ".into()], multiple: false, closes_at_ms: None };
        assert_eq!(same.check("Q").unwrap_err(), "Two options are the same.");
        let long = Poll { options: vec!["a".repeat(201), "b".into()], multiple: false, closes_at_ms: None };
        assert!(long.check("Q").is_err());
        assert_eq!(parse_command("Lunch? | Pizza | Sushi").unwrap().1.options, ["Pizza", "Sushi"]);
        assert!(parse_command("Lunch? | Pizza").is_err());
    }

    #[test]
    fn the_latest_vote_in_time_counts_and_late_ones_do_not() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let p = poll(3, false, Some(1_000));
        let casts = [
            Cast { voter: a, seq: 1, at_ms: 10, options: &[0] },
            Cast { voter: a, seq: 5, at_ms: 20, options: &[2] },
            // Out of range and duplicate indices are ignored; a single-choice poll takes the first.
            Cast { voter: b, seq: 2, at_ms: 30, options: &[9, 1, 1, 2] },
            // After the close: ignored, also as a change of an earlier vote.
            Cast { voter: c, seq: 9, at_ms: 1_000, options: &[0] },
            Cast { voter: b, seq: 10, at_ms: 5_000, options: &[0] },
        ];
        let t = tally(&p, casts, a);
        assert_eq!(t.counts, [0, 1, 1]);
        assert_eq!((t.voters, t.mine.clone()), (2, vec![2]));
        // Several choices where allowed; an empty vote takes it back.
        let m = poll(3, true, None);
        let t = tally(&m, [Cast { voter: a, seq: 1, at_ms: 1, options: &[2, 0] }], a);
        assert_eq!((t.counts, t.mine), (vec![1, 0, 1], vec![0, 2]));
        let t = tally(
            &m,
            [Cast { voter: a, seq: 1, at_ms: 1, options: &[2] }, Cast { voter: a, seq: 2, at_ms: 2, options: &[] }],
            a,
        );
        assert_eq!((t.voters, t.counts), (0, vec![0, 0, 0]));
    }
}
