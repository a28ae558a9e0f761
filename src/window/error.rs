//! Compile errors for change windows, each naming the offending `changeWindows[i].field`.

/// Why a list of change windows could not be compiled.
///
/// The message starts with the JSON path of the field (`changeWindows[1].timeZone: …`) because
/// the operator copies it verbatim into the application's `Stalled` condition, where the user
/// must be able to find the field to fix without reading operator logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The schedule is not five cron fields the parser accepts, or it never matches a date.
    #[error("changeWindows[{index}].schedule: invalid cron schedule {schedule:?}: {reason}")]
    Schedule {
        /// Position of the window in `spec.changeWindows`.
        index: usize,
        /// The schedule as written.
        schedule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not in the IANA database (system or bundled).
    #[error("changeWindows[{index}].timeZone: unknown time zone {name:?}")]
    TimeZone {
        /// Position of the window in `spec.changeWindows`.
        index: usize,
        /// The zone name as written.
        name: String,
    },
    /// A zero duration would make a window that is never open (allow) or never closes (deny).
    #[error("changeWindows[{index}].duration: must be greater than zero")]
    Duration {
        /// Position of the window in `spec.changeWindows`.
        index: usize,
    },
    /// A window that gates nothing is almost certainly a mistake, not a way to disable it.
    #[error("changeWindows[{index}].gates: must name at least one gate (Restart, Apply)")]
    Gates {
        /// Position of the window in `spec.changeWindows`.
        index: usize,
    },
}

impl WindowError {
    /// Position of the offending window in `spec.changeWindows`.
    pub fn index(&self) -> usize {
        match self {
            Self::Schedule { index, .. }
            | Self::TimeZone { index, .. }
            | Self::Duration { index }
            | Self::Gates { index } => *index,
        }
    }

    /// The camelCase field name of the offending value, as in the CRD.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Schedule { .. } => "schedule",
            Self::TimeZone { .. } => "timeZone",
            Self::Duration { .. } => "duration",
            Self::Gates { .. } => "gates",
        }
    }
}
