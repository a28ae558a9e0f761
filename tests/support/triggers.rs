//! Proving that every accepted call was carried out exactly once.
//!
//! A 202 answer gives, per application, the sequence of the trigger record that holds the call.
//! Records only grow in sequence, and the controller claims a record whole, so a call is carried
//! out by the first handled record whose sequence is at least the call's. Where a handled record
//! lists all the calls merged into it (fewer than the listing cap), the call's id must be there.

use std::collections::BTreeMap;

use tugboat::api::TriggerRecord;

/// A call that got 202: its trigger id and the record sequence it was stored under.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: String,
    pub sequence: i64,
}

impl Accepted {
    /// Reads a 202 answer for `application`; `None` when it lacks the id or the sequence.
    pub fn from_reply(reply: &serde_json::Value, application: &str) -> Option<Self> {
        Some(Self { id: reply["triggerId"].as_str()?.to_owned(), sequence: reply["sequences"][application].as_i64()? })
    }
}

/// Handled records seen in `status.lastTrigger`, by sequence.
pub type Handled = BTreeMap<i64, TriggerRecord>;

/// How many accepted calls each handled record carried out, or what went wrong: calls never
/// carried out, a call missing from a record that lists all of its ids, a record carrying more
/// calls than it merged, or an id carried out by two records.
pub fn carried_out(accepted: &[Accepted], handled: &Handled) -> Result<BTreeMap<i64, usize>, String> {
    let mut per_record: BTreeMap<i64, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for call in accepted {
        let Some((sequence, record)) = handled.range(call.sequence..).next() else {
            problems.push(format!("call {} (sequence {}) was never carried out", call.id, call.sequence));
            continue;
        };
        let fully_listed = record.coalesced_ids.len() as i64 == record.coalesced_count;
        if fully_listed && record.id != call.id && !record.coalesced_ids.contains(&call.id) {
            problems.push(format!("call {} is not listed in record {sequence}, which lists all its calls", call.id));
        }
        *per_record.entry(*sequence).or_default() += 1;
    }
    for (sequence, calls) in &per_record {
        let merged = 1 + handled[sequence].coalesced_count as usize;
        if *calls > merged {
            problems.push(format!("record {sequence} carried {calls} accepted calls but merged only {merged}"));
        }
    }
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    for (sequence, record) in handled {
        for id in std::iter::once(&record.id).chain(&record.coalesced_ids) {
            if let Some(before) = seen.insert(id, *sequence) {
                problems.push(format!("call {id} carried out twice, by records {before} and {sequence}"));
            }
        }
    }
    if problems.is_empty() { Ok(per_record) } else { Err(problems.join("; ")) }
}
