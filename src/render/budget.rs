//! The render budget: how much one application's manifests may expand into.
//!
//! Reading is bounded by the source (bytes read from Git), but rendering can multiply what was
//! read: a 1 MiB anchored string behind 1,000 aliases is 1 GiB of output, and so is a scalar of
//! many placeholders filled with a long value. So rendering is charged by the bytes it produces
//! (alias copies and substituted values included) and the objects it yields, and stops at the
//! first document that would go over, before allocating what it would cost.

use std::fmt;

/// Limits on what rendering one application may produce (`--render-max-bytes`,
/// `--render-max-objects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of rendered values: scalar text and keys, plus [`NODE_OVERHEAD`] per node.
    pub max_bytes: u64,
    /// Kubernetes objects (items of a `kind: List` count one each).
    pub max_objects: usize,
}

/// Charged for every node besides its text, so that millions of tiny nodes are not free:
/// roughly what a node costs in memory beyond its characters.
pub const NODE_OVERHEAD: u64 = 16;

impl Budget {
    /// 64 MiB and 10,000 objects: far above real applications (a large CRD bundle is a few
    /// MiB), far below what would threaten the operator's memory.
    pub const DEFAULT: Budget = Budget { max_bytes: 64 << 20, max_objects: 10_000 };
}

impl Default for Budget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Bytes as people read them: `64 MiB`, `1.5 KiB`, `700 bytes`.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size {
                let value = self.0 as f64 / size as f64;
                return if self.0 % size == 0 {
                    write!(f, "{} {unit}", self.0 / size)
                } else {
                    write!(f, "{value:.1} {unit}")
                };
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// What is left of the byte budget while one application renders; shared by its documents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remaining {
    left: u64,
    limit: u64,
}

impl Remaining {
    pub fn new(budget: Budget) -> Self {
        Self { left: budget.max_bytes, limit: budget.max_bytes }
    }

    /// Whether `bytes` more would still fit; checked before allocating them.
    pub fn check(&self, bytes: u64) -> Result<(), String> {
        if bytes > self.left { Err(self.exceeded()) } else { Ok(()) }
    }

    /// Takes `bytes` from the budget.
    pub fn spend(&mut self, bytes: u64) -> Result<(), String> {
        self.check(bytes)?;
        self.left -= bytes;
        Ok(())
    }

    fn exceeded(&self) -> String {
        format!(
            "the manifests render to more than {} here (the render budget, --render-max-bytes); \
             anchors and aliases count once per use, substituted values once per placeholder",
            Bytes(self.limit)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(Bytes(64 << 20).to_string(), "64 MiB");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(700).to_string(), "700 bytes");
        assert_eq!(Bytes(3 << 30).to_string(), "3 GiB");
    }

    #[test]
    fn spending_stops_at_the_limit_and_says_which_flag_raises_it() {
        let mut left = Remaining::new(Budget { max_bytes: 10, max_objects: 1 });
        assert!(left.spend(6).is_ok());
        assert!(left.check(4).is_ok());
        let error = left.spend(5).expect_err("over");
        assert!(error.contains("more than 10 bytes") && error.contains("--render-max-bytes"), "{error}");
        assert!(left.spend(4).is_ok(), "a refused spend takes nothing");
    }
}
